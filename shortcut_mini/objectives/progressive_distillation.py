"""Progressive distillation (Salimans & Ho, 2022) of a flow-matching teacher, as the official
code's ``baselines/targets_progressive.py`` (the paper's Table 1 baseline).

Training is cut into ``log2(M)`` equal stages (seven for ``M = 128``). In stage ``s`` the student
takes steps of ``d = 2**-l``, ``l = log2(M) - 1 - s`` (budgets 64, 32, ..., 1), from ``t`` on its
own grid ``i / 2**l``; its target is the mean velocity of two teacher half-steps:

    v1 = v_T(x_t, t),   x' = clip(x_t + (d/2) v1),   v2 = v_T(x', t + d/2),
    target = (v1 + v2) / 2,

so that one student step ``x_t + d * target`` equals two teacher steps of ``d / 2``. The first
teacher is the finished flow-matching run (its EMA weights, the student starts from its weights);
at each stage end the teacher is replaced by the student. The network ignores the step size
(the official ``ignore_dt``: every query uses the flow-matching token).

The result at budget ``N`` is the student of the stage that trained ``N`` steps: each stage's
student is written to ``stages/`` in the run folder at its stage end, and ``stages/stages.json``
records which file gives which budget (:func:`read_stage_index`); budget ``M`` is the teacher,
budget 1 the run's own last checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..common import atomic_write_json
from ..errors import UserError
from ..levels import check_base_steps, flow_level
from ..run_store import CHECKPOINT_NAME, run_state, save_checkpoint
from .base import (
    Objective,
    ObjectiveOutput,
    TrainingTargets,
    interpolate,
    noise_like,
    regression_loss,
)
from .lifecycle import ObjectiveContext
from .shortcut import TARGET_WEIGHTS
from .teacher import setup_teacher

__all__ = [
    "ProgressiveDistillation",
    "progressive_distillation_target",
    "read_stage_index",
    "stage_files",
    "StageIndexError",
    "STAGES_DIR",
    "STAGE_FILE_GLOB",
    "STAGE_INDEX",
]

STAGES_DIR = "stages"
STAGE_INDEX = "stages.json"
STAGE_FILE_GLOB = "stage*_*steps.pt"
"""The names of the students' snapshots in ``stages/`` (``stage0_64steps.pt``, ...)."""


@torch.no_grad()
def progressive_distillation_target(
    teacher: nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    level: torch.Tensor,
    y: torch.Tensor | None,
    *,
    d: float,
    clip: float | None = 4.0,
) -> torch.Tensor:
    """``(v1 + v2) / 2`` of two teacher half-steps of ``d / 2`` from ``(x_t, t)`` (no gradient)."""
    half = d / 2
    v1 = teacher(x_t, t, level, y).to(x_t.dtype)
    x_mid = x_t + half * v1
    if clip is not None:
        x_mid = x_mid.clamp(-clip, clip)
    v2 = teacher(x_mid, t + half, level, y).to(x_t.dtype)
    return (v1 + v2) / 2


class StageIndexError(UserError, ValueError):
    """``stages/stages.json`` of a progressive-distillation run is missing or damaged."""


def _index_path(run_dir) -> Path:
    return Path(run_dir) / STAGES_DIR / STAGE_INDEX


def read_stage_index(run_dir) -> dict[int, dict]:
    """``{budget: {"stage", "file", "step"}}`` of a progressive-distillation run folder: which
    stage's student gives which step budget (``file`` relative to ``run_dir``, or the teacher's
    folder for budget ``M``).

    Raises :class:`StageIndexError` naming the file and the fix when it is missing or damaged.
    """
    path = _index_path(run_dir)
    if not path.exists():
        raise StageIndexError(
            f"no {STAGES_DIR}/{STAGE_INDEX} in {run_dir}: it is written by a "
            "progressive_distillation run trained with out_dir set (was it deleted or moved? "
            "put it back, or train the run again with --overwrite)"
        )
    fix = (
        f"put back an intact copy of {path}, or train the run again into {run_dir} with "
        "--overwrite (overwrite=True)"
    )
    try:
        index = json.loads(path.read_bytes().decode("utf-8"))
        entries = {int(k): v for k, v in index.items()}
        ok = all(isinstance(v, dict) and {"stage", "file"} <= set(v) for v in entries.values())
    except (OSError, ValueError, AttributeError) as e:
        raise StageIndexError(
            f"{path} is damaged ({type(e).__name__}: {str(e)[:120]}); it records which stage's "
            f"student samples which step budget: {fix}"
        ) from None
    if not ok:
        raise StageIndexError(
            f"{path} is damaged (an entry lacks its stage or file); it records which stage's "
            f"student samples which step budget: {fix}"
        )
    return entries


