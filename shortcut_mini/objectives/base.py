"""What every training objective returns, and the regression loss they share.

An objective turns a batch of data ``x1`` (and labels ``y``) into model inputs and regression
targets (:class:`TrainingTargets`), then into a loss (:class:`ObjectiveOutput`). The trainer only
calls ``objective.loss(...)`` and never needs to know which objective it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["TrainingTargets", "ObjectiveOutput", "regression_loss", "interpolate", "drop_labels"]


@dataclass
class TrainingTargets:
    """One batch of model inputs and what the model should output for them.

    ``group`` names, per row, which diagnostic the row's loss is reported under: ``-1`` for
    flow-matching rows, ``l >= 0`` for self-consistency rows that train the step ``2**-l``.
    """

    x_t: torch.Tensor
    t: torch.Tensor
    level: torch.Tensor
    y: torch.Tensor | None
    target: torch.Tensor
    group: torch.Tensor
    extras: dict = field(default_factory=dict)


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor
    diagnostics: dict[str, torch.Tensor]
    targets: TrainingTargets


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


def regression_loss(model: nn.Module, targets: TrainingTargets) -> ObjectiveOutput:
    """Mean squared error of ``model(x_t, t, level, y)`` against the targets, per row then mean.

    Diagnostics: the mean loss of flow-matching rows (``loss_flow``) and of self-consistency
    rows per trained level ``l`` (``loss_l{l}``, the step ``2**-l``), for the groups present.
    """
    pred = model(targets.x_t, targets.t, targets.level, targets.y)
    per_row = (pred.float() - targets.target.float()).pow(2).flatten(1).mean(dim=1)
    loss = per_row.mean()
    diagnostics = {"loss": loss.detach()}
    for g in torch.unique(targets.group).tolist():
        name = "loss_flow" if g < 0 else f"loss_l{g}"
        diagnostics[name] = per_row[targets.group == g].detach().mean()
    return ObjectiveOutput(loss=loss, diagnostics=diagnostics, targets=targets)
