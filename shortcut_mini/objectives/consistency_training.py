"""Consistency training (Song et al., 2023), as the official code's baseline implements it.

The network's velocity ``v(x, t)`` defines a consistency function, a jump straight to the data,

    f(x_t, t) = x_t + (1 - t) v(x_t, t).

Two adjacent points of one path, ``t`` and ``t2 = t + 1/N`` on the grid of ``N`` sections (the
same noise ``x0`` and data ``x1``), must jump to the same place; the later point's jump, made by
the EMA weights without gradients, is the target of the earlier one:

    x1_hat = x_t2 + (1 - t2) v_ema(x_t2, t2),     v* = (x1_hat - x_t) / (1 - t),
    || v(x_t, t) - v* ||^2   (that is, || f(x_t, t) - x1_hat ||^2 / (1 - t)^2).

The discretisation ``N`` doubles from 1 to 64 over seven equal phases of training (phase ``p``
has ``N = 2**p``); in phase 0, ``t = 0`` and ``t2 = 1``, so the target is the data itself. The
network sees no step size (the flow-matching token throughout). Sampling: one jump
``f(noise, 0)``, or the multistep consistency sampler (``samplers.consistency_sample``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..levels import check_base_steps, flow_level
from .base import (
    Objective,
    ObjectiveOutput,
    TrainingTargets,
    interpolate,
    noise_like,
    regression_loss,
)

__all__ = ["ConsistencyTraining", "consistency_phase", "consistency_target"]

N_PHASES = 7
"""Phases of the discretisation schedule: ``N = 1, 2, ..., 64`` (official code: log2(128))."""


def consistency_phase(step: int, total_steps: int, n_phases: int = N_PHASES) -> int:
    """Phase ``floor(step / (total_steps / n_phases))`` of training, at most ``n_phases - 1``."""
    return min(n_phases - 1, (step * n_phases) // max(1, total_steps))


def consistency_target(
    target_model: nn.Module,
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: torch.Tensor,
    n_sections: int,
    y: torch.Tensor | None,
) -> torch.Tensor:
    """``v* = (x1_hat - x_t) / (1 - t)``, with ``x1_hat`` the target model's jump from
    ``t2 = t + 1/n_sections`` on the same path. Runs without gradients."""
    shape = (-1,) + (1,) * (x1.dim() - 1)
    t2 = t + 1.0 / n_sections
    level = torch.full_like(t, flow_level(target_model.M), dtype=torch.long)
    with torch.no_grad():
        x_t2 = interpolate(x0, x1, t2)
        v2 = target_model(x_t2, t2, level, y).to(x1.dtype)
        x1_hat = x_t2 + (1 - t2).view(shape).to(x1.dtype) * v2
        return (x1_hat - interpolate(x0, x1, t)) / (1 - t).view(shape).to(x1.dtype)


class ConsistencyTraining(Objective):
    """Consistency-training targets (official ``baselines/targets_consistency_training.py``).

    Args:
        M: base steps; the network's (ignored) step-size token is the flow token ``log2(M)``.
        total_steps: the length of the schedule, in units of the ``step`` that ``loss``
            receives (the trainer's: optimizer steps times processes). A run resumed with a
            larger ``steps`` re-spaces its remaining phases; resuming with the same ``steps``
            is exact.

    The targets always come from the EMA weights (as the official code): the trainer must pass
    ``ema_model``. Unlike the official path ``(1 - (1 - 1e-5) t) x0 + t x1``, this one is the
    book's ``(1 - t) x0 + t x1``.
    """

    name = "consistency_training"
    sampler = "consistency"

    def __init__(self, M: int = 128, total_steps: int = 1):
        check_base_steps(M)
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        self.M, self.total_steps = M, total_steps

    def n_sections(self, step: int) -> int:
        """The discretisation ``N = 2**phase`` at ``step``."""
        return 2 ** consistency_phase(step, self.total_steps)

    def make_targets(
        self, x1, y, *, generator, step: int, target_model: nn.Module, x0=None
    ) -> TrainingTargets:
        """Inputs and targets for a batch at ``step``; ``x0`` (noise) is drawn unless given."""
        n, phase = x1.shape[0], consistency_phase(step, self.total_steps)
        sections = 2**phase
        x0 = noise_like(x1, generator, x0)
        t = torch.randint(0, sections, (n,), generator=generator, device=x1.device).float()
        t = t / sections
        return TrainingTargets(
            x_t=interpolate(x0, x1, t),
            t=t,
            level=torch.full((n,), flow_level(self.M), device=x1.device, dtype=torch.long),
            y=y,
            target=consistency_target(target_model, x0, x1, t, sections, y),
            group=torch.full((n,), phase, device=x1.device, dtype=torch.long),
            extras={"n_sections": sections},
        )

    def loss(
        self, model: nn.Module, x1, y, *, generator, step: int = 0, ema_model=None, **_
    ) -> ObjectiveOutput:
        if ema_model is None:
            raise ValueError(
                "consistency training takes its targets from the EMA weights: pass ema_model "
                "(the trainer does)"
            )
        targets = self.make_targets(x1, y, generator=generator, step=step, target_model=ema_model)
        return regression_loss(model, targets)
