"""Small helpers that every chapter notebook calls.

A chapter reads its *profile* (how big a run to make) with :func:`get_profile`, and its last cell
prints :func:`run_record`, so that every figure in the book can be traced to the profile, device,
commit and wall time that produced it (the book's design notes). :func:`in_colab` tells the first
cells whether they run in Google Colab.

This module imports nothing heavy at import time; ``torch`` is imported only inside
:func:`run_record`.
"""

from __future__ import annotations

import os
import sys
import time

from .common import COMMIT_ENV, device_name, git_commit, run_git

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
