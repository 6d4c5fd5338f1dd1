"""Where a command writes: checked before the work starts, and every file-system error as one
sentence that names the path and the fix.

:func:`check_output_folder` and :func:`check_output_file` refuse an output path that cannot be
written (a file where a folder must be, a folder where a file must be, a name too long for the
file system, a folder one may not write to, a full disk) with an :class:`OutputPathError`, before
any training or sampling, and without creating anything. :func:`describe_os_error` turns an
``OSError`` raised later (the disk filled up during the work) into the same kind of sentence.
This module sits at the bottom of the package and imports nothing heavy.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import UserError

__all__ = [
    "OutputPathError",
    "check_output_file",
    "check_output_folder",
    "describe_os_error",
]


class OutputPathError(UserError, ValueError):
    """An output path cannot be written; the message names it, the reason and the fix."""


# errno -> (what went wrong, what to do)
_REASONS = {
    errno.ENOSPC: ("no space is left on its device", "free some space, or write to another disk"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space, or write to another disk"),
    errno.EACCES: ("permission denied", "choose another path, or change its permissions"),
    errno.EPERM: (
        "the operation is not permitted",
        "choose another path, or change its permissions",
    ),
    errno.EROFS: ("its file system is read-only", "choose a path on a writable disk"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose another path"),
    errno.EISDIR: ("it is a folder, not a file", "give the name of a file"),
    errno.ENAMETOOLONG: (
        "a name in the path is too long for the file system",
        "choose a shorter path",
    ),
    errno.ENOENT: ("there is no such file or folder", "check the path"),
    errno.EEXIST: ("it exists already", "choose another path"),
}


def describe_os_error(error: OSError, path=None) -> str:
    """One sentence for ``error``: the path (``path``, else the error's own), what went wrong and
    the fix, e.g. ``"no space is left on the device of runs/a/checkpoint.pt: free some space, or
    write to another disk"``."""
    where = path if path is not None else (error.filename or "a file")
    if error.filename2 is not None and path is None:
        where = f"{error.filename} -> {error.filename2}"
    reason, fix = _REASONS.get(
        error.errno, (error.strerror or str(error), "check the path and its permissions")
    )
    if error.errno == errno.ENOSPC:
        return f"no space is left on the device of {where}: {fix}"
    return f"cannot use {where}: {reason}; {fix}"


def _refuse(what: str, path: Path, reason: str, fix: str):
    raise OutputPathError(f"cannot write {what} {path}: {reason}; {fix}")


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long, a loop of links: checked where it matters
        return False


def _deepest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``lexists``: a dangling link counts)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")  # pragma: no cover - a relative path whose parents do not exist


def _check_names(what: str, path: Path, existing: Path) -> None:
    """Refuse a name (or the whole path) longer than the file system of ``existing`` allows."""
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # not a POSIX system: the usual limits
        name_max, path_max = 255, 4096
    reason, fix = _REASONS[errno.ENAMETOOLONG]
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            _refuse(what, path, f"{reason} ({len(part)} characters, at most {name_max})", fix)
    if len(os.fsencode(str(path.absolute()))) >= path_max:
        _refuse(what, path, f"{reason} (at most {path_max} characters in all)", fix)


def _check_folder_writable(what: str, path: Path, folder: Path) -> None:
    """Refuse when nothing can be created in ``folder`` (permissions, a read-only or full disk):
    a probe file is made there and removed at once."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".shortcut-mini-probe-")
    except OSError as e:
        reason, fix = _REASONS.get(e.errno, (e.strerror or str(e), "choose another path"))
        where = "" if folder == path else f" (in {folder})"
        _refuse(what, path, f"{reason}{where}", fix)
    os.close(fd)
    os.unlink(probe)
    try:
        free = os.statvfs(folder)
    except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
        return
    if free.f_bavail == 0:
        raise OutputPathError(
            f"cannot write {what} {path}: no space is left on its device; "
            + _REASONS[errno.ENOSPC][1]
        )


def check_output_folder(path, what: str = "--out") -> Path:
    """Refuse (:class:`OutputPathError`) a folder that cannot be created or written to, before
    the work that fills it starts; ``what`` names the setting in the message. Creates nothing."""
    path = Path(path)
    existing = _deepest_existing(path)
    if existing == path and not _is_dir(path):
        _refuse(what, path, "it is a file, not a folder", "give a folder (new or existing)")
    if not _is_dir(existing):
        _refuse(what, path, f"{existing} is a file, not a folder", "choose another path")
    _check_names(what, path, existing)
    _check_folder_writable(what, path, existing)
    return path


def check_output_file(path, what: str = "--out") -> Path:
    """Refuse (:class:`OutputPathError`) a file that cannot be written (atomically: a new file
    in its folder, then renamed over it), before the work that makes it; creates nothing."""
    path = Path(path)
    if _is_dir(path):
        _refuse(what, path, "it is a folder", f"give a file name, e.g. {path / 'samples.png'}")
    existing = _deepest_existing(path.parent)
    if not _is_dir(existing):
        _refuse(what, path, f"{existing} is a file, not a folder", "choose another path")
    _check_names(what, path, existing)
    _check_folder_writable(what, path, existing)
    return path
