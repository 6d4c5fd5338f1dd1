"""Small shared utilities at the bottom of the package: atomic file writes, folders, the memory
left, and provenance.

Every module that writes a file a reader or a resumed run will read (checkpoints, records, tables,
figures) writes it through :func:`atomic_write_bytes`, so a kill mid-write never leaves half a
file. :func:`git_commit`, :func:`run_git` and :func:`device_name` say what produced a result.
This module imports nothing heavy at import time; ``torch`` is imported only inside
:func:`device_name`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

__all__ = [
    "COMMIT_ENV",
    "NEW_FILE_MODE",
    "TMP_SUFFIX",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "available_memory",
    "device_name",
    "git_commit",
    "make_folders",
    "remove_empty_folders",
    "run_git",
]

COMMIT_ENV = "SHORTCUT_MINI_COMMIT"
"""Environment variable that, when set, overrides the git commit recorded in run records."""

TMP_SUFFIX = ".tmp"
"""Suffix of the temporary files :func:`atomic_write` writes (named ``.NAME.XXXX.tmp``)."""


def _read_umask() -> int:
    umask = os.umask(0)  # reading the umask means setting it: done once, at import
    os.umask(umask)
    return umask


# The permissions ``open(path, "w")`` gives a new file; ``mkstemp`` alone would give 0600.
NEW_FILE_MODE = 0o666 & ~_read_umask()


class _RecordingFile:
    """A file that remembers the ``OSError`` its ``write`` raised: ``torch.save`` reports a
    failed write (a full disk) as a ``RuntimeError`` of its own, which hides the cause."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def _with_path(error: OSError, path: Path) -> OSError:
    """``error`` naming ``path`` (a failed ``write`` names no file)."""
    if error.filename is not None:
        return error
    return OSError(error.errno, error.strerror, str(path))


def make_folders(folder: str | os.PathLike) -> list[Path]:
    """Create ``folder`` and any missing parents; return those created, outermost first (on a
    failure, those created are removed again)."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not os.path.lexists(p)][::-1]
    created: list[Path] = []
    try:
        for p in missing:
            p.mkdir()
            created.append(p)
    except BaseException:
        if created:
            remove_empty_folders(created[-1], created[0].parent)
        raise
    return created


def remove_empty_folders(folder: str | os.PathLike, top: str | os.PathLike) -> None:
    """Remove ``folder`` and its parents while they are empty, up to ``top`` (kept)."""
    folder, top = Path(folder), Path(top)
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop
            return
        folder = folder.parent


def _temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path``: ``(descriptor, name)``."""
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, then rename it to ``path``:
    a reader or a killed writer never sees half a file.

    A failure leaves nothing behind (no temporary file, no folder this call created) and
    raises the ``OSError`` that caused it, naming ``path`` (a full disk is ``errno.ENOSPC``, even
    where ``write`` reports it otherwise, as ``torch.save`` does).
    """
    path = Path(path)
    created = make_folders(path.parent)
    tmp, recording = None, None
    try:
        fd, tmp = _temporary(path)
        with os.fdopen(fd, "wb") as f:
            recording = _RecordingFile(f)
            write(recording)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, NEW_FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if created:
            remove_empty_folders(created[-1], created[0].parent)
        if isinstance(e, OSError):
            raise _with_path(e, path) from None
        if recording is not None and recording.error is not None:
            raise _with_path(recording.error, path) from e
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def run_git(args: list[str], cwd: str | os.PathLike | None = None) -> str | None:
    """Output of ``git ARGS`` run in ``cwd`` (default: this package's folder), stripped;
    ``None`` when git is missing, fails, or the folder is not a checkout."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The commit the code runs at: ``$SHORTCUT_MINI_COMMIT`` if set, else ``git rev-parse HEAD``.

    Runs ``git`` in ``cwd`` (default: the directory of this package), so the answer is the
    package's repository even when a notebook runs from elsewhere. Returns ``"unknown"`` when
    neither source is available (no git, not a checkout, a pip-installed copy).
    """
    env_commit = os.environ.get(COMMIT_ENV, "").strip()
    if env_commit:
        return env_commit
    sha = run_git(["rev-parse", "HEAD"], cwd)
    return sha if sha else "unknown"


def device_name() -> str:
    """Name of the device code runs on: the first CUDA device's name, else ``"cpu"``."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return "cpu"
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def available_memory() -> int | None:
    """Bytes of memory a process can still allocate without swapping (Linux's ``MemAvailable``,
    else the free physical pages); ``None`` where neither can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None