def stage_files(run_dir) -> list[Path]:
    """The files a progressive-distillation run wrote in ``run_dir/stages`` (its index and its
    students), and nothing else that may lie there."""
    folder = Path(run_dir) / STAGES_DIR
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob(STAGE_FILE_GLOB) if p.is_file()]
    return files + [p for p in (folder / STAGE_INDEX,) if p.is_file()]


class ProgressiveDistillation(Objective):
    """Progressive distillation, ``log2(M)`` stages from ``M / 2`` steps down to one.

    Args:
        M: base steps; stage ``s`` trains the budget ``M / 2**(s+1)``.
        teacher: the first teacher's run folder (a finished flow-matching run).
        target_weights: which student weights become the next teacher at a stage end: the EMA
            ("ema", the official code) or the online weights ("online", this project's default,
            as for shortcut models: a stage is shorter than the EMA's memory in short runs).
        clip: clamp the teacher's midpoint ``x'`` to ``[-clip, clip]`` (official: 4).

    State (checkpointed): the current stage, the stage length and the current teacher's weights.
    The stage length is ``steps // log2(M)`` of the run's first start, kept on resume (steps past
    the last stage train the one-step student further).
    """

    name = "progressive_distillation"
    needs_teacher = True
    sampler = "flow"  # every query uses the d = 0 token, as the official code
    weights_per_budget = True  # each stage's student, in stages/

    @classmethod
    def config_problems(cls, cfg) -> dict[str, str]:
        """At least one training step per stage: ``steps >= log2(M)``."""
        stages = cfg.M.bit_length() - 1
        if cfg.steps < stages:
            return {
                "steps": f"progressive_distillation trains log2(M) = {stages} stages: it needs "
                f"steps >= {stages}, got {cfg.steps}"
            }
        return {}

    def __init__(
        self,
        M: int = 128,
        teacher: str | None = None,
        target_weights: str = "online",
        clip: float | None = 4.0,
    ):
        self.K = check_base_steps(M)
        if target_weights not in TARGET_WEIGHTS:
            raise ValueError(
                f"target_weights must be one of {TARGET_WEIGHTS}, got {target_weights!r}"
            )
        self.M, self.teacher_path = M, teacher
        self.target_weights, self.clip = target_weights, clip
        self.stage, self.stage_steps = 0, None
        self.teacher: nn.Module | None = None
        self._teacher_net: nn.Module | None = None  # what runs the teacher (compiled?)
        self._ctx: ObjectiveContext | None = None

    @property
    def n_stages(self) -> int:
        return self.K

    def budget(self, stage: int) -> int:
        """The step budget stage ``stage`` trains: ``M / 2**(stage + 1)``."""
        return self.M >> (stage + 1)

    def stage_at(self, step: int) -> int:
        return min(self.K - 1, step // self.stage_steps)

    # ---- the trainer's hooks -----------------------------------------------------------
    def setup(self, context: ObjectiveContext) -> None:
        """Load the first teacher; a fresh run starts the student from it and its stage index."""
        if context.total_steps < self.K:
            raise ValueError(
                f"progressive_distillation trains {self.K} stages: it needs steps >= {self.K}, "
                f"got {context.total_steps}"
            )
        loaded = setup_teacher(self.name, self.teacher_path, context)
        self.teacher, self._ctx = loaded.ema, context
        # compiled as the student is; it shares the teacher's parameters, which each stage's
        # end overwrites in place (load_state_dict), so it runs the current teacher
        self._teacher_net = context.compile(self.teacher)
        self.stage, self.stage_steps = 0, context.total_steps // self.K
        if not context.resumed and context.run_dir is not None and context.is_main:
            self._start_index(context.run_dir, loaded.path)

    def on_step(self, step: int, total_steps: int) -> None:
        """At the first step of a new stage: snapshot the finished stage's student and make
        it the teacher."""
        while self.stage < self.stage_at(step):
            self._end_stage(step)

    def state_dict(self) -> dict:
        return {
            "stage": self.stage,
            "stage_steps": self.stage_steps,
            "teacher": self.teacher.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.stage, self.stage_steps = int(state["stage"]), int(state["stage_steps"])
        self.teacher.load_state_dict(state["teacher"])

    # ---- stages ------------------------------------------------------------------------
    def _end_stage(self, step: int) -> None:
        ctx = self._ctx
        source = ctx.ema_model if self.target_weights == "ema" else ctx.model
        if ctx.run_dir is not None and ctx.is_main:
            self._write_snapshot(ctx, step)
        with torch.no_grad():
            self.teacher.load_state_dict(source.state_dict())
        self.stage += 1
        if self.stage == self.K - 1 and ctx.run_dir is not None and ctx.is_main:
            self._add_to_index(ctx.run_dir, 1, self.stage, CHECKPOINT_NAME, step)

    def _write_snapshot(self, ctx: ObjectiveContext, step: int) -> None:
        """The finished stage's student as a checkpoint file ``shortcut_mini.load_run`` reads."""
        budget = self.budget(self.stage)
        name = f"{STAGES_DIR}/stage{self.stage}_{budget}steps.pt"
        state = run_state(
            step=step,
            config=ctx.config,
            data_info=ctx.data_info,
            model=ctx.model,
            ema=ctx.ema_model,
            train_seconds=0.0,
        )
        save_checkpoint(ctx.run_dir / name, {**state, "stage": self.stage, "budget": budget})
        self._add_to_index(ctx.run_dir, budget, self.stage, name, step)

    def _start_index(self, run_dir: Path, teacher: Path) -> None:
        for old in stage_files(run_dir):  # of an earlier start in this folder (nothing else)
            old.unlink()
        entry = {"stage": "teacher", "file": str(Path(teacher).resolve()), "step": None}
        index = {str(self.M): entry}
        if self.K == 1:  # one stage: the run's own checkpoint is its student
            index["1"] = {"stage": 0, "file": CHECKPOINT_NAME, "step": 0}
        atomic_write_json(_index_path(run_dir), index)

    def _add_to_index(self, run_dir: Path, budget: int, stage: int, file: str, step: int):
        path = _index_path(run_dir)
        index = {str(k): v for k, v in read_stage_index(run_dir).items()} if path.exists() else {}
        index[str(budget)] = {"stage": stage, "file": file, "step": step}
        atomic_write_json(path, index)

    # ---- targets -----------------------------------------------------------------------
    def make_targets(self, x1, y, *, generator, teacher: nn.Module, x0=None) -> TrainingTargets:
        """Rows of the current stage: ``t = i / 2**l`` with ``l`` the student's level."""
        n = x1.shape[0]
        level_id = self.K - 1 - self.stage
        n_starts = 2**level_id
        x0 = noise_like(x1, generator, x0)
        t = torch.randint(0, n_starts, (n,), generator=generator, device=x1.device).float()
        t = t / n_starts
        token = torch.full((n,), flow_level(self.M), device=x1.device, dtype=torch.long)
        x_t = interpolate(x0, x1, t)
        target = progressive_distillation_target(
            teacher, x_t, t, token, y, d=2.0**-level_id, clip=self.clip
        )
        group = torch.full((n,), level_id, device=x1.device, dtype=torch.long)
        return TrainingTargets(x_t=x_t, t=t, level=token, y=y, target=target, group=group)

    def loss(self, model: nn.Module, x1, y, *, generator, **_) -> ObjectiveOutput:
        if self.teacher is None:
            raise RuntimeError("ProgressiveDistillation.setup() loads the teacher: call it first")
        teacher = self.teacher if self._teacher_net is None else self._teacher_net
        targets = self.make_targets(x1, y, generator=generator, teacher=teacher)
        return regression_loss(model, targets)
