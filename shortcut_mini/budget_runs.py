"""Which weights sample a given step budget: for progressive distillation, a stage's student.

A progressive-distillation run trains one student per budget (``M / 2``, ..., 1 steps), each
saved at its stage end (``objectives.progressive_distillation``); sampling ``N`` steps must use
the student of the stage that trained ``N``, with the Euler sampler. Every other method samples
any budget with the run's own weights. :func:`budget_weights` gives the run that samples a budget
of a trained run; :func:`missing_budgets` names the budgets a run cannot sample (a reproduction
table leaves those cells blank).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .api import load_run
from .levels import dyadic_schedule
from .objectives.progressive_distillation import read_stage_index
from .train.checkpoint import load_checkpoint
from .train.trainer import Run

__all__ = ["run_for_budget", "budget_sources", "budget_weights", "missing_budgets"]


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


def _per_budget(run: Run) -> bool:
    """True for a run that keeps one student per budget in its folder."""
    return run.config.method == "progressive_distillation"


def budget_weights(run: Run, budget: int) -> Run:
    """The run that samples ``budget`` steps of the trained ``run``: ``run`` itself, or for a
    progressive-distillation run the student of that budget's stage, loaded from its folder
    onto the device of ``run``'s EMA weights (see :func:`run_for_budget`)."""
    if not _per_budget(run):
        return run
    if run.out_dir is None:
        raise ValueError(
            "a progressive_distillation run samples each budget with that stage's student, kept "
            "in its out_dir; train it with an out_dir (or load it with load_run(folder))"
        )
    return run_for_budget(run.out_dir, budget, device=next(run.ema.parameters()).device)


def missing_budgets(run: Run, steps) -> dict[int, str]:
    """``{budget: why}`` for each budget of ``steps`` that ``run`` cannot sample: above its base
    steps ``M``, or (progressive distillation) a budget no stage trained a student for."""
    missing = {}
    trained = sorted(read_stage_index(run.out_dir)) if _per_budget(run) and run.out_dir else None
    for budget in steps:
        try:
            dyadic_schedule(int(budget), run.config.M)
        except ValueError as e:
            missing[int(budget)] = str(e)
            continue
        if trained is not None and int(budget) not in trained:
            missing[int(budget)] = (
                f"progressive_distillation trains one student per budget, for {trained} only"
            )
    return missing
