"""Where a compiled training step's GPU time goes: the project's step of each method on one model
(compile mode ``default``, so that kernels are visible one by one), profiled over a few steps;
prints and saves the kernels with the most CUDA time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
import speed  # noqa: E402
import speed_steps  # noqa: E402


def kernel_times(step, first: int, steps: int) -> list[dict]:
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(first, first + steps):
            step(i)
        torch.cuda.synchronize()
    rows = [
        dict(
            name=e.key[:160],
            cuda_ms=round(e.device_time_total / 1e3 / steps, 4),
            calls=e.count // steps,
        )
        for e in prof.key_averages()
        if e.device_time_total > 0
    ]
    return sorted(rows, key=lambda r: -r["cuda_ms"])


VARIANTS = [("flow_matching", None), ("meanflow", "math"), ("meanflow", "matmul")]
"""(method, MeanFlow's attention kernel) of the diagnostics: flow matching against MeanFlow."""


def warm_steps(model: str, mode, device, argv=(), warmup: int = 6, compiled: bool = True):
    """``(method, attention, step, args)`` for each of :data:`VARIANTS`: the project's training
    step of ``model`` (``benchmarks/speed.py``'s, bf16 unless ``argv`` says otherwise), compiled
    in ``mode`` and run ``warmup`` times; each step is released before the next is built."""
    args = speed.parse_args(["--models", model, "--precision", "bf16", *argv])
    for method, attention in VARIANTS:
        step = speed_steps.make_step(
            "project", model, method, compiled, mode, args, device, None, attention
        )
        for i in range(warmup):
            step(i)
        yield method, attention, step, args
        del step
        if device.type == "cuda":
            torch.cuda.empty_cache()


def write(records: list, out: Path | None) -> None:
    if out:
        out.write_text(json.dumps(records, indent=1))


def main(argv) -> None:
    model = argv[0] if argv else "dit-mini"
    out = Path(argv[1]) if len(argv) > 1 else None
    records = []
    for method, attention, step, _ in warm_steps(model, None, torch.device("cuda")):
        rows = kernel_times(step, 6, 5)
        total = sum(r["cuda_ms"] for r in rows)
        print(f"== {method} {attention}: {total:.2f} ms of kernels per step", flush=True)
        for r in rows[:30]:
            print(f"{r['cuda_ms']:8.3f} ms {r['calls']:5d}x  {r['name']}")
        records.append(dict(method=method, attention=attention, total_ms=total, kernels=rows[:80]))
    write(records, out)


if __name__ == "__main__":
    main(sys.argv[1:])
