"""Which run of a batch teaches which: two-stage methods distil the batch's own flow-matching run.

A method that distils a teacher (``needs_teacher``: consistency distillation, progressive
distillation, reflow) gets ``teacher=`` the training folder of the batch's flow-matching run of
the same seed, or of the lowest flow-matching seed (0) where flow matching has no run of that
seed (:func:`teacher_seed`). The runner trains the teacher first (:func:`order_runs`) and checks,
before anything runs, that every teacher is in the batch or already finished in its folder.
"""

from __future__ import annotations

__all__ = ["TEACHER_METHOD", "needs_teacher", "order_runs", "teacher_seed"]

TEACHER_METHOD = "flow_matching"
"""The method whose runs teach (``objectives.teacher.TEACHER_METHODS``)."""


def needs_teacher(method: str) -> bool:
    """True for a method that distils a finished flow-matching run."""
    from ..objectives import OBJECTIVES

    return bool(getattr(OBJECTIVES.get(method), "needs_teacher", False))


def teacher_seed(seed: int, teacher_seeds) -> int:
    """The flow-matching seed that teaches a run of ``seed``: the same seed if flow matching
    has a run of it (``teacher_seeds``), else the lowest of those (0)."""
    seeds = sorted(int(s) for s in teacher_seeds)
    if not seeds:
        raise ValueError("no flow-matching seeds to teach from: give flow_matching a seed")
    return int(seed) if int(seed) in seeds else seeds[0]


def order_runs(runs: list[tuple[str, int]], teacher_of) -> list[tuple[str, int]]:
    """``runs`` seed by seed (a batch cut short still has every method of its first seed), each
    two-stage run after its teacher: ``teacher_of(method, seed)`` gives the teacher's
    ``(method, seed)`` or None."""

    def key(run: tuple[str, int]) -> tuple[int, bool]:
        teacher = teacher_of(*run)
        return (run[1] if teacher is None else max(run[1], teacher[1]), teacher is not None)

    return sorted(runs, key=key)  # stable: the preset's method order within a seed
