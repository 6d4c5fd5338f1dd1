"""Small helpers that every chapter notebook calls.

A chapter reads its *profile* (how big a run to make) with :func:`get_profile`, and its last cell
prints :func:`run_record`, so that every figure in the book can be traced to the profile, device,
commit and wall time that produced it (DESIGN.md section 6). :func:`in_colab` tells the first
cells whether they run in Google Colab.

This module imports nothing heavy at import time; ``torch`` is imported only inside
:func:`run_record`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "COMMIT_ENV",
    "DEFAULT_PROFILE",
    "PROFILES",
    "PROFILE_ENV",
    "device_name",
    "format_run_record",
    "get_profile",
    "git_commit",
    "run_git",
    "in_colab",
    "run_record",
]

PROFILES = ("ci", "cpu", "gpu")
"""The known profiles, ``ci`` (seconds, for tests), ``cpu`` (the book's default) and ``gpu``."""

DEFAULT_PROFILE = "cpu"
"""The profile used when :data:`PROFILE_ENV` is unset or empty."""

PROFILE_ENV = "SHORTCUT_MINI_PROFILE"
"""Environment variable that selects the profile."""

COMMIT_ENV = "SHORTCUT_MINI_COMMIT"
"""Environment variable that, when set, overrides the git commit recorded in run records."""


def get_profile(default: str | None = None) -> str:
    """Return the run profile, read from ``$SHORTCUT_MINI_PROFILE``.

    Args:
        default: the profile used when the variable is unset or empty (``"cpu"`` when ``None``).

    Returns:
        One of :data:`PROFILES`, lower-cased and stripped.

    Raises:
        ValueError: if the variable (or ``default``) names an unknown profile.
    """
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    if not value:
        value = (default if default is not None else DEFAULT_PROFILE).strip().lower()
    if value not in PROFILES:
        raise ValueError(
            f"unknown profile {value!r} (from ${PROFILE_ENV} or default); "
            f"choose one of {', '.join(PROFILES)}"
        )
    return value


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


def device_name() -> str:
    """Name of the device a chapter runs on: the CUDA device's name, else ``"cpu"``."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return "cpu"
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def in_colab() -> bool:
    """True when running inside Google Colab (its ``google.colab`` module is loaded)."""
    return "google.colab" in sys.modules


def run_record(start_time: float, profile: str, *, show: bool = True) -> dict:
    """Build (and by default print) a chapter's run record.

    Args:
        start_time: ``time.time()`` taken at the start of the chapter.
        profile: the profile the chapter ran at (see :func:`get_profile`).
        show: print the record with :func:`format_run_record`.

    Returns:
        A dict with keys ``profile``, ``device``, ``commit``, ``wall_time_s`` (seconds, rounded
        to 0.1), ``torch`` (version string) and ``python`` (version string).
    """
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = "not installed"
    record = {
        "profile": profile,
        "device": device_name(),
        "commit": git_commit(),
        "wall_time_s": round(max(0.0, time.time() - float(start_time)), 1),
        "torch": torch_version,
        "python": sys.version.split()[0],
    }
    if show:
        print(format_run_record(record))
    return record


def format_run_record(record: dict) -> str:
    """Render a run record as aligned ``key: value`` lines under a ``run record`` heading."""
    width = max((len(k) for k in record), default=0)
    lines = ["run record"]
    for key, value in record.items():
        if key == "wall_time_s":
            minutes, seconds = divmod(float(value), 60.0)
            value = f"{value} s ({int(minutes)} min {seconds:.0f} s)"
        lines.append(f"  {key.ljust(width)} : {value}")
    return "\n".join(lines)
