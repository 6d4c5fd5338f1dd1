"""Do CUDA graphs change what a run learns? Compare two runs of one config that differ only in
``compile_mode`` (``reduce-overhead`` against ``default``): their logged loss curves, step by step,
and their quality at every step budget.

    python benchmarks/compile_check.py --runs CUDA_GRAPHS_RECORD DEFAULT_RECORD \
        --metrics CUDA_GRAPHS_METRICS DEFAULT_METRICS --out benchmarks/results/table1_2026-12-03/compile_check.json

Each record is a reproduction record (``book/results/PRESET/*.json``); each metrics file the
run's ``metrics.jsonl``. The two runs share seed, data order and noise, so their loss curves can
differ only by the numerics of the compiled kernels; the verdict allows for that (bf16) noise.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

LOSS_TOLERANCE = 0.05
"""Largest relative difference allowed between the two loss curves, averaged over a window of
ten logged points (single points carry the minibatch's noise)."""
FD_TOLERANCE = 0.02
"""Largest relative difference of the distance at any budget."""


def read_losses(path: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(r["step"]): float(r["loss"]) for r in rows if "loss" in r}


def windowed(values: list[float], width: int = 10) -> list[float]:
    return [
        sum(values[i : i + width]) / len(values[i : i + width])
        for i in range(0, len(values), width)
    ]


def compare(records: list[dict], losses: list[dict[int, float]]) -> dict:
    """The comparison of run 0 (CUDA graphs) with run 1 (default mode)."""
    a_cfg, b_cfg = (
        {k: v for k, v in r["config"].items() if k not in ("compile_mode", "out_dir")}
        for r in records
    )
    differing = sorted(k for k in a_cfg if a_cfg.get(k) != b_cfg.get(k))
    steps = sorted(set(losses[0]) & set(losses[1]))
    a, b = ([ls[s] for s in steps] for ls in losses)
    point = [abs(x - y) / abs(y) for x, y in zip(a, b)]
    window = [abs(x - y) / abs(y) for x, y in zip(windowed(a), windowed(b))]
    fd = {}
    for ea, eb in zip(records[0]["evaluation"], records[1]["evaluation"]):
        assert ea["steps"] == eb["steps"]
        fd[str(ea["steps"])] = {
            "cuda_graphs": ea["value"],
            "default": eb["value"],
            "relative_difference": (ea["value"] - eb["value"]) / eb["value"],
        }
    worst_fd = max(abs(v["relative_difference"]) for v in fd.values())
    return {
        "method": records[0]["config"]["method"],
        "seed": records[0]["seed"],
        "compile_modes": [r["config"]["compile_mode"] for r in records],
        "config_fields_differing_besides_compile_mode": differing,
        "logged_steps_compared": len(steps),
        "final_loss": {"cuda_graphs": a[-1], "default": b[-1]},
        "loss_max_relative_difference_per_point": max(point),
        "loss_max_relative_difference_window10": max(window),
        "loss_mean_relative_difference_per_point": sum(point) / len(point),
        "fd": fd,
        "fd_max_relative_difference": worst_fd,
        "tolerances": {"loss_window10": LOSS_TOLERANCE, "fd": FD_TOLERANCE},
        "same": bool(max(window) <= LOSS_TOLERANCE and worst_fd <= FD_TOLERANCE and not differing),
        "train_seconds": [r["train_seconds"] for r in records],
        "device": records[0]["device"],
        "commit": records[0]["git"]["commit"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs=2, type=Path, required=True, metavar="RECORD")
    p.add_argument("--metrics", nargs=2, type=Path, required=True, metavar="METRICS_JSONL")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    records = [json.loads(r.read_text()) for r in args.runs]
    result = compare(records, [read_losses(m) for m in args.metrics])
    result["records"] = [str(r) for r in args.runs]
    result["note"] = args.note
    assert all(math.isfinite(v["relative_difference"]) for v in result["fd"].values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"loss curves: max relative difference {result['loss_max_relative_difference_window10']:.2%}"
        f" (10-point windows), {result['loss_max_relative_difference_per_point']:.2%} (points); "
        f"FD: max {result['fd_max_relative_difference']:.2%}; same: {result['same']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
