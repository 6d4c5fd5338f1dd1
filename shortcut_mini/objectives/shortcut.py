"""The shortcut objective: flow matching plus self-consistency (paper Sec. 3.2, Eq. 5).

A fraction ``1 - k`` of each batch are flow-matching rows, ``|| s(x_t, t, 0) - (x1 - x0) ||^2``.
The other ``k`` are self-consistency rows: one jump of size ``2d`` must equal two jumps of ``d``,

    b1 = s(x_t, t, d),   x' = x_t + d * b1,   b2 = s(x', t + d, d),
    || s(x_t, t, 2d) - stopgrad((b1 + b2) / 2) ||^2.

(Eq. 5 prints ``t`` for the second query; the official code, and this one, use ``t + d``.)
The choices below, and where they differ from the official JAX code, are listed in
:ref:`the book's design notes <design-decisions>`; each is a constructor argument.

**Beyond the paper** (``ShortcutSettings``, given as ``TrainConfig.method_args``; each off by
default, and with all of them off the targets, the draws of the generator and the loss are the
paper's Eq. 5 as above):

- ``ot_pairing``: the batch's noise re-paired with its data by an exact minibatch
  optimal-transport assignment (``ot_pairing``; iSM's "scaling OT" with one batch per plan).
- ``jump_sizes="continuous"`` and ``split_point="uniform"``: SplitMeanFlow's interval splitting
  consistency (Guo et al., 2025). The average velocity over ``[t, t + d]`` is the weighted mean of
  those over its two parts, for *any* split ``0 < a < d``,

      d u(x_t, t, d) = a u(x_t, t, a) + (d - a) u(x_{t+a}, t + a, d - a),

  and the paper's target is the case ``a = d / 2``. With the paper's step-size levels only the
  midpoint works: every other split makes a part whose size is no power of two, which a level
  embedding cannot express and no row trains. So the random split comes with continuous jumps
  (``jump_sizes="continuous"``: a row of level ``l`` trains a step drawn log-uniformly in
  ``(2^-(l+1), 2^-l]`` from a start uniform in ``[0, 1 - d]``), which need a step-size embedding
  that takes a number (``level_embedding`` ``"sin_d"`` or ``"sin_d_unit"``); the sampler's
  dyadic steps are points of the trained range. A part shorter than the finest step ``1/M`` is
  queried with the finest step's input, as this project queries ``d = 0`` (flow rows).
- ``target_ema_decay``: iSM's twin EMA. The self-consistency targets come from a second, fast
  EMA of the weights (iSM: decay 0.95), updated from the online weights before every step; the
  run's own EMA (``TrainConfig.ema_decay``) still samples. It sits between this project's
  default (online targets, decay 0) and the official code's EMA targets (0.999).

Left out: iSM's multi-level wavelet loss (the squared error taken on an image's wavelet
sub-bands: a change of the regression loss every objective shares, not of this one's targets,
with nothing to show on a 2D toy); iSM's intrinsic guidance (the guidance scale as an input of
the network: a change of the network and the sampler, for class-conditional runs only); iSM's
pooling of ``K`` batches into one transport plan (the objective sees one batch: ``K = 1``
here); and alpha-Flow (a schedule from flow matching to MeanFlow over continuous ``(t, r)``,
whose end needs MeanFlow's Jacobian-vector product: an objective of its own beside
``meanflow``, not a switch of this one).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..levels import check_base_steps
from ..method_settings import CONTINUOUS_STEP_EMBEDDINGS, SettingError, ShortcutSettings
from .base import (
    Objective,
    ObjectiveOutput,
    TrainingTargets,
    interpolate,
    noise_like,
    online_network,
    regression_loss,
    target_network,
)
from .flow_matching import T_SAMPLINGS, FlowMatching
from .ot_pairing import ot_pair_noise

__all__ = [
    "Shortcut",
    "allocate_levels",
    "allocated_levels",
    "rows_of_level",
    "self_consistency_target",
    "split_target",
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
    guided_rows = _guided(guidance_scale, y, guided_rows)
    with torch.no_grad():
        b1 = _query(model, x_t, t, half, y, guidance_scale, guided_rows).to(x_t.dtype)
        x_mid = x_t + d * b1
        if clip is not None:
            x_mid = x_mid.clamp(-clip, clip)
        b2 = _query(model, x_mid, t + d.flatten(), half, y, guidance_scale, guided_rows)
        target = (b1 + b2.to(x_t.dtype)) / 2
        if clip is not None:
            target = target.clamp(-clip, clip)
    return target


def split_target(
    model: nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    d: torch.Tensor,
    a: torch.Tensor,
    y: torch.Tensor | None,
    *,
    clip: float | None = 4.0,
    min_step: float = 0.0,
    guidance_scale: float = 0.0,
    guided_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """SplitMeanFlow's interval splitting target for the jump ``[t, t + d]`` split at ``t + a``
    (``0 < a < d``, float tensors of shape ``[B]``):

        u1 = s(x_t, t, a),   x' = x_t + a u1,   u2 = s(x', t + a, d - a),
        target = (a u1 + (d - a) u2) / d,

    the integral of the average velocity over the two parts, divided by the whole jump. At
    ``a = d / 2`` it is :func:`self_consistency_target` (paper Eq. 5). The network sees each
    part's size as a number (a continuous step-size embedding), raised to ``min_step`` where
    shorter (the finest step stands for every shorter one, as for flow rows); ``clip`` and
    guidance as in :func:`self_consistency_target`. Runs without gradients.
    """
    shape = (-1, *([1] * (x_t.dim() - 1)))
    guided_rows = _guided(guidance_scale, y, guided_rows)
    first, rest = a.clamp_min(min_step), (d - a).clamp_min(min_step)
    with torch.no_grad():
        u1 = _query(model, x_t, t, first, y, guidance_scale, guided_rows).to(x_t.dtype)
        x_mid = x_t + a.view(shape).to(x_t.dtype) * u1
        if clip is not None:
            x_mid = x_mid.clamp(-clip, clip)
        u2 = _query(model, x_mid, t + a, rest, y, guidance_scale, guided_rows).to(x_t.dtype)
        w = (a / d).view(shape).to(x_t.dtype)
        target = w * u1 + (1 - w) * u2
        if clip is not None:
            target = target.clamp(-clip, clip)
    return target


def _guided(guidance_scale: float, y, guided_rows) -> torch.Tensor | None:
    """The row indices whose queries are guided (None: no guidance)."""
    if guided_rows is not None and guided_rows.dtype == torch.bool:
        guided_rows = guided_rows.nonzero(as_tuple=True)[0]
    guided = guidance_scale > 0 and y is not None and guided_rows is not None
    return guided_rows if guided and guided_rows.numel() > 0 else None


def _query(model, x, t, step, y, guidance_scale: float, guided_rows) -> torch.Tensor:
    """``s(x, t, step)``; on ``guided_rows`` the guided velocity ``v_u + w (v_c - v_u)``."""
    v = model(x, t, step, y)
    if guided_rows is not None:
        idx = guided_rows
        null = torch.full((idx.numel(),), model.num_classes, device=y.device, dtype=y.dtype)
        v_u = model(x[idx], t[idx], step[idx], null)
        v = v.clone()
        v[idx] = v_u + guidance_scale * (v[idx] - v_u)
    return v


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
        ot_pairing, jump_sizes, split_point, target_ema_decay: the switches beyond the paper
            (:class:`~shortcut_mini.method_settings.ShortcutSettings`; the module's docstring).

    Every example of a batch is used exactly once: the first ``round(k * B)`` rows are
    self-consistency rows, the rest flow rows (the official code reuses the first 1/8: issue #10).
    Self-consistency rows training level ``l`` start at ``t = i / 2**l`` (``i`` uniform in
    ``0..2**l - 1``), so the jump ``[t, t + 2**-l]`` stays inside ``[0, 1]``.
    """

    name = "shortcut"
    sampler = "euler"
    settings = ShortcutSettings

    @classmethod
    def trains_aligned_steps(cls, cfg) -> bool:
        """The paper's dyadic jumps start on their own grid (Eq. 5 with ``t`` a multiple of
        ``d``); continuous jumps (``jump_sizes="continuous"``) start anywhere."""
        return (cfg.method_args or {}).get("jump_sizes", "dyadic") == "dyadic"

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
        ot_pairing: bool = False,
        jump_sizes: str = "dyadic",
        split_point: str = "midpoint",
        target_ema_decay: float | None = None,
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
        ShortcutSettings(
            ot_pairing=ot_pairing,
            jump_sizes=jump_sizes,
            split_point=split_point,
            target_ema_decay=target_ema_decay,
        ).check()
        if target_ema_decay is not None and target_weights != "online":
            raise SettingError(
                "target_ema_decay",
                f"the twin EMA (target_ema_decay={target_ema_decay}) computes the "
                f"self-consistency targets itself, so target_weights={target_weights!r} would "
                "be ignored: leave target_weights at 'online', or target_ema_decay out",
            )
        self.M, self.bootstrap_fraction, self.target_weights = M, bootstrap_fraction, target_weights
        self.clip, self.guidance_scale, self.num_classes = clip, guidance_scale, num_classes
        self.ot_pairing, self.jump_sizes, self.split_point = ot_pairing, jump_sizes, split_point
        self.target_ema_decay = target_ema_decay
        self.flow = FlowMatching(M, t_sampling, class_dropout, num_classes)
        self.target_ema: nn.Module | None = None  # the twin EMA's network, made at first use
        self._target_ema_net: nn.Module | None = None  # what computes its targets (compiled?)
        self._compile = lambda module: module  # the trainer's compile (ObjectiveContext)
        self._target_ema_step = -1  # the step whose update the twin EMA last took
        self._pending_state: dict | None = None

    @property
    def n_trained_levels(self) -> int:
        """Self-consistency trains levels ``0..log2(M)-1`` (steps 1 .. 2/M)."""
        return self.K

    def num_self_consistency_rows(self, batch_size: int) -> int:
        if self.bootstrap_fraction == 0 or batch_size < 2:
            return 0
        return min(batch_size - 1, max(1, round(self.bootstrap_fraction * batch_size)))

    def check_level_embedding(self, level_embedding: str | None) -> None:
        """:class:`~shortcut_mini.method_settings.SettingError` if continuous jumps meet an
        embedding that knows only the powers of two."""
        if self.jump_sizes == "continuous" and level_embedding not in CONTINUOUS_STEP_EMBEDDINGS:
            raise SettingError(
                "jump_sizes",
                f"jump_sizes='continuous' trains step sizes that are no powers of two, and "
                f"level_embedding={level_embedding!r} has an input only for each power of two: "
                "set TrainConfig.level_embedding='sin_d' (command line: --level-embedding "
                "sin_d), or 'sin_d_unit'; or keep jump_sizes='dyadic'",
            )

    def make_targets(
        self, x1, y, *, generator, step: int = 0, target_model: nn.Module, x0=None
    ) -> TrainingTargets:
        """Inputs and targets for a batch; ``x0`` (noise) is drawn unless given.

        Rows ``0..n-1`` (``n = round(k B)``) are self-consistency rows, the rest flow rows.
        """
        n_sc = self.num_self_consistency_rows(x1.shape[0])
        x0 = noise_like(x1, generator, x0)
        if self.ot_pairing:
            x0 = ot_pair_noise(x0, x1, y)
        flow = self.flow.flow_rows(x1[n_sc:], x0[n_sc:], None if y is None else y[n_sc:], generator)
        if n_sc == 0:
            return flow
        K = self.n_trained_levels
        level = allocate_levels(n_sc, K, step, x1.device)
        y_sc = None if y is None else y[:n_sc]
        guided = rows_of_level(n_sc, K, step, K - 1, x1.device) if self.guidance_scale > 0 else None
        guidance = self.guidance_scale if self.num_classes > 0 else 0.0
        if self.jump_sizes == "dyadic":
            n_starts = torch.exp2(level.float())
            t = torch.floor(torch.rand(n_sc, generator=generator, device=x1.device) * n_starts)
            t = t / n_starts
            x_t = interpolate(x0[:n_sc], x1[:n_sc], t)
            target = self_consistency_target(
                target_model,
                x_t,
                t,
                level,
                y_sc,
                clip=self.clip,
                guidance_scale=guidance,
                guided_rows=guided,
            )
            step_in, flow_step_in = level, flow.level
        else:
            d, t, a = self.continuous_jumps(level, generator)
            x_t = interpolate(x0[:n_sc], x1[:n_sc], t)
            target = split_target(
                target_model,
                x_t,
                t,
                d,
                a,
                y_sc,
                clip=self.clip,
                min_step=1.0 / self.M,
                guidance_scale=guidance,
                guided_rows=guided,
            )
            # every row's step size as a number: the flow rows' token is the step 1/M
            step_in, flow_step_in = d, torch.exp2(-flow.level.float())
        return TrainingTargets(
            x_t=torch.cat([x_t, flow.x_t]),
            t=torch.cat([t, flow.t]),
            level=torch.cat([step_in, flow_step_in]),
            y=None if y is None else torch.cat([y_sc, flow.y]),
            target=torch.cat([target, flow.target]),
            group=torch.cat([level, flow.group]),
            extras={"n_self_consistency": n_sc},
            groups=allocated_levels(n_sc, K, step) + flow.groups,
        )

    def continuous_jumps(
        self, level: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(d, t, a)`` of ``jump_sizes="continuous"`` rows of levels ``level``: the step
        ``d = 2^-(l + u)`` (``u`` uniform in ``[0, 1)``), the start ``t`` uniform in
        ``[0, 1 - d]`` and the split ``a``: ``d / 2``, or ``lambda d`` (``lambda`` uniform in
        ``(0, 1)``) with ``split_point="uniform"``."""
        n, device = level.shape[0], level.device
        u = torch.rand(n, generator=generator, device=device)
        d = torch.exp2(-(level.float() + u))
        t = torch.rand(n, generator=generator, device=device) * (1 - d)
        if self.split_point == "uniform":
            lam = torch.rand(n, generator=generator, device=device)
            lam = lam.clamp(1e-6, 1 - 1e-6)  # no part of size zero (rand can return 0)
        else:
            lam = torch.full_like(d, 0.5)
        return d, t, lam * d

    # ---- the twin EMA (target_ema_decay) -------------------------------------------------
    def setup(self, context) -> None:
        """Check the step-size embedding, and make the twin EMA from the initial weights (a
        checkpoint's state is loaded into it next, on resume)."""
        self.check_level_embedding(getattr(context.config, "level_embedding", None))
        self._compile = context.compile
        if self.target_ema_decay is not None:
            self._make_target_ema(context.model)

    def _make_target_ema(self, model: nn.Module) -> None:
        net = online_network(model)
        net = getattr(net, "_orig_mod", net)  # under torch.compile
        self.target_ema = copy.deepcopy(net).eval().requires_grad_(False)
        # compiled as the training network is, so that its target pass is as fast as the
        # online targets' (it shares the parameters, which the update changes in place)
        self._target_ema_net = self._compile(self.target_ema)
        self._target_ema_step = -1
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self.load_state_dict(state)

    @torch.no_grad()
    def update_target_ema(self, model: nn.Module, step: int) -> nn.Module:
        """The twin EMA before step ``step``: ``ema <- rho ema + (1 - rho) theta`` once per
        step, ``theta`` the online weights now (after step ``step - 1``), ``rho`` the decay."""
        if self.target_ema is None:
            self._make_target_ema(model)
        if step != self._target_ema_step:
            net = online_network(model)
            net = getattr(net, "_orig_mod", net)
            ema_params = list(self.target_ema.parameters())
            params = [p.detach() for p in net.parameters()]
            torch._foreach_lerp_(ema_params, params, 1.0 - self.target_ema_decay)
            buffers = list(self.target_ema.buffers())
            if buffers:
                torch._foreach_copy_(buffers, list(net.buffers()))
            self._target_ema_step = step
        return self._target_ema_net

    def state_dict(self) -> dict:
        if self.target_ema_decay is None or self.target_ema is None:
            return {}
        return {
            "target_ema": self.target_ema.state_dict(),
            "target_ema_step": self._target_ema_step,
        }

    def load_state_dict(self, state: dict) -> None:
        if self.target_ema_decay is None:
            return super().load_state_dict(state)
        if "target_ema" not in state:
            raise ValueError(
                "this shortcut run keeps a twin EMA (target_ema_decay), but the checkpoint "
                "holds none: it was saved by a run without it"
            )
        if self.target_ema is None:  # loaded before the first step: kept until then
            self._pending_state = state
            return
        self.target_ema.load_state_dict(state["target_ema"])
        self._target_ema_step = int(state["target_ema_step"])

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
        if self.target_ema_decay is not None:
            target_model = self.update_target_ema(model, step)
        else:
            target_model = target_network(self.target_weights, model, ema_model)
        targets = self.make_targets(
            x1, y, generator=generator, step=step, target_model=target_model
        )
        return regression_loss(model, targets)
