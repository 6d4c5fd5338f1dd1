"""Where a benchmark's record came from: its command line, the commit, whether tracked files had
changes, and torch's version; the benchmark adds its device and its numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shortcut_mini.common import git_commit  # noqa: E402
from shortcut_mini.reproduce.record import git_dirty  # noqa: E402


def provenance(script: str, argv: list[str] | None) -> dict:
    """``command``, ``commit``, ``dirty`` and ``torch`` of a run of ``script`` (its ``__file__``)
    with arguments ``argv`` (None: this process's own)."""
    args = sys.argv[1:] if argv is None else argv
    return {
        "command": " ".join(["python", f"benchmarks/{Path(script).name}", *args]),
        "commit": git_commit(ROOT),
        "dirty": git_dirty(ROOT),
        "torch": torch.__version__,
    }
