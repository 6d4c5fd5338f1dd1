"""Execute every chapter at one profile and record the wall time of each.

Used for the setup page's table of chapter times (the ``gpu`` profile on a rented GPU)::

    python scripts/time_chapters.py --profile gpu --out book/results/chapter_times_gpu.json

Each chapter runs top to bottom in a fresh kernel (nbclient), exactly as the book build runs it,
with ``$SHORTCUT_MINI_PROFILE`` set. The record holds, per chapter, the wall time and whether it
ran without error, plus the device, torch version and commit. A chapter that fails is recorded
with its error and the script goes on with the next; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shortcut_mini.common import atomic_write_json, device_name, git_commit  # noqa: E402


def run_chapter(path: Path, timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
        error = None
    except Exception as e:  # a failing cell: record it, go on with the next chapter
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    return {
        "chapter": path.stem,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "error": error,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="gpu", choices=("ci", "cpu", "gpu"))
    p.add_argument("--out", required=True, help="JSON file to write (rewritten after each chapter)")
    p.add_argument("--chapters", nargs="*", default=None, help="chapter stems (default: all)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = p.parse_args(argv)
    os.environ["SHORTCUT_MINI_PROFILE"] = args.profile
    import torch

    chapters = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    if args.chapters:
        chapters = [c for c in chapters if c.stem in args.chapters]
    record = {
        "profile": args.profile,
        "device": device_name(),
        "torch": torch.__version__,
        "commit": git_commit(ROOT),
        "command": "python scripts/time_chapters.py " + " ".join(argv or sys.argv[1:]),
        "chapters": [],
    }
    for path in chapters:
        print(f"{path.stem}: running at profile {args.profile} ...", flush=True)
        result = run_chapter(path, args.timeout)
        print(f"{path.stem}: {result['wall_time_s']} s, error={result['error']}", flush=True)
        record["chapters"].append(result)
        atomic_write_json(args.out, record)
    return int(any(c["error"] for c in record["chapters"]))


if __name__ == "__main__":
    raise SystemExit(main())
