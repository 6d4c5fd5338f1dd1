"""Which weights sample a given step budget: for progressive distillation, a stage's student.

A method whose objective declares ``weights_per_budget`` (progressive distillation) trains
weights of their own for each budget (``M / 2``, ..., 1 steps), each saved at its stage end and
named in the run folder's ``stages/stages.json`` (``objectives.progressive_distillation``);
sampling ``N`` steps must use the weights that trained ``N``. Every other method samples any
budget with the run's own weights.

One rule, in every entry point (``sample``, ``evaluate``, the command line, the reproduction):
:func:`budget_weights` gives the run that samples a budget of a trained run, and refuses a
budget no stage trained (or a schedule of unequal steps, which no student takes);
:func:`missing_budgets` names the budgets a run cannot sample (a reproduction table leaves
those cells blank).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import torch

from .levels import dyadic_schedule
from .objectives import OBJECTIVES
from .objectives.progressive_distillation import STAGE_INDEX, STAGES_DIR, read_stage_index
from .run_store import CHECKPOINT_NAME
from .train.loading import load_run
from .train.trainer import Run

__all__ = ["run_for_budget", "budget_sources", "budget_weights", "missing_budgets"]


def budget_sources(path: str | Path) -> dict[int, str]:
    """``{budget: where its weights come from}`` of a run folder with weights per budget
    (``"teacher <folder>"``, ``"stage s (<file>)"``)."""
    out = {}
    for budget, entry in sorted(read_stage_index(path).items(), reverse=True):
        if entry["stage"] == "teacher":
            out[budget] = f"teacher {entry['file']}"
        else:
            out[budget] = f"stage {entry['stage']} ({entry['file']})"
    return out


def _budget_of(steps) -> int | None:
    """The number of equal steps of ``steps`` (an int budget, or a schedule of equal sizes);
    None for a schedule of unequal steps."""
    if isinstance(steps, int):
        return steps
    sizes = {Fraction(d).limit_denominator(1 << 20) for d in steps}
    return len(steps) if len(sizes) == 1 and sizes == {Fraction(1, len(steps))} else None


def _per_budget(run: Run) -> bool:
    """Whether ``run``'s method samples each budget with weights of its own."""
    return bool(getattr(OBJECTIVES.get(run.config.method), "weights_per_budget", False))


def _not_trained(path, method: str, trained: list[int], steps) -> ValueError:
    return ValueError(
        f"{path} is a {method} run: it has students for the budgets {trained} (one per "
        f"finished stage), not {steps}; sample one of those (a stage's student takes only "
        "its own number of equal steps)"
    )


def _stage_run(path: Path, budget: int, entry: dict, device) -> Run:
    """The student of ``entry`` (a stage's snapshot, or the teacher), loaded onto ``device``."""
    teacher = entry["stage"] == "teacher"
    source = Path(entry["file"]) if teacher else path / entry["file"]
    if not source.exists():
        what = "the teacher's run folder" if teacher else "the student's file"
        raise ValueError(
            f"{path}: the {budget}-step budget is sampled from {what} {source}, named in "
            f"{STAGES_DIR}/{STAGE_INDEX}, and it is missing (deleted or moved?). Put it back, "
            f"or sample another budget ({sorted(read_stage_index(path))})"
        )
    run = load_run(source, device)
    if not teacher:  # a snapshot: its weights take exactly this budget
        run.budget, run.out_dir = budget, str(path)
    return run


def _last_stage_started(path: Path, run: Run, budget: int, entry: dict) -> None:
    """Refuse the run's own checkpoint as the last stage's student before that stage trained
    (the index names it when the stage starts; a checkpoint of that step or before is of the
    stage before)."""
    if entry.get("step") is not None and run.step <= entry["step"]:
        raise ValueError(
            f"{path}: the {budget}-step stage (stage {entry['stage']}) has not started "
            f"training yet (the last checkpoint is of step {run.step}); resume the run to its "
            "end first"
        )


def run_for_budget(path: str | Path, budget: int, device: str | torch.device = "cpu") -> Run:
    """The run to sample ``budget`` steps from: the stage's snapshot of a progressive-distillation
    run (the teacher for ``budget = M``), the run in ``path`` itself for any other method.

    Raises ``ValueError`` naming the budgets a progressive-distillation run has, when
    ``budget`` is not one of them (or its stage has not been trained yet).
    """
    return budget_weights(load_run(path, device), budget)


def budget_weights(run: Run, steps) -> Run:
    """The run that samples ``steps`` (an int budget or a schedule of step sizes) of the trained
    ``run``: ``run`` itself, or for a progressive-distillation run the student of that budget's
    stage, loaded from its folder onto the device of ``run``'s EMA weights.

    Raises ``ValueError`` for a progressive-distillation budget no stage trained (naming those
    that were), a schedule of unequal steps, or a student whose file is missing.
    """
    if not _per_budget(run) or run.budget is not None and run.budget == steps:
        return run
    budget = _budget_of(steps)
    if run.out_dir is None:
        if budget == 1:  # a finished run in memory: its own weights are the 1-step student
            return run
        raise ValueError(
            f"a {run.config.method} run samples each budget with that stage's student, kept in its "
            "out_dir; this run has none, so it samples only 1 step. Train it with an out_dir "
            "(or load it with load_run(folder))"
        )
    path = Path(run.out_dir)
    index = read_stage_index(path)
    if budget is None or budget not in index:
        raise _not_trained(path, run.config.method, sorted(index), steps)
    if run.budget == budget:
        return run
    entry = index[budget]
    if entry["file"] == CHECKPOINT_NAME:  # the last stage trains until the run's end
        own = run if run.budget is None else _stage_run(path, budget, entry, _device(run))
        _last_stage_started(path, own, budget, entry)
        return own
    return _stage_run(path, budget, entry, _device(run))


def _device(run: Run) -> torch.device:
    return next(run.ema.parameters()).device


def missing_budgets(run: Run, steps) -> dict[int, str]:
    """``{budget: why}`` for each budget of ``steps`` that ``run`` cannot sample: above its base
    steps ``M``, or (progressive distillation) a budget no stage trained a student for."""
    missing = {}
    per_budget = _per_budget(run) and run.out_dir
    trained = sorted(read_stage_index(run.out_dir)) if per_budget else None
    for budget in steps:
        try:
            dyadic_schedule(int(budget), run.config.M)
        except ValueError as e:
            missing[int(budget)] = str(e)
            continue
        if trained is not None and int(budget) not in trained:
            missing[int(budget)] = (
                f"{run.config.method} trains one student per budget, for {trained} only"
            )
    return missing
