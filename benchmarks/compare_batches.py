"""Whether two batch folders of ``shortcut-mini reproduce`` hold the same numbers, exactly.

    python benchmarks/compare_batches.py BEFORE AFTER

For a change that must not change behaviour (a refactoring): run one preset on the code before
and after it, then compare. Every record (``METHOD_seedS.json``) must be in both folders and
equal field for field, floats bit for bit, except what differs from one run to the next by
nature: wall times (``*_seconds``, ``wall_s``, ``img_per_s``), the creation time, the command,
the git commit and the batch folder's own path inside paths. Each run's logged training metrics
(``runs/NAME/metrics.jsonl``) must be equal in the same way, and so must its weights (the
online and EMA tensors of ``runs/NAME/checkpoint.pt``, by ``torch.equal``).

Prints one line per record and exits 1 on any difference, naming the first of each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VOLATILE = {"created", "command", "git", "train_seconds", "eval_seconds", "sampling_seconds"}
VOLATILE_METRICS = {"wall_s", "img_per_s"}


def first_difference(a, b, where: str = "") -> str | None:
    """Where ``a`` and ``b`` (JSON values) first differ, skipping the ``VOLATILE`` keys; None
    when they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in VOLATILE:
                continue
            if key not in a or key not in b:
                return f"{where}.{key}: only in {'the first' if key in a else 'the second'}"
            found = first_difference(a[key], b[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items against {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    same = a == b and type(a) is type(b)
    return None if same else f"{where}: {a!r} against {b!r}"


def _relative(value, folder: Path):
    """``value`` with the batch folder's path in its strings replaced by ``<batch>``."""
    if isinstance(value, dict):
        return {k: _relative(v, folder) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, folder) for v in value]
    return value.replace(str(folder), "<batch>") if isinstance(value, str) else value


def _metrics(path: Path) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    rows = [json.loads(line) for line in lines if line.strip()]
    return [{k: v for k, v in r.items() if k not in VOLATILE_METRICS} for r in rows]


def _weights_difference(a: Path, b: Path) -> str | None:
    import torch

    if not (a.exists() and b.exists()):
        return None if a.exists() == b.exists() else f"{a.parent.name}: a checkpoint in one only"
    sa, sb = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
    for part in ("model", "ema"):
        ta, tb = sa[part], sb[part]
        if set(ta) != set(tb):
            return f"{a.parent.name}/{part}: other tensor names"
        for name in ta:
            if not torch.equal(ta[name], tb[name]):
                return f"{a.parent.name}/{part}.{name}: other values"
    return None


def compare(first: Path, second: Path) -> list[str]:
    """Every difference between the batch folders ``first`` and ``second`` (empty: the same)."""
    names = sorted({p.name for p in first.glob("*.json")} | {p.name for p in second.glob("*.json")})
    problems = []
    for name in names:
        a, b = first / name, second / name
        if not (a.exists() and b.exists()):
            problems.append(f"{name}: only in {first if a.exists() else second}")
            continue
        ra, rb = (_relative(json.loads(p.read_text()), p.parent) for p in (a, b))
        found = first_difference(ra, rb, name.removesuffix(".json"))
        if found is None and "evaluation" in ra:
            stem = name.removesuffix(".json")
            found = first_difference(
                _metrics(first / "runs" / stem / "metrics.jsonl"),
                _metrics(second / "runs" / stem / "metrics.jsonl"),
                f"{stem} metrics.jsonl",
            )
            found = found or _weights_difference(
                first / "runs" / stem / "checkpoint.pt", second / "runs" / stem / "checkpoint.pt"
            )
        if found:
            problems.append(found)
        values = [e["value"] for e in ra.get("evaluation", [])]
        print(f"{name}: {'DIFFERENT' if found else 'same'} {values}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", type=Path, help="a batch folder (--out of shortcut-mini reproduce)")
    p.add_argument("second", type=Path, help="the batch folder to compare it with")
    args = p.parse_args(argv)
    for folder in (args.first, args.second):
        if not any(folder.glob("*.json")):
            print(f"{folder}: no records (METHOD_seedS.json) here", file=sys.stderr)
            return 2
    problems = compare(args.first, args.second)
    for problem in problems:
        print(f"difference: {problem}", file=sys.stderr)
    print("the same numbers" if not problems else f"{len(problems)} record(s) differ")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
