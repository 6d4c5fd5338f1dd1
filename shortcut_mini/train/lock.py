"""One writer per run folder: a lock file held with ``flock`` while a run trains.

The lock is the kernel's (``fcntl.flock``), not the file's existence: a process killed with
SIGKILL loses it at once, so the file it leaves behind (naming a pid that no longer runs) is
stale and the next run takes it over. The file names the holder (pid, host, start time) so
that a refused writer can say who holds the folder; it is removed when the run ends.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path

from ..errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None

__all__ = ["LOCK_NAME", "RunLock", "RunLockedError"]

LOCK_NAME = ".lock"


class RunLockedError(UserError, RuntimeError):
    """Another process is training into the same ``out_dir``."""


def _describe(holder: dict) -> str:
    if not holder:
        return "a process that is just starting"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"


class RunLock:
    """The lock of a run folder: :meth:`acquire` or :class:`RunLockedError`, then :meth:`release`.

    ``previous`` is the holder the lock file named when it was taken over (a killed run), or
    ``None`` when there was no lock file.
    """

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_NAME
        self.previous: dict | None = None
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is None:  # pragma: no cover
            warnings.warn("no file locking on this platform: out_dir is not locked", stacklevel=2)
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLockedError(
                    f"out_dir {self.path.parent} is in use by another training run "
                    f"({_describe(holder)}). Wait for it to finish (or stop it), or train "
                    "into another out_dir."
                ) from None
            except OSError as e:  # a filesystem without locks: train, but say so
                os.close(fd)
                self.path.unlink(missing_ok=True)
                warnings.warn(
                    f"could not lock out_dir {self.path.parent} ({e}); make sure no other run "
                    "trains into it",
                    stacklevel=2,
                )
                return self
            # The holder removes the file on release: if it did so between our open and our
            # flock, we hold a lock on a deleted file; try again on the current one.
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self.previous = _read_holder(fd) or None
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except BaseException:  # a full disk: leave no lock file behind
            self.release()
            raise
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: see acquire
        finally:
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
