"""The run folder ``out_dir``: its lock, the run it holds, and replacing that run.

A folder is locked (by rank 0) before anything in it is read or written. An old run that
``overwrite`` replaces is removed only once the new run has started cleanly (its data,
model, optimizer and objective built), so a new config that fails leaves the old run intact.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path

from ..common import TMP_SUFFIX, atomic_write_json
from ..config import ConfigError, TrainConfig
from .checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from .distributed import DistInfo, barrier, on_main
from .lock import RunLock
from .metrics_log import METRICS_NAME, truncate_metrics_log

__all__ = [
    "CONFIG_NAME",
    "OLD_RUN_ENTRIES",
    "RunDir",
    "RunExistsError",
    "clean_stale_temporaries",
    "remove_old_run",
]

CONFIG_NAME = "config.json"
_TRAINER_FILES = (CHECKPOINT_NAME, METRICS_NAME, CONFIG_NAME)
# What a run leaves in its folder: the trainer's files, ``evaluate``'s ``eval/`` and
# ``sample``'s pictures. ``overwrite`` removes these and nothing else a user keeps there.
OLD_RUN_ENTRIES = (*_TRAINER_FILES, "eval", "samples_*")


class RunExistsError(RuntimeError):
    """``out_dir`` holds a run with a different config."""


def clean_stale_temporaries(folder: Path) -> list[Path]:
    """Remove what a kill during an atomic write of the trainer's files left behind."""
    stale = [t for name in _TRAINER_FILES for t in folder.glob(f".{name}.*{TMP_SUFFIX}")]
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def remove_old_run(folder: Path) -> None:
    for pattern in OLD_RUN_ENTRIES:
        for entry in folder.glob(pattern):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


class RunDir:
    """``out_dir`` of one training call: :meth:`open`, then :meth:`start`, then :meth:`close`."""

    def __init__(self, cfg: TrainConfig, info: DistInfo):
        self.cfg, self.info = cfg, info
        self.path = Path(cfg.out_dir) if cfg.out_dir else None
        self.lock: RunLock | None = None
        self.replace_old = False  # an old run to remove once the new one has started
        self._created = False

    def open(self) -> dict | None:
        """Lock the folder and clean stale temporaries (rank 0); return the checkpoint to
        resume from, or ``None`` to start afresh."""
        if self.path is None:
            return None
        on_main(self.info, self._lock)
        try:
            return self._resume_state()
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.lock = RunLock(self.path).acquire()
        except BaseException:
            self.close()
            raise
        if self.lock.previous:  # flock is released when its holder dies: this one was killed
            print(
                f"took over the lock of {self.path} left by a run that no longer runs "
                f"(pid {self.lock.previous.get('pid')}, started {self.lock.previous.get('started')})",
                file=sys.stderr,
                flush=True,
            )
        clean_stale_temporaries(self.path)

    def _resume_state(self) -> dict | None:
        cfg, ckpt = self.cfg, self.path / CHECKPOINT_NAME
        self.replace_old = cfg.overwrite
        if not ckpt.exists():
            return None
        try:
            state = load_checkpoint(ckpt)
            saved = TrainConfig.from_dict(state["config"])
        except (CheckpointError, ConfigError) as e:
            if cfg.overwrite:  # nothing to resume: the unreadable run is replaced
                return None
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(
                f"{ckpt} holds a config this version cannot read ({e}). Train into another "
                "out_dir, or start afresh with overwrite=True (CLI: --overwrite)."
            ) from e
        diffs = cfg.differences(saved)
        if not diffs:
            self.replace_old = False
            return state
        if not cfg.overwrite:
            listing = "; ".join(f"{k}: saved {b!r}, now {a!r}" for k, (a, b) in diffs.items())
            raise RunExistsError(
                f"out_dir {self.path} holds a run with a different config ({listing}). Use "
                "another out_dir, or overwrite=True (CLI: --overwrite) to start afresh."
            )
        return None

    def start(self, start_step: int) -> list[dict]:
        """The new run has started cleanly: remove the old run it replaces, write
        ``config.json`` and return the metrics rows up to ``start_step`` (rank 0).

        A call that has nothing to train (the run already has ``steps`` steps) leaves
        ``config.json`` as it is: its ``steps`` never goes down to a smaller request.
        """
        if self.path is None:
            return []
        barrier(self.info)  # every rank has read the old checkpoint before rank 0 removes it
        return on_main(self.info, lambda: self._start(start_step)) or []

    def _start(self, start_step: int) -> list[dict]:
        if self.replace_old:
            remove_old_run(self.path)
        if start_step < self.cfg.steps or not (self.path / CONFIG_NAME).exists():
            atomic_write_json(self.path / CONFIG_NAME, self.cfg.to_dict())
        return truncate_metrics_log(self.path / METRICS_NAME, start_step)

    def close(self) -> None:
        """Release the lock; remove the folder again if this call created it and it is empty."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self._created:
            with contextlib.suppress(OSError):  # not empty: the run has started
                self.path.rmdir()
