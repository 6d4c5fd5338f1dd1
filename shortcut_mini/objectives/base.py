"""What every training objective is (:class:`Objective`), what it returns, and the helpers and
the regression loss they share.

An objective turns a batch of data ``x1`` (and labels ``y``) into model inputs and regression
targets (:class:`TrainingTargets`), then into a loss (:class:`ObjectiveOutput`). The trainer only
calls ``objective.loss(...)`` and the hooks of ``ObjectiveHooks`` (``lifecycle``), and never
needs to know which objective it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..method_settings import MethodSettings, NoSettings
from ..models.embeddings import LEVEL_EMBEDDINGS
from .lifecycle import ObjectiveHooks

__all__ = [
    "DEFAULT_LEVEL_EMBEDDING",
    "Objective",
    "TrainingTargets",
    "ObjectiveOutput",
    "drop_labels",
    "group_diagnostics",
    "interpolate",
    "noise_like",
    "online_network",
    "regression_loss",
    "target_network",
]

DEFAULT_LEVEL_EMBEDDING = "learned"
"""The step-size embedding of a method that declares none (a learned vector per level)."""


@dataclass
class TrainingTargets:
    """One batch of model inputs and what the model should output for them.

    ``group`` names, per row, which diagnostic the row's loss is reported under: ``-1`` for
    flow-matching rows, ``l >= 0`` for self-consistency rows that train the step ``2**-l``.
    ``groups`` lists the ids present in ``group`` as Python ints, known to the objective without
    looking at the tensor; then the per-group diagnostics need no host synchronisation. ``None``
    (the default) finds them with ``torch.unique``, which waits for the GPU.
    """

    x_t: torch.Tensor
    t: torch.Tensor
    level: torch.Tensor
    y: torch.Tensor | None
    target: torch.Tensor
    group: torch.Tensor
    extras: dict = field(default_factory=dict)
    groups: tuple[int, ...] | None = None


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor
    diagnostics: dict[str, torch.Tensor]
    targets: TrainingTargets


class Objective(ObjectiveHooks):
    """The contract of a training objective: what it declares, and what the trainer calls.

    Class attributes, read without building the objective (by the config's checks, the
    samplers and the reproduction runner):

    - ``name``: its key in ``shortcut_mini.objectives.OBJECTIVES`` (``TrainConfig.method``);
    - ``sampler``: the key of ``shortcut_mini.samplers.SAMPLERS`` that samples its runs;
    - ``needs_teacher``: whether it distils a finished flow-matching run (``TrainConfig.teacher``);
    - ``level_embeddings``: the step-size embeddings it can train (default: every one);
    - ``default_level_embedding``: the one it trains when the config names none;
    - ``settings``: the dataclass of its own settings (a ``MethodSettings`` subclass, given as
      ``TrainConfig.method_args``; default: none), whose fields are keywords of its constructor;
    - ``weights_per_budget``: whether a finished run samples each step budget with weights of
      its own, indexed in the run folder's ``stages/stages.json`` (progressive distillation's
      students; read by ``shortcut_mini.budget_runs``), rather than with the run's weights;
    - ``config_problems(cfg)``: what a ``TrainConfig`` asks that the method cannot train
      (``TrainConfig`` reports the first as a ``ConfigError``; default: nothing);
    - ``trains_aligned_steps(cfg)``: whether a run of ``cfg`` trains a step of size ``d`` only
      from start times that are multiples of ``d``, so that sampling warns about a schedule
      that starts a step elsewhere (default: False).

    ``loss(model, x1, y, *, generator, step, ema_model)`` turns a batch into an
    ``ObjectiveOutput``; the hooks (``setup``, ``on_step``, ``state_dict``,
    ``load_state_dict``, ``training_network``) have the no-op defaults of
    ``ObjectiveHooks`` (``lifecycle``).
    """

    name: str
    sampler: str
    needs_teacher: bool = False
    level_embeddings: tuple[str, ...] = LEVEL_EMBEDDINGS
    default_level_embedding: str = DEFAULT_LEVEL_EMBEDDING
    settings: type[MethodSettings] = NoSettings
    weights_per_budget: bool = False

    @classmethod
    def trains_aligned_steps(cls, cfg) -> bool:
        """Whether a run of ``cfg`` trains each step size ``d`` only from multiples of ``d``."""
        return False

    @classmethod
    def config_problems(cls, cfg) -> dict[str, str]:
        """``{field: the problem and its fix}`` for each field of the run config ``cfg`` (a
        ``TrainConfig`` that passed its own checks) that this method cannot train with."""
        return {}

    def loss(
        self,
        model: nn.Module,
        x1: torch.Tensor,
        y: torch.Tensor | None,
        *,
        generator: torch.Generator,
        **kwargs,
    ) -> ObjectiveOutput:
        """The loss of one batch ``x1`` (labels ``y``); the trainer also passes ``step`` and
        ``ema_model``, which an objective may ignore."""
        raise NotImplementedError(f"{type(self).__name__} must define loss()")


def noise_like(
    x1: torch.Tensor, generator: torch.Generator, x0: torch.Tensor | None = None
) -> torch.Tensor:
    """``x0`` when given, else standard normal noise of ``x1``'s shape, device and dtype, drawn
    from ``generator``: the ``x0`` of the path ``x_t = (1 - t) x0 + t x1``."""
    if x0 is not None:
        return x0
    return torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)


def online_network(model: nn.Module) -> nn.Module:
    """The online network under a ``DistributedDataParallel`` wrapper (``model`` itself when
    there is none): targets computed from it under ``no_grad`` need no gradient sync."""
    return getattr(model, "module", model)


def target_network(target_weights: str, model: nn.Module, ema_model: nn.Module | None) -> nn.Module:
    """The network that computes self-consistency targets: the online weights (``"online"``)
    or the EMA's (``"ema"``, which the trainer must pass)."""
    if target_weights == "ema" and ema_model is None:
        raise ValueError("target_weights='ema' needs the trainer to pass ema_model")
    return ema_model if target_weights == "ema" else online_network(model)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The flow-matching path ``x_t = (1 - t) x0 + t x1`` (t = 0 noise, t = 1 data)."""
    t = t.view(-1, *([1] * (x1.dim() - 1))).to(x1.dtype)
    return (1 - t) * x0 + t * x1


def drop_labels(
    y: torch.Tensor | None, p: float, num_classes: int, generator: torch.Generator
) -> torch.Tensor | None:
    """Replace each label by the null label ``num_classes`` with probability ``p`` (for CFG)."""
    if y is None or p <= 0 or num_classes <= 0:
        return y
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p
    return torch.where(drop, torch.full_like(y, num_classes), y)


def group_diagnostics(
    per_row: torch.Tensor, group: torch.Tensor, groups: tuple[int, ...] | None = None
) -> dict[str, torch.Tensor]:
    """The mean of ``per_row`` over the rows of each group: ``loss_flow`` (group ``-1``) and
    ``loss_l{l}`` (group ``l``), for the groups present.

    With ``groups`` (the ids present, as Python ints) the means come from one masked sum over a
    ``[rows, groups]`` one-hot table built on the device: no host synchronisation. Without it the
    ids are read with ``torch.unique(...).tolist()``, which waits for the GPU.
    """
    per_row = per_row.detach().float()
    if groups is None:
        groups = tuple(torch.unique(group).tolist())
    if not groups:
        return {}
    lo, hi = min(groups), max(groups)
    ids = torch.arange(lo, hi + 1, device=group.device)
    onehot = (group[:, None] == ids[None, :]).float()
    means = (per_row[:, None] * onehot).sum(0) / onehot.sum(0)
    return {("loss_flow" if g < 0 else f"loss_l{g}"): means[g - lo] for g in sorted(groups)}


def regression_loss(model: nn.Module, targets: TrainingTargets) -> ObjectiveOutput:
    """Mean squared error of ``model(x_t, t, level, y)`` against the targets, per row then mean.

    Diagnostics: the mean loss of flow-matching rows (``loss_flow``) and of self-consistency
    rows per trained level ``l`` (``loss_l{l}``, the step ``2**-l``), for the groups present
    (:func:`group_diagnostics`; free of host synchronisation when ``targets.groups`` is set).
    """
    pred = model(targets.x_t, targets.t, targets.level, targets.y)
    per_row = (pred.float() - targets.target.float()).pow(2).flatten(1).mean(dim=1)
    loss = per_row.mean()
    diagnostics = {"loss": loss.detach()}
    diagnostics.update(group_diagnostics(per_row, targets.group, targets.groups))
    return ObjectiveOutput(loss=loss, diagnostics=diagnostics, targets=targets)
