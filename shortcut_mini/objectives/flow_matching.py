"""Flow matching (Lipman et al., 2023; Liu et al., 2023): the ``d = 0`` rows of paper Eq. 5."""

from __future__ import annotations

import torch
from torch import nn

from ..levels import check_base_steps, flow_level
from .base import (
    Objective,
    ObjectiveOutput,
    TrainingTargets,
    drop_labels,
    interpolate,
    noise_like,
    regression_loss,
)

__all__ = ["FlowMatching", "sample_flow_times"]

T_SAMPLINGS = ("grid", "uniform")


def sample_flow_times(
    n: int, M: int, t_sampling: str, generator: torch.Generator, device
) -> torch.Tensor:
    """Times for flow-matching rows: the grid ``i / M`` (``i = 0..M-1``, official code) or U(0, 1)."""
    if t_sampling == "grid":
        return torch.randint(0, M, (n,), generator=generator, device=device).float() / M
    if t_sampling == "uniform":
        return torch.rand(n, generator=generator, device=device)
    raise ValueError(f"t_sampling must be one of {T_SAMPLINGS}, got {t_sampling!r}")


class FlowMatching(Objective):
    """Regress ``s(x_t, t, 0)`` onto the velocity ``x1 - x0`` (paper Eq. 2 and Eq. 5, first term).

    The ``d = 0`` query uses the level token ``log2(M)``, the same token as ``d = 1/M``.
    Labels are replaced by the null label with probability ``class_dropout`` (for CFG).
    """

    name = "flow_matching"
    sampler = "flow"

    def __init__(
        self,
        M: int = 128,
        t_sampling: str = "grid",
        class_dropout: float = 0.0,
        num_classes: int = 0,
    ):
        check_base_steps(M)
        if t_sampling not in T_SAMPLINGS:
            raise ValueError(f"t_sampling must be one of {T_SAMPLINGS}, got {t_sampling!r}")
        self.M, self.t_sampling = M, t_sampling
        self.class_dropout, self.num_classes = class_dropout, num_classes

    def flow_rows(
        self, x1: torch.Tensor, x0: torch.Tensor, y: torch.Tensor | None, generator
    ) -> TrainingTargets:
        n = x1.shape[0]
        t = sample_flow_times(n, self.M, self.t_sampling, generator, x1.device)
        level = torch.full((n,), flow_level(self.M), device=x1.device, dtype=torch.long)
        return TrainingTargets(
            x_t=interpolate(x0, x1, t),
            t=t,
            level=level,
            y=drop_labels(y, self.class_dropout, self.num_classes, generator),
            target=x1 - x0,
            group=torch.full((n,), -1, device=x1.device, dtype=torch.long),
            groups=(-1,) if n else (),
        )

    def make_targets(self, x1, y, *, generator, step: int = 0, x0=None, **_) -> TrainingTargets:
        """Inputs and targets for a batch; ``x0`` (noise) is drawn unless given."""
        x0 = noise_like(x1, generator, x0)
        return self.flow_rows(x1, x0, y, generator)

    def loss(self, model: nn.Module, x1, y, *, generator, step: int = 0, **_) -> ObjectiveOutput:
        return regression_loss(model, self.make_targets(x1, y, generator=generator, step=step))
