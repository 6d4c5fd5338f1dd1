"""The run folder ``out_dir``: its lock, the run it holds, and replacing that run.

A folder is locked (by rank 0) before anything in it is read or written. What belongs to the
run is known by name: the trainer's files (``checkpoint.pt``, ``config.json``,
``metrics.jsonl``), what its objective writes there (``stages/``, ``reflow_pairs/``) and the
outputs the package's commands wrote into it (``sample``'s pictures, ``evaluate``'s tables),
which are listed in the folder's manifest ``.outputs.json`` (:func:`record_outputs`). Nothing
else in the folder is the package's: a user's own files are never moved or deleted.

``overwrite`` starts afresh. The old run is not deleted at once but set aside, moved into
``.replaced/`` in the same folder; it is deleted when the new run writes its first checkpoint,
and moved back if the new run ends (fails, or is killed) before that. So a new config that fails
leaves the old run as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from ..common import TMP_SUFFIX, atomic_write_json, make_folders, remove_empty_folders
from ..config import ConfigError, TrainConfig
from ..errors import UserError
from ..objectives.progressive_distillation import STAGES_DIR, stage_files
from ..objectives.reflow_pairs import PAIRS_DIR
from ..output_paths import OutputPathError, check_output_folder
from ..run_store import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from .distributed import DistInfo, barrier, on_main
from .lock import LOCK_NAME, RunLock
from .metrics_log import METRICS_NAME, truncate_metrics_log

__all__ = [
    "CONFIG_NAME",
    "OUTPUTS_NAME",
    "RUN_ENTRIES",
    "SET_ASIDE_NAME",
    "RunDir",
    "RunExistsError",
    "clean_stale_temporaries",
    "discard_set_aside",
    "record_outputs",
    "refuse_run_entry",
    "restore_set_aside",
    "set_aside_old_run",
]

CONFIG_NAME = "config.json"
OUTPUTS_NAME = ".outputs.json"
SET_ASIDE_NAME = ".replaced"
_TRAINER_FILES = (CHECKPOINT_NAME, METRICS_NAME, CONFIG_NAME)
_LAUNCH_FILES = ("launch_config.json", "torchrun.log")  # a torchrun launch's (reproduce.one_run)
RUN_ENTRIES = (
    *_TRAINER_FILES,
    LOCK_NAME,
    OUTPUTS_NAME,
    SET_ASIDE_NAME,
    STAGES_DIR,
    PAIRS_DIR,
    *_LAUNCH_FILES,
)
"""The names in a run folder that belong to the run itself: no command writes over them."""


class RunExistsError(UserError, RuntimeError):
    """``out_dir`` holds a run with a different config."""


def clean_stale_temporaries(folder: Path) -> list[Path]:
    """Remove what a kill during an atomic write of the trainer's files left behind."""
    stale = [t for name in _TRAINER_FILES for t in folder.glob(f".{name}.*{TMP_SUFFIX}")]
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


# ---- which files are a run's ---------------------------------------------------------------
def _is_run_folder(folder: Path) -> bool:
    return (folder / CHECKPOINT_NAME).is_file() or (folder / CONFIG_NAME).is_file()


def _run_folder_of(path: Path) -> Path | None:
    """The nearest folder above ``path`` that holds a run, or None."""
    for folder in path.parents:
        if _is_run_folder(folder):
            return folder
    return None


def refuse_run_entry(path, what: str = "--out") -> None:
    """Refuse (:class:`~shortcut_mini.output_paths.OutputPathError`) an output path that is, or
    lies inside, one of a run's own entries (:data:`RUN_ENTRIES`): its checkpoint, config,
    metrics, stages or pairs. No command writes over a run."""
    path = Path(os.path.abspath(path))
    folder = _run_folder_of(path)
    if folder is None:
        return
    entry = path.relative_to(folder).parts[0]
    if entry in RUN_ENTRIES:
        raise OutputPathError(
            f"{what} {path} would write over the run in {folder} ({entry} is the run's own); "
            "choose another path (a new name in that folder is fine)"
        )


