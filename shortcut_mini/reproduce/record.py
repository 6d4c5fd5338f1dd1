"""One run's results record: what it measured and what produced it (:ref:`the book's design notes <design-evaluation>`).

:func:`build_record` turns a trained :class:`~shortcut_mini.Run` and its
:class:`~shortcut_mini.evaluate.EvalTable` into a dict that follows ``results.schema.json``;
:func:`write_record` validates it and writes it atomically; :func:`read_record` reads and validates.
"""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..common import COMMIT_ENV, atomic_write_bytes, git_commit, run_git
from .presets import run_name
from .schema import SCHEMA_VERSION, validate_record

__all__ = [
    "build_record",
    "device_info",
    "environment",
    "git_dirty",
    "read_record",
    "record_label",
    "record_stem",
    "record_world_size",
    "teacher_info",
    "write_record",
]


DIRTY_ENV = "SHORTCUT_MINI_DIRTY"


def git_dirty(cwd: str | os.PathLike | None = None) -> bool | None:
    """True if tracked files have uncommitted changes (``git status``); None if unknown.

    Where the commit comes from ``$SHORTCUT_MINI_COMMIT`` (a copy of the tree without its own
    repository, e.g. on a rented GPU), ``git status`` there says nothing about that commit: the
    answer is then ``$SHORTCUT_MINI_DIRTY`` (``0``/``1``) or None.
    """
    if os.environ.get(COMMIT_ENV, "").strip():
        flag = os.environ.get(DIRTY_ENV, "").strip().lower()
        return {"0": False, "false": False, "1": True, "true": True}.get(flag)
    out = run_git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return None if out is None else bool(out)


def record_world_size(record: dict) -> int:
    """Training processes of a record (records written before the field existed: 1)."""
    return int(record.get("world_size", 1))


def record_stem(record: dict) -> str:
    """File stem of a record (and its grid) in a batch or published folder; see ``run_name``."""
    return run_name(record["method"], record["seed"], record_world_size(record))


def record_label(record: dict) -> str:
    """The row a record belongs to in a summary: its method, plus the GPU count if above 1."""
    ws = record_world_size(record)
    return record["method"] + (f", {ws} GPUs" if ws > 1 else "")


def _world_size(value: int | None = None) -> int:
    """The number of training processes: ``value``, else this process's ``WORLD_SIZE`` (1)."""
    return int(value) if value is not None else int(os.environ.get("WORLD_SIZE", "1"))


def device_info(device, count: int | None = None) -> dict:
    """``{"name", "count"}``: the GPU's name and the number of training processes
    (``count``, else ``WORLD_SIZE``)."""
    import torch

    device = torch.device(device)
    count = _world_size(count)
    if device.type == "cuda":
        return {"name": torch.cuda.get_device_name(device), "count": count}
    return {"name": device.type, "count": count}


def environment(device, count: int | None = None) -> dict:
    """Device (``count`` training processes, see :func:`device_info`), library versions and git
    state of this process."""
    import torch

    from .. import __version__

    return {
        "device": device_info(device, count),
        "versions": {
            "torch": str(torch.__version__),
            "python": sys.version.split()[0],
            "shortcut_mini": __version__,
        },
        "git": {"commit": git_commit(), "dirty": git_dirty()},
    }


def _num(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def teacher_info(teacher: str | os.PathLike | None) -> dict | None:
    """What the record says of a two-stage run's teacher (the run folder ``teacher``): its
    folder's name, method, seed, training steps and batch, and its training images
    (steps x batch), read from the folder's ``config.json``; None without a teacher."""
    if teacher is None:
        return None
    path = Path(teacher)
    info = dict(run=path.name, method=None, seed=None, train_steps=None, batch_size=None)
    info["images"] = None
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return info
    info.update(method=cfg.get("method"), seed=cfg.get("seed"), train_steps=cfg.get("steps"))
    info["batch_size"] = cfg.get("batch_size")
    if isinstance(info["train_steps"], int) and isinstance(info["batch_size"], int):
        info["images"] = info["train_steps"] * info["batch_size"]
    return info


def _missing(table) -> list[dict]:
    """The budgets the run could not sample, with why (``evaluate_run`` notes them)."""
    missing = table.meta.get("missing_budgets") or {}
    return [
        {"steps": int(b), "reason": str(why)}
        for b, why in sorted(missing.items(), key=lambda kv: int(kv[0]))
    ]


def build_record(
    *,
    preset: str,
    run,
    table,
    eval_seconds: float,
    command: str,
    sample_grid: str | None = None,
    world_size: int | None = None,
    label: str | None = None,
) -> dict:
    """The record of one run (see ``results.schema.json``).

    ``label``: the preset's row the run belongs to (its ``method`` field; default the run's
    method; a row such as ``shortcut_16k`` keeps its objective in ``config.method``).

    ``world_size``: the number of processes that trained ``run`` (default: this process's
    ``WORLD_SIZE``, 1 outside ``torchrun``); it is also the device count. ``train_images`` is
    this run's training images (steps x batch; a two-stage run's student); a two-stage run also
    names its ``teacher`` and the teacher's images (``teacher_images``)."""
    evaluation = [
        {
            "steps": int(row["steps"]),
            "distance": row["metric"],
            "value": float(row["distance"]),
            "std": _num(float(row.get("distance_std", float("nan")))),
            "n_samples": int(row["n_samples"]),
            "n_seeds": int(row.get("n_seeds", 1)),
            "reference": str(row["reference"]),
            "sampling_seconds": float(row["sample_seconds"]),
        }
        for row in sorted(table.rows, key=lambda r: r["steps"])
    ]
    cfg = run.config
    procs = _world_size(world_size)
    teacher = teacher_info(cfg.teacher)
    return {
        "schema_version": SCHEMA_VERSION,
        "preset": preset,
        "method": label or cfg.method,
        "seed": int(cfg.seed),
        "config": cfg.to_dict(),
        "train_steps": int(run.step),
        "train_images": int(run.step) * int(cfg.batch_size),
        "teacher": teacher,
        "teacher_images": None if teacher is None else teacher["images"],
        "evaluation": evaluation,
        "missing_budgets": _missing(table),
        "train_seconds": round(float(run.train_seconds), 3),
        "eval_seconds": round(float(eval_seconds), 3),
        "world_size": procs,
        **environment(run.device, procs),
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sample_grid": sample_grid,
        "classifier_accuracy": _num(table.meta.get("classifier_accuracy")),
    }


def write_record(record: dict, path: str | Path) -> Path:
    """Validate ``record`` and write it (atomically) to ``path``."""
    validate_record(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode())
    return path


def read_record(path: str | Path) -> dict:
    """Read a record and validate it (raises :class:`~.schema.RecordError` or ``ValueError``)."""
    record = json.loads(Path(path).read_text())
    validate_record(record)
    return record
