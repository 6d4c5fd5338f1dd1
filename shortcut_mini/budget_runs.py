"""Which weights sample a given step budget: for progressive distillation, a stage's student.

A progressive-distillation run trains one student per budget (``M / 2``, ..., 1 steps), each
saved at its stage end (``objectives.progressive_distillation``); sampling ``N`` steps must use
the student of the stage that trained ``N``, with the Euler sampler. Every other method samples
any budget with the run's own weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .api import load_run
from .objectives.progressive_distillation import read_stage_index
from .train.checkpoint import load_checkpoint
from .train.trainer import Run

__all__ = ["run_for_budget", "budget_sources"]


def budget_sources(path: str | Path) -> dict[int, str]:
    """``{budget: where its weights come from}`` of a progressive-distillation run folder
    (``"teacher <folder>"``, ``"stage s (<file>)"``)."""
    out = {}
    for budget, entry in sorted(read_stage_index(path).items(), reverse=True):
        if entry["stage"] == "teacher":
            out[budget] = f"teacher {entry['file']}"
        else:
            out[budget] = f"stage {entry['stage']} ({entry['file']})"
    return out


def run_for_budget(path: str | Path, budget: int, device: str | torch.device = "cpu") -> Run:
    """The run to sample ``budget`` steps from: the stage's snapshot of a progressive-distillation
    run (the teacher for ``budget = M``), the run in ``path`` itself for any other method.

    Raises ``ValueError`` naming the budgets a progressive-distillation run has, when
    ``budget`` is not one of them (or its stage has not been trained yet).
    """
    run = load_run(path, device)
    if run.config.method != "progressive_distillation":
        return run
    index = read_stage_index(path)
    if budget not in index:
        raise ValueError(
            f"{path} is a progressive_distillation run: it has students for the budgets "
            f"{sorted(index)} (one per finished stage), not {budget}; sample one of those"
        )
    entry = index[budget]
    if entry["file"] == "checkpoint.pt":  # the last stage trains until the run's end
        stage = load_checkpoint(path)["objective"]["stage"]
        if stage != entry["stage"]:
            raise ValueError(
                f"{path}: the {budget}-step stage (stage {entry['stage']}) has not started "
                f"training yet (the last checkpoint is of stage {stage}); resume the run to "
                "its end first"
            )
        return run
    source = entry["file"] if entry["stage"] == "teacher" else Path(path) / entry["file"]
    return load_run(source, device)
