"""Live reflow, as the official code's baseline (``baselines/targets_livereflow.py``) implements it.

Reflow (Liu et al., 2023) straightens a flow by training on pairs (noise, the flow's own
sample from that noise). *Live* reflow makes the pairs during training, from the model being
trained: a fraction ``k`` of each batch starts from fresh noise ``x0``, the online weights
generate ``x_gen`` with 8 Euler steps of flow matching (no gradients), and the row learns the
straight line between them with the one-step (``d = 1``) token,

    || s(x_t, t, 1) - (x_gen - x0) ||^2,     x_t = (1 - t) x0 + t x_gen,  t on the grid i / M.

The other ``1 - k`` rows are flow-matching rows (``d = 0`` token), as in :class:`FlowMatching`.
Differences from the official code: every example of the batch is used once (it reuses the first
1/8 and drops the last 1/8, upstream issue #10); ``k`` is ``bootstrap_fraction``, whose default
is the shortcut model's 1/4 (official: 1/8 for both); a reflow row is generated with its own
label (the official code generates it unconditionally unless guidance is on, yet trains it
with the label).

Sampling (``samplers``: ``euler``), as the official code evaluates it: each step of ``1/N`` uses
the level token of its size, so 1 step uses the reflow-trained ``d = 1`` token and ``M`` steps
the flow token, while the budgets between query tokens live reflow never trains.
"""

from __future__ import annotations

import torch
from torch import nn

from ..sampling import euler_sample
from .base import (
    Objective,
    ObjectiveOutput,
    TrainingTargets,
    interpolate,
    noise_like,
    online_network,
    regression_loss,
)
from .flow_matching import FlowMatching, sample_flow_times

__all__ = ["LiveReflow", "live_reflow_target"]


def live_reflow_target(
    model: nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor | None,
    *,
    generation_steps: int = 8,
    guidance_scale: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_gen, x_gen - x0)``: the model's Euler sample from ``x0`` with ``generation_steps``
    flow-matching steps (guided ``v_u + w (v_c - v_u)`` when ``guidance_scale > 0``), and the
    velocity of the straight line to it. Runs without gradients."""
    w = guidance_scale if guidance_scale > 0 and y is not None else 1.0
    x_gen = euler_sample(
        model, x0, generation_steps, y=y, cfg_scale=w, use_step_size=False
    ).samples.to(x0.dtype)
    return x_gen, x_gen - x0


class LiveReflow(Objective):
    """Live-reflow targets: flow matching plus reflow rows made on the fly.

    Args:
        M: base steps (a power of two >= ``generation_steps``).
        bootstrap_fraction: ``k``, the fraction of each batch given reflow targets.
        t_sampling: times of every row on the grid ``i / M`` ("grid") or ``U(0, 1)``.
        class_dropout: probability of the null label, on flow rows only.
        guidance_scale: if > 0 (class-conditional models), reflow rows are generated with
            guidance ``w``.
        generation_steps: Euler steps of each generation (official code: 8).
    """

    name = "live_reflow"
    sampler = "euler"

    def __init__(
        self,
        M: int = 128,
        bootstrap_fraction: float = 0.25,
        t_sampling: str = "grid",
        class_dropout: float = 0.0,
        num_classes: int = 0,
        guidance_scale: float = 0.0,
        generation_steps: int = 8,
    ):
        if not 0.0 <= bootstrap_fraction <= 1.0:
            raise ValueError(f"bootstrap_fraction must be in [0, 1], got {bootstrap_fraction}")
        self.flow = FlowMatching(M, t_sampling, class_dropout, num_classes)
        if not 1 <= generation_steps <= M:
            raise ValueError(f"generation_steps must be in 1..M={M}, got {generation_steps}")
        self.M, self.t_sampling, self.bootstrap_fraction = M, t_sampling, bootstrap_fraction
        self.guidance_scale, self.num_classes = guidance_scale, num_classes
        self.generation_steps = generation_steps

    def num_reflow_rows(self, batch_size: int) -> int:
        """``round(k B)``, at least one and at most ``B - 1`` (none when ``k = 0``)."""
        if self.bootstrap_fraction == 0 or batch_size < 2:
            return 0
        return min(batch_size - 1, max(1, round(self.bootstrap_fraction * batch_size)))

    def make_targets(
        self, x1, y, *, generator, target_model: nn.Module, x0=None, **_
    ) -> TrainingTargets:
        """Rows ``0..n-1`` (``n = round(k B)``) are reflow rows, the rest flow rows."""
        n = self.num_reflow_rows(x1.shape[0])
        x0 = noise_like(x1, generator, x0)
        flow = self.flow.flow_rows(x1[n:], x0[n:], None if y is None else y[n:], generator)
        if n == 0:
            return flow
        y_re = None if y is None else y[:n]
        guidance = self.guidance_scale if self.num_classes > 0 else 0.0
        x_gen, target = live_reflow_target(
            target_model,
            x0[:n],
            y_re,
            generation_steps=self.generation_steps,
            guidance_scale=guidance,
        )
        t = sample_flow_times(n, self.M, self.t_sampling, generator, x1.device)
        level = torch.zeros(n, device=x1.device, dtype=torch.long)  # the d = 1 token
        return TrainingTargets(
            x_t=torch.cat([interpolate(x0[:n], x_gen, t), flow.x_t]),
            t=torch.cat([t, flow.t]),
            level=torch.cat([level, flow.level]),
            y=None if y is None else torch.cat([y_re, flow.y]),
            target=torch.cat([target, flow.target]),
            group=torch.cat([level, flow.group]),
            extras={"n_reflow": n},
        )

    def loss(self, model: nn.Module, x1, y, *, generator, **_) -> ObjectiveOutput:
        online = online_network(model)
        targets = self.make_targets(x1, y, generator=generator, target_model=online)
        return regression_loss(model, targets)
