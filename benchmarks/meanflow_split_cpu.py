"""MeanFlow's network pass on the CPU with the JVP on every row against the JVP on the jumping
rows only (the rest through the plain forward pass), as ``MeanFlowForward`` runs it in training.

    python benchmarks/meanflow_split_cpu.py --out benchmarks/results/meanflow_split_cpu.json

For each (model, batch) the forward pass with its derivative and the backward pass of the
prediction, eager fp32, timed alternately (all rows, split, all rows, split, ...) and reported as
medians; the predictions of the two are compared too. The jumping rows are the default share, 1/4
of the batch (``jump_rows``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from provenance import provenance  # noqa: E402

from shortcut_mini.common import atomic_write_json  # noqa: E402
from shortcut_mini.models import build_model  # noqa: E402
from shortcut_mini.objectives.meanflow import MeanFlowForward, jump_rows  # noqa: E402

CASES = [("mlp-small", (2,), 256), ("mlp", (2,), 1024), ("dit-tiny", (1, 8, 8), 64)]
"""(model, example shape, batch): chapter 8's network and batch on the CPU, its larger GPU
network, and the smallest DiT."""


def pass_seconds(forward, x, t, d, w, jumps, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        u, _ = forward(x, t, d, None, w, jumps=jumps)
        u.square().mean().backward()
    return (time.perf_counter() - t0) / reps


def measure(model: str, shape, batch: int, reps: int, rounds: int, ratio: float = 0.25) -> dict:
    torch.manual_seed(0)
    net = build_model(model, sample_shape=shape, level_embedding="sin_d_unit")
    forward = MeanFlowForward(net, "auto")
    x, w = torch.randn(batch, *shape), torch.randn(batch, *shape)
    t, d = torch.rand(batch) * 0.5, torch.rand(batch) * 0.5
    k = jump_rows(batch, ratio)
    every, split = [], []
    for _ in range(rounds):
        every.append(pass_seconds(forward, x, t, d, w, None, reps))
        split.append(pass_seconds(forward, x, t, d, w, k, reps))
    with torch.no_grad():
        u_every, _ = forward(x, t, d, None, w)
        u_split, _ = forward(x, t, d, None, w, jumps=k)
    return {
        "model": model,
        "batch": batch,
        "jump_rows": k,
        "every_row_ms": round(1e3 * statistics.median(every), 3),
        "jumping_rows_ms": round(1e3 * statistics.median(split), 3),
        "speedup": round(statistics.median(every) / statistics.median(split), 3),
        "prediction_max_abs_diff": float((u_every - u_split).abs().max()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=20, help="passes per timed window")
    p.add_argument("--rounds", type=int, default=5, help="windows per variant (median)")
    p.add_argument("--smoke", action="store_true", help="one tiny case, for the tests")
    args = p.parse_args(argv)
    cases = [("dit-tiny", (1, 8, 8), 8)] if args.smoke else CASES
    start = time.time()
    record = {
        **provenance(__file__, argv),
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "cases": [],
    }
    for model, shape, batch in cases:
        record["cases"].append(measure(model, shape, batch, args.reps, args.rounds))
        print(record["cases"][-1], flush=True)
        record["wall_s"] = round(time.time() - start, 1)
        atomic_write_json(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
