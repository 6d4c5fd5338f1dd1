"""Consistency distillation (Song et al., 2023) from a flow-matching teacher, as the official
code's ``baselines/targets_consistency_distillation.py`` (the paper's Table 1 baseline).

The student ``s`` is a consistency model in the velocity parametrisation: it predicts the data
point ``x1_hat = x_t + (1 - t) s(x_t, t)`` reached from ``(x_t, t)``. On the grid ``t = i / M``
one Euler step of the frozen teacher ``v_T`` (its EMA weights) moves to the next grid point,

    x' = clip(x_t + v_T(x_t, t) / M),   t' = t + 1 / M,

and the student's target-network output there is the target data point (the consistency
condition: adjacent points of one trajectory map to the same ``x1``):

    x1_hat = x' + (1 - t') s^-(x', t'),   target v* = (x1_hat - x_t) / (1 - t),

so that ``x_t + (1 - t) v* = x1_hat``. At ``t' = 1`` the target is the teacher's velocity (the
boundary condition). The network ignores the step size (the official ``ignore_dt``): every
query uses the flow-matching token, and the student samples with the Euler sampler.
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
    target_network,
)
from .lifecycle import ObjectiveContext
from .shortcut import TARGET_WEIGHTS
from .teacher import setup_teacher

__all__ = ["ConsistencyDistillation", "consistency_distillation_target"]


def _column(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


@torch.no_grad()
def consistency_distillation_target(
    teacher: nn.Module,
    student: nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    level: torch.Tensor,
    y: torch.Tensor | None,
    *,
    dt: float,
    clip: float | None = 4.0,
) -> torch.Tensor:
    """``v* = (x' + (1 - t') s(x', t') - x_t) / (1 - t)`` with ``x' = clip(x_t + dt v_T(x_t, t))``
    and ``t' = t + dt`` (no gradient). ``t`` must stay below 1."""
    v_teacher = teacher(x_t, t, level, y).to(x_t.dtype)
    x_next = x_t + dt * v_teacher
    if clip is not None:
        x_next = x_next.clamp(-clip, clip)
    t_next = t + dt
    v_next = student(x_next, t_next, level, y).to(x_t.dtype)
    x1_hat = x_next + _column(1 - t_next, x_t) * v_next
    return (x1_hat - x_t) / _column(1 - t, x_t)


class ConsistencyDistillation(Objective):
    """Consistency distillation of a finished flow-matching run (``teacher``, its folder).

    Args:
        M: the grid ``t = i / M`` and the teacher's step ``1 / M`` (official: 128).
        teacher: the teacher's run folder; the student starts from its weights.
        target_weights: the student weights at ``(x', t')``: "online" (no gradient; this
            project's default, as for shortcut models) or "ema" (the official code).
        clip: clamp ``x'`` to ``[-clip, clip]`` (official: 4; None: off).
    """

    name = "consistency_distillation"
    needs_teacher = True
    sampler = "flow"  # every query uses the d = 0 token, as the official code

    def __init__(
        self,
        M: int = 128,
        teacher: str | None = None,
        target_weights: str = "online",
        clip: float | None = 4.0,
    ):
        check_base_steps(M)
        if target_weights not in TARGET_WEIGHTS:
            raise ValueError(
                f"target_weights must be one of {TARGET_WEIGHTS}, got {target_weights!r}"
            )
        self.M, self.teacher_path = M, teacher
        self.target_weights, self.clip = target_weights, clip
        self.teacher: nn.Module | None = None
        self._teacher_net: nn.Module | None = None  # what runs the teacher (compiled?)

    def setup(self, context: ObjectiveContext) -> None:
        """Load the teacher; a fresh run starts the student from its weights."""
        loaded = setup_teacher(self.name, self.teacher_path, context)
        self.teacher = loaded.ema
        self._teacher_net = context.compile(self.teacher)  # compiled as the student is

    def make_targets(
        self, x1, y, *, generator, target_model: nn.Module, teacher: nn.Module, x0=None
    ) -> TrainingTargets:
        """Rows at ``t = i / M`` (``i = 0..M-1``); ``x0`` (noise) is drawn unless given."""
        n, M = x1.shape[0], self.M
        x0 = noise_like(x1, generator, x0)
        t = torch.randint(0, M, (n,), generator=generator, device=x1.device).float() / M
        level = torch.full((n,), flow_level(M), device=x1.device, dtype=torch.long)
        x_t = interpolate(x0, x1, t)
        target = consistency_distillation_target(
            teacher, target_model, x_t, t, level, y, dt=1.0 / M, clip=self.clip
        )
        group = torch.full((n,), flow_level(M), device=x1.device, dtype=torch.long)
        return TrainingTargets(x_t=x_t, t=t, level=level, y=y, target=target, group=group)

    def loss(
        self, model: nn.Module, x1, y, *, generator, ema_model: nn.Module | None = None, **_
    ) -> ObjectiveOutput:
        if self.teacher is None:
            raise RuntimeError("ConsistencyDistillation.setup() loads the teacher: call it first")
        target_model = target_network(self.target_weights, model, ema_model)
        teacher = self.teacher if self._teacher_net is None else self._teacher_net
        targets = self.make_targets(
            x1, y, generator=generator, target_model=target_model, teacher=teacher
        )
        return regression_loss(model, targets)
