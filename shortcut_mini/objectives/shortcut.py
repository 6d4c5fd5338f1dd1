"""The shortcut objective: flow matching plus self-consistency (paper Sec. 3.2, Eq. 5).

A fraction ``1 - k`` of each batch are flow-matching rows, ``|| s(x_t, t, 0) - (x1 - x0) ||^2``.
The other ``k`` are self-consistency rows: one jump of size ``2d`` must equal two jumps of ``d``,

    b1 = s(x_t, t, d),   x' = x_t + d * b1,   b2 = s(x', t + d, d),
    || s(x_t, t, 2d) - stopgrad((b1 + b2) / 2) ||^2.

(Eq. 5 prints ``t`` for the second query; the official code, and this one, use ``t + d``.)
The choices below, and where they differ from the official JAX code, are listed in
:ref:`the book's design notes <design-decisions>`; each is a constructor argument.
"""

from __future__ import annotations

import torch
from torch import nn

from ..levels import check_base_steps
from .base import (
    Objective,
    ObjectiveOutput,
    TrainingTargets,
    interpolate,
    noise_like,
    regression_loss,
    target_network,
)
from .flow_matching import T_SAMPLINGS, FlowMatching

__all__ = [
    "Shortcut",
    "allocate_levels",
    "allocated_levels",
    "rows_of_level",
    "self_consistency_target",
]

TARGET_WEIGHTS = ("online", "ema")


def allocate_levels(n_rows: int, n_levels: int, step: int, device=None) -> torch.Tensor:
    """Level of each self-consistency row: stratified over ``0..n_levels-1``, rotating with ``step``.

    Row ``i`` of batch ``step`` trains level ``(step * n_rows + i) mod n_levels``. With at least
    ``n_levels`` rows every level gets rows in every batch (within one of each other); with fewer,
    consecutive batches continue where the last one stopped, so every level is trained within
    ``ceil(n_levels / n_rows)`` batches. (The official code gives ``n_rows // 7`` rows to each level
    and the remainder to ``d = 1``, so small batches never train the small steps: upstream issue #11.)
    """
    start = (step * n_rows) % n_levels
    return (start + torch.arange(n_rows, device=device)) % n_levels


def allocated_levels(n_rows: int, n_levels: int, step: int) -> tuple[int, ...]:
    """The levels :func:`allocate_levels` gives rows to, as Python ints (no device work)."""
    start = (step * n_rows) % n_levels
    return tuple(sorted({(start + i) % n_levels for i in range(min(n_rows, n_levels))}))


def rows_of_level(n_rows: int, n_levels: int, step: int, level: int, device=None) -> torch.Tensor:
    """Indices of the rows :func:`allocate_levels` gives ``level``, computed without reading the
    level tensor back from the device: row ``i`` has level ``(start + i) mod n_levels``."""
    first = min((level - step * n_rows) % n_levels, n_rows)  # n_rows: the level has no rows
    return torch.arange(first, n_rows, n_levels, device=device)


