"""The teacher of a two-stage method: a finished flow-matching run, loaded from its folder.

Consistency distillation, progressive distillation and reflow start from a trained
flow-matching model (the paper's Table 1 baselines, as the official code runs them). The
student has the teacher's network shape and starts from its weights, so the teacher must be a
finished run of the same model on the same data; :func:`load_teacher` says which of these
fails and how to fix it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..run_store import CheckpointError, load_checkpoint, network_from_state

__all__ = [
    "TEACHER_METHODS",
    "Teacher",
    "TeacherError",
    "init_student",
    "load_teacher",
    "setup_teacher",
    "SHAPE_FIELDS",
]

TEACHER_METHODS = ("flow_matching",)
"""Methods whose runs can teach (their ``d = 0`` token is a velocity field)."""

SHAPE_FIELDS = ("model", "model_overrides", "M", "level_embedding", "class_conditional")
"""Config fields that fix the network's shape and inputs: teacher and student must agree."""


class TeacherError(UserError, ValueError):
    """The teacher folder is missing, unfinished, or holds a run of another model or data."""


@dataclass
class Teacher:
    """A loaded teacher: its EMA network (frozen, on the device), its weights and its config."""

    path: Path
    config: object
    step: int
    ema: nn.Module
    online_state: dict
    ema_state: dict

    def fingerprint(self) -> str:
        """A hash of the teacher's EMA weights: pairs generated from it name it."""
        h = hashlib.sha256()
        for k, v in sorted(self.ema_state.items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:16]


def _read(path: Path) -> dict:
    if not path.is_dir():
        raise TeacherError(
            f"TrainConfig.teacher: no run folder at {path}. Train a flow-matching run there "
            f"first (method='flow_matching', out_dir='{path}'), or give the folder of one."
        )
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        raise TeacherError(
            f"TrainConfig.teacher: {path} holds no readable finished run ({e}). Train a "
            f"flow-matching run into it to the end first."
        ) from None


def _check(path: Path, state: dict, cfg, student_cfg, data_info: dict) -> None:
    if cfg.method not in TEACHER_METHODS:
        raise TeacherError(
            f"TrainConfig.teacher: {path} holds a {cfg.method!r} run; a teacher must be one of "
            f"{list(TEACHER_METHODS)}. Give the folder of a finished flow-matching run."
        )
    if state["step"] < cfg.steps:
        raise TeacherError(
            f"TrainConfig.teacher: the run in {path} is unfinished (step {state['step']} of "
            f"{cfg.steps}). Finish it first: rerun its training command (same config and "
            "out_dir) to resume it to the end."
        )
    wrong = {
        k: (getattr(cfg, k), getattr(student_cfg, k))
        for k in SHAPE_FIELDS
        if getattr(cfg, k) != getattr(student_cfg, k)
    }
    if wrong:
        listing = "; ".join(f"{k}: teacher {a!r}, student {b!r}" for k, (a, b) in wrong.items())
        fix = ", ".join(f"{k}={a!r}" for k, (a, _) in wrong.items())
        raise TeacherError(
            f"TrainConfig.teacher: {path} holds a run of another model shape ({listing}); the "
            f"student starts from the teacher's weights. Set {fix}, or train a teacher of "
            "the student's shape."
        )
    if state["data_info"] != data_info:
        raise TeacherError(
            f"TrainConfig.teacher: {path} was trained on other data ({state['data_info']}, "
            f"this run: {data_info}). Give a teacher trained on the same data (data, "
            "image_size, class_conditional), or train one."
        )


def load_teacher(path, *, student_config, data_info: dict, device) -> Teacher:
    """The finished run in folder ``path``, checked against the student's config and data.

    Raises :class:`TeacherError` naming the problem and the fix when the folder is missing,
    the run unfinished, not flow matching, of another network shape, or of other data.
    """
    path = Path(path)
    state = _read(path)
    # The teacher's config is read as the student's is (``TrainConfig.from_saved``): objectives
    # lie below the config module, which checks method names against them.
    cfg = type(student_config).from_saved(state["config"])
    _check(path, state, cfg, student_config, data_info)
    ema = network_from_state(cfg, state, "ema", device, frozen=True)
    return Teacher(path, cfg, state["step"], ema, state["model"], state["ema"])


def init_student(teacher: Teacher, model: nn.Module, ema_model: nn.Module) -> None:
    """Start the student from the teacher: online weights from its online weights, EMA from
    its EMA (as the official code, which loads the teacher's whole train state)."""
    with torch.no_grad():
        model.load_state_dict(teacher.online_state)
        ema_model.load_state_dict(teacher.ema_state)


def setup_teacher(method: str, path, context) -> Teacher:
    """What every teacher-based objective's ``setup`` starts with: the teacher of folder
    ``path`` (checked by :func:`load_teacher`), and, on a fresh start (not a resume), the
    student's online and EMA weights set from it."""
    if path is None:
        raise ValueError(
            f"{method} needs a teacher: set TrainConfig.teacher to the folder of a finished "
            "flow-matching run"
        )
    teacher = load_teacher(
        path, student_config=context.config, data_info=context.data_info, device=context.device
    )
    if not context.resumed:
        init_student(teacher, context.model, context.ema_model)
    return teacher
