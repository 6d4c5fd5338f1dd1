"""Execute every chapter, one at a time, at one or more profiles, and record the wall time of each.

Used for the setup page's table of chapter times (on a GPU: the large-GPU profile, then the
small-GPU one)::

    python scripts/time_chapters.py --profiles gpu small_gpu --out book/results/chapter_times_gpu.json

Each chapter runs top to bottom in a fresh kernel (nbclient), exactly as the book build runs it,
with ``$SHORTCUT_MINI_PROFILE`` set, and only one chapter runs at a time. After each chapter the
record is rewritten (atomically) with one entry per (profile, chapter): the wall time, the error
if it failed, the date, the commit (and whether the tree was dirty), the device and the command.
Run again with the same ``--out``, it skips every (profile, chapter) that already has an entry
without error and runs the rest (``--again`` runs those too), so that a run cut short continues
where it stopped. The exit code is 1 if any chapter failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shortcut_mini.common import atomic_write_bytes, atomic_write_json, device_name, git_commit  # noqa: E402
from shortcut_mini.notebook import PROFILES  # noqa: E402
from shortcut_mini.reproduce.record import git_dirty  # noqa: E402

ONE_AT_A_TIME = "one chapter at a time, each in a fresh kernel, nothing else on the device"


def run_chapter(path: Path, timeout: int, executed: Path | None = None) -> dict:
    """Execute the chapter at ``path``; its wall time and error. With ``executed``, the notebook
    as executed (outputs included, also after a failing cell) is written there, so that a
    chapter's printed numbers at that profile can be read after the run."""
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
    wall = time.perf_counter() - start
    if executed is not None:
        executed.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(executed / path.name, nbformat.writes(nb).encode())
    return {"wall_time_s": round(wall, 1), "error": error}


def load_record(path: Path) -> dict:
    """The record at ``path`` if it is one of this script's (``runs``), else a new one (a record
    of another form, e.g. the concurrent upper bounds, is replaced, not merged)."""
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise SystemExit(f"{path} is not JSON; move it away or choose another --out") from None
        if isinstance(old, dict) and isinstance(old.get("runs"), list):
            return old
    return {"concurrency": ONE_AT_A_TIME, "runs": []}


def finished(record: dict, profile: str, chapter: str) -> bool:
    return any(
        r["profile"] == profile and r["chapter"] == chapter and r["error"] is None
        for r in record["runs"]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", nargs="+", default=["gpu"], choices=PROFILES)
    p.add_argument("--out", required=True, help="JSON file to write (rewritten after each chapter)")
    p.add_argument("--chapters", nargs="*", default=None, help="chapter stems (default: all)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    p.add_argument("--again", action="store_true", help="also rerun chapters already recorded")
    p.add_argument(
        "--executed",
        type=Path,
        default=None,
        help="folder for the executed notebooks, as PROFILE/CHAPTER.ipynb (default: not kept)",
    )
    args = p.parse_args(argv)
    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError as e:
        p.error(
            f"{e}: the chapters run in Jupyter kernels (nbclient, nbformat, ipykernel); install "
            "them (pip install nbclient nbformat ipykernel; on the lent GPU: the wheels of "
            "benchmarks/notebook_wheels.sh, as benchmarks/chapter_times.sh installs them)"
        )
    import torch

    chapters = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    if args.chapters:
        unknown = sorted(set(args.chapters) - {c.stem for c in chapters})
        if unknown:
            p.error(f"--chapters: unknown {unknown}; known: {[c.stem for c in chapters]}")
        by_stem = {c.stem: c for c in chapters}
        chapters = [by_stem[s] for s in dict.fromkeys(args.chapters)]  # in the order given
    out = Path(args.out)
    record = load_record(out)
    command = "python scripts/time_chapters.py " + " ".join(argv or sys.argv[1:])
    commit = git_commit(ROOT)  # $SHORTCUT_MINI_COMMIT where the copy has no repository
    dirty = git_dirty(ROOT)  # $SHORTCUT_MINI_DIRTY there; None if unknown
    device = device_name()
    if device == "cpu":  # a CPU's time depends on how many cores the kernel may use
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        device = f"CPU ({cores} cores)"
    record.update(device=device, torch=torch.__version__, commit=commit, command=command)
    failed = False
    for profile in args.profiles:
        os.environ["SHORTCUT_MINI_PROFILE"] = profile
        for path in chapters:
            if not args.again and finished(record, profile, path.stem):
                print(f"{path.stem} [{profile}]: recorded already, skipped", flush=True)
                continue
            print(f"{path.stem} [{profile}]: running ...", flush=True)
            executed = args.executed / profile if args.executed else None
            result = run_chapter(path, args.timeout, executed)
            print(f"{path.stem} [{profile}]: {result['wall_time_s']} s, error={result['error']}")
            failed |= result["error"] is not None
            entry = {"profile": profile, "chapter": path.stem, **result}
            entry.update(
                date=datetime.date.today().isoformat(),
                commit=commit,
                dirty=dirty,
                device=device,
                command=command,
            )
            record["runs"] = [
                r for r in record["runs"] if (r["profile"], r["chapter"]) != (profile, path.stem)
            ] + [entry]
            atomic_write_json(out, record)
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main())