def _safe_relative(entry) -> bool:
    parts = Path(entry).parts if isinstance(entry, str) else ()
    return bool(parts) and not Path(entry).is_absolute() and ".." not in parts


def read_outputs(folder: Path) -> list[str]:
    """The files (relative to ``folder``) that the package's commands wrote into the run folder
    ``folder``. A damaged manifest lists nothing (so nothing of it is ever removed)."""
    try:
        entries = json.loads((folder / OUTPUTS_NAME).read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(entries, list):
        return []
    return [e for e in entries if _safe_relative(e) and Path(e).parts[0] not in RUN_ENTRIES]


def record_outputs(paths) -> None:
    """Note each written file of ``paths`` that lies inside a run folder in that folder's
    manifest, so that ``overwrite`` replaces it with the run (and leaves every other file)."""
    by_folder: dict[Path, set[str]] = {}
    for p in map(lambda p: Path(os.path.abspath(p)), paths):
        folder = _run_folder_of(p)
        if folder is not None and p.is_file():
            by_folder.setdefault(folder, set()).add(p.relative_to(folder).as_posix())
    for folder, written in by_folder.items():
        atomic_write_json(folder / OUTPUTS_NAME, sorted(set(read_outputs(folder)) | written))


# ---- replacing a run -----------------------------------------------------------------------
def _old_run_files(folder: Path) -> list[str]:
    """What ``overwrite`` replaces, relative to ``folder``: the checkpoint first (a kill in the
    middle of setting it aside then leaves no checkpoint in place, see :func:`restore_set_aside`)."""
    own = [name for name in _TRAINER_FILES if (folder / name).is_file()]
    own += [p.relative_to(folder).as_posix() for p in stage_files(folder)]
    outputs = [e for e in read_outputs(folder) if (folder / e).is_file()]
    manifest = [OUTPUTS_NAME] if (folder / OUTPUTS_NAME).is_file() else []
    return own + outputs + manifest


def _move(src: Path, dst: Path, top: Path) -> None:
    make_folders(dst.parent)
    os.replace(src, dst)
    remove_empty_folders(src.parent, top)


def set_aside_old_run(folder: Path) -> bool:
    """Move the run in ``folder`` into ``folder/.replaced`` (True if there was one)."""
    files = _old_run_files(folder)
    aside = folder / SET_ASIDE_NAME
    for rel in files:
        _move(folder / rel, aside / rel, folder)
    return bool(files)


def discard_set_aside(folder: Path) -> None:
    """Delete the run that ``overwrite`` set aside (the new run has its first checkpoint)."""
    aside = folder / SET_ASIDE_NAME
    if aside.is_dir():
        shutil.rmtree(aside)


def restore_set_aside(folder: Path) -> bool:
    """Settle a replacement: with a new checkpoint in ``folder`` the set-aside run goes; without
    one (the new run failed or was killed first), what the new run wrote goes and the old run
    comes back. True if a run was restored."""
    aside = folder / SET_ASIDE_NAME
    if not aside.is_dir():
        return False
    if (folder / CHECKPOINT_NAME).exists():
        discard_set_aside(folder)
        return False
    for name in _TRAINER_FILES:  # the new run's, worth nothing without a checkpoint
        (folder / name).unlink(missing_ok=True)
    for p in stage_files(folder):
        p.unlink()
    for src in sorted(p for p in aside.rglob("*") if p.is_file() or p.is_symlink()):
        _move(src, folder / src.relative_to(aside), aside)
    discard_set_aside(folder)
    return True


class RunDir:
    """``out_dir`` of one training call: :meth:`open`, then :meth:`start`, then :meth:`close`."""

    def __init__(self, cfg: TrainConfig, info: DistInfo):
        self.cfg, self.info = cfg, info
        self.path = Path(cfg.out_dir) if cfg.out_dir else None
        self.lock: RunLock | None = None
        self._created: list[Path] = []  # the folders this call created

    def open(self) -> dict | None:
        """Lock the folder, clean stale temporaries and settle an interrupted replacement (rank
        0); with ``overwrite``, set the old run aside. Return the checkpoint to resume from, or
        ``None`` to start afresh."""
        if self.path is None:
            return None
        on_main(self.info, self._lock)
        try:
            return self._resume_state()
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        what = "out_dir (--out-dir)"
        check_output_folder(self.path, what)
        refuse_run_entry(self.path, what)
        self._created = make_folders(self.path)
        try:
            self.lock = RunLock(self.path).acquire()
        except BaseException:
            self.close()
            raise
        if self.lock.previous:  # flock is released when its holder dies: this one was killed
            self._say(
                f"took over the lock of {self.path} left by a run that no longer runs "
                f"(pid {self.lock.previous.get('pid')}, started {self.lock.previous.get('started')})"
            )
        clean_stale_temporaries(self.path)
        if restore_set_aside(self.path):
            self._say(
                f"restored the run in {self.path} that an earlier overwrite had set aside: the "
                "run that was to replace it ended before its first checkpoint"
            )
        if self.cfg.overwrite and set_aside_old_run(self.path):
            self._say(
                f"overwrite: the run in {self.path} is set aside (in {SET_ASIDE_NAME}/) and "
                "deleted once this run writes its first checkpoint"
            )

    @staticmethod
    def _say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def _resume_state(self) -> dict | None:
        cfg, ckpt = self.cfg, self.path / CHECKPOINT_NAME
        if cfg.overwrite or not ckpt.exists():  # (overwrite: the old run is set aside)
            return None
        try:
            state = load_checkpoint(ckpt)
            saved = TrainConfig.from_saved(state["config"])
        except ConfigError as e:
            raise CheckpointError(
                f"{ckpt} holds a config this version cannot read ({e}). Train into another "
                "out_dir, or start afresh with overwrite=True (CLI: --overwrite)."
            ) from e
        diffs = cfg.differences(saved)
        if diffs:
            listing = "; ".join(f"{k}: saved {b!r}, now {a!r}" for k, (a, b) in diffs.items())
            raise RunExistsError(
                f"out_dir {self.path} holds a run with a different config ({listing}). Use "
                "another out_dir, or overwrite=True (CLI: --overwrite) to start afresh."
            )
        return state

    def start(self, start_step: int) -> list[dict]:
        """The run has started cleanly: write ``config.json`` and return the metrics rows up to
        ``start_step`` (rank 0).

        A call that has nothing to train (the run already has ``steps`` steps) leaves
        ``config.json`` as it is: its ``steps`` never goes down to a smaller request.
        """
        if self.path is None:
            return []
        barrier(self.info)  # every rank has read the checkpoint before rank 0 writes
        return on_main(self.info, lambda: self._start(start_step)) or []

    def _start(self, start_step: int) -> list[dict]:
        if start_step < self.cfg.steps or not (self.path / CONFIG_NAME).exists():
            atomic_write_json(self.path / CONFIG_NAME, self.cfg.to_dict())
        return truncate_metrics_log(self.path / METRICS_NAME, start_step)

    def close(self) -> None:
        """Settle a replacement (see :func:`restore_set_aside`) and release the lock; a folder
        this call created and left without a checkpoint is removed again (its config and
        metrics say nothing without one), with any folders made for it."""
        if self.lock is not None:
            try:
                restore_set_aside(self.path)
                if self._created and not (self.path / CHECKPOINT_NAME).exists():
                    for name in (CONFIG_NAME, METRICS_NAME):
                        (self.path / name).unlink(missing_ok=True)
            finally:
                self.lock.release()
                self.lock = None
        if self._created:
            remove_empty_folders(self._created[-1], self._created[0].parent)
            self._created = []