def self_consistency_target(
    model: nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    level: torch.Tensor,
    y: torch.Tensor | None,
    *,
    clip: float | None = 4.0,
    guidance_scale: float = 0.0,
    guided_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(b1 + b2) / 2`` for the step ``2d = 2**-level``, from two queries of ``d = 2**-(level+1)``.

    ``b1 = s(x_t, t, d)``, ``x' = clip(x_t + d b1)``, ``b2 = s(x', t + d, d)``; the result is
    clipped to ``[-clip, clip]`` as in the official code. Where ``guided_rows`` is set and
    ``guidance_scale > 0``, each query is the guided velocity ``v_u + w (v_c - v_u)``.
    ``guided_rows`` holds row indices (no host synchronisation: its length is known on the
    host) or a boolean mask (read back from the device once, a synchronisation).
    Runs without gradients (the stop-gradient of Eq. 5).
    """
    half = level + 1
    d = torch.exp2(-half.float()).view(-1, *([1] * (x_t.dim() - 1))).to(x_t.dtype)
    if guided_rows is not None and guided_rows.dtype == torch.bool:
        guided_rows = guided_rows.nonzero(as_tuple=True)[0]
    guided = guidance_scale > 0 and y is not None and guided_rows is not None
    guided = guided and guided_rows.numel() > 0

    def query(x, tq):
        v = model(x, tq, half, y)
        if guided:
            idx = guided_rows
            null = torch.full((idx.numel(),), model.num_classes, device=y.device, dtype=y.dtype)
            v_u = model(x[idx], tq[idx], half[idx], null)
            v = v.clone()
            v[idx] = v_u + guidance_scale * (v[idx] - v_u)
        return v.to(x_t.dtype)

    with torch.no_grad():
        b1 = query(x_t, t)
        x_mid = x_t + d * b1
        if clip is not None:
            x_mid = x_mid.clamp(-clip, clip)
        b2 = query(x_mid, t + d.flatten())
        target = (b1 + b2) / 2
        if clip is not None:
            target = target.clamp(-clip, clip)
    return target


class Shortcut(Objective):
    """Shortcut-model training targets (paper Eq. 5) with this project's defaults.

    Args:
        M: base steps (a power of two); levels ``0..log2(M)``, step ``2**-l`` at level ``l``.
        bootstrap_fraction: ``k``, the fraction of each batch used for self-consistency rows
            (paper: 1/4; official code: 1/8).
        t_sampling: flow rows' times on the grid ``i / M`` ("grid") or ``U(0, 1)`` ("uniform").
        target_weights: which weights compute the self-consistency targets: the online weights
            ("online", default, no gradient) or the EMA weights ("ema", official code).
        clip: clip ``x'`` and the target to ``[-clip, clip]`` (None: no clipping).
        class_dropout: probability of the null label, on flow rows only.
        guidance_scale: if > 0 (class-conditional models), self-consistency rows at the smallest
            trained level use guided queries ``v_u + w (v_c - v_u)``.

    Every example of a batch is used exactly once: the first ``round(k * B)`` rows are
    self-consistency rows, the rest flow rows (the official code reuses the first 1/8: issue #10).
    Self-consistency rows training level ``l`` start at ``t = i / 2**l`` (``i`` uniform in
    ``0..2**l - 1``), so the jump ``[t, t + 2**-l]`` stays inside ``[0, 1]``.
    """

    name = "shortcut"
    sampler = "euler"

    def __init__(
        self,
        M: int = 128,
        bootstrap_fraction: float = 0.25,
        t_sampling: str = "grid",
        target_weights: str = "online",
        clip: float | None = 4.0,
        class_dropout: float = 0.0,
        num_classes: int = 0,
        guidance_scale: float = 0.0,
    ):
        self.K = check_base_steps(M)
        if not 0.0 <= bootstrap_fraction <= 1.0:
            raise ValueError(f"bootstrap_fraction must be in [0, 1], got {bootstrap_fraction}")
        if t_sampling not in T_SAMPLINGS:
            raise ValueError(f"t_sampling must be one of {T_SAMPLINGS}, got {t_sampling!r}")
        if target_weights not in TARGET_WEIGHTS:
            raise ValueError(
                f"target_weights must be one of {TARGET_WEIGHTS}, got {target_weights!r}"
            )
        self.M, self.bootstrap_fraction, self.target_weights = M, bootstrap_fraction, target_weights
        self.clip, self.guidance_scale, self.num_classes = clip, guidance_scale, num_classes
        self.flow = FlowMatching(M, t_sampling, class_dropout, num_classes)

    @property
    def n_trained_levels(self) -> int:
        """Self-consistency trains levels ``0..log2(M)-1`` (steps 1 .. 2/M)."""
        return self.K

    def num_self_consistency_rows(self, batch_size: int) -> int:
        if self.bootstrap_fraction == 0 or batch_size < 2:
            return 0
        return min(batch_size - 1, max(1, round(self.bootstrap_fraction * batch_size)))

    def make_targets(
        self, x1, y, *, generator, step: int = 0, target_model: nn.Module, x0=None
    ) -> TrainingTargets:
        """Inputs and targets for a batch; ``x0`` (noise) is drawn unless given.

        Rows ``0..n-1`` (``n = round(k B)``) are self-consistency rows, the rest flow rows.
        """
        n_sc = self.num_self_consistency_rows(x1.shape[0])
        x0 = noise_like(x1, generator, x0)
        flow = self.flow.flow_rows(x1[n_sc:], x0[n_sc:], None if y is None else y[n_sc:], generator)
        if n_sc == 0:
            return flow
        level = allocate_levels(n_sc, self.n_trained_levels, step, x1.device)
        n_starts = torch.exp2(level.float())
        t = torch.floor(torch.rand(n_sc, generator=generator, device=x1.device) * n_starts)
        t = t / n_starts
        x_t = interpolate(x0[:n_sc], x1[:n_sc], t)
        y_sc = None if y is None else y[:n_sc]
        K = self.n_trained_levels
        guided = rows_of_level(n_sc, K, step, K - 1, x1.device) if self.guidance_scale > 0 else None
        target = self_consistency_target(
            target_model,
            x_t,
            t,
            level,
            y_sc,
            clip=self.clip,
            guidance_scale=self.guidance_scale if self.num_classes > 0 else 0.0,
            guided_rows=guided,
        )
        return TrainingTargets(
            x_t=torch.cat([x_t, flow.x_t]),
            t=torch.cat([t, flow.t]),
            level=torch.cat([level, flow.level]),
            y=None if y is None else torch.cat([y_sc, flow.y]),
            target=torch.cat([target, flow.target]),
            group=torch.cat([level, flow.group]),
            extras={"n_self_consistency": n_sc},
            groups=allocated_levels(n_sc, K, step) + flow.groups,
        )

    def loss(
        self,
        model: nn.Module,
        x1,
        y,
        *,
        generator,
        step: int = 0,
        ema_model: nn.Module | None = None,
    ) -> ObjectiveOutput:
        target_model = target_network(self.target_weights, model, ema_model)
        targets = self.make_targets(
            x1, y, generator=generator, step=step, target_model=target_model
        )
        return regression_loss(model, targets)
