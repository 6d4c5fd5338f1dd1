"""The paper's diffusion baseline (its Table 1): an epsilon-prediction diffusion model.

The same network as every other method predicts the noise ``x0`` of a point of the
variance-preserving path ``x_t = alpha(t) x1 + sigma(t) x0`` (``shortcut_mini.noise_schedule``,
the DDPM schedule in this book's convention t = 0 noise, t = 1 data):

    || eps_theta(x_t, t) - x0 ||^2        (Ho et al., 2020, Eq. 14, the "simple" loss).

It is sampled with deterministic DDIM (Song et al., 2021; ``samplers.ddim_sample``). The network
sees no step size: every query uses the flow-matching token. The official JAX code has no
diffusion target (its paper row has no code there), so the schedule is this project's choice:
DDPM's linear one; ``t`` on the grid ``i / M`` like every other method, or ``U(0, 1)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..levels import flow_level
from ..noise_schedule import vp_alpha_sigma
from .base import ObjectiveOutput, TrainingTargets, drop_labels, noise_like, regression_loss
from .flow_matching import FlowMatching, sample_flow_times

__all__ = ["Diffusion", "diffuse"]


def diffuse(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The point ``alpha(t) x1 + sigma(t) x0`` of the diffusion path."""
    alpha, sigma = vp_alpha_sigma(t)
    shape = (-1,) + (1,) * (x1.dim() - 1)
    return (alpha.view(shape) * x1 + sigma.view(shape) * x0).to(x1.dtype)


class Diffusion(FlowMatching):
    """Epsilon-prediction targets on the DDPM path (paper Table 1, "Diffusion").

    Args:
        M: base steps: ``t`` is drawn from the grid ``i / M`` (``t_sampling="grid"``).
        t_sampling: ``"grid"`` or ``"uniform"``.
        class_dropout: probability of the null label (for classifier-free guidance).
    """

    name = "diffusion"
    sampler = "ddim"  # the constructor is flow matching's: the same M, t, labels

    def make_targets(self, x1, y, *, generator, x0=None, **_) -> TrainingTargets:
        """Inputs ``x_t`` and the noise ``x0`` they hold; ``x0`` is drawn unless given."""
        n = x1.shape[0]
        x0 = noise_like(x1, generator, x0)
        t = sample_flow_times(n, self.M, self.t_sampling, generator, x1.device)
        return TrainingTargets(
            x_t=diffuse(x0, x1, t),
            t=t,
            level=torch.full((n,), flow_level(self.M), device=x1.device, dtype=torch.long),
            y=drop_labels(y, self.class_dropout, self.num_classes, generator),
            target=x0,
            group=torch.full((n,), -1, device=x1.device, dtype=torch.long),
            groups=(-1,),
        )

    def loss(self, model: nn.Module, x1, y, *, generator, **_) -> ObjectiveOutput:
        return regression_loss(model, self.make_targets(x1, y, generator=generator))
