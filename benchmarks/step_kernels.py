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


def main(argv) -> None:
    model = argv[0] if argv else "dit-mini"
    out = Path(argv[1]) if len(argv) > 1 else None
    args = speed.parse_args(["--models", model, "--precision", "bf16"])
    device = torch.device("cuda")
    records = []
    for method, attention in [
        ("flow_matching", None),
        ("meanflow", "math"),
        ("meanflow", "matmul"),
    ]:
        step = speed_steps.make_step(
            "project", model, method, True, None, args, device, None, attention
        )
        for i in range(6):
            step(i)
        rows = kernel_times(step, 6, 5)
        total = sum(r["cuda_ms"] for r in rows)
        print(f"== {method} {attention}: {total:.2f} ms of kernels per step", flush=True)
        for r in rows[:30]:
            print(f"{r['cuda_ms']:8.3f} ms {r['calls']:5d}x  {r['name']}")
        records.append(dict(method=method, attention=attention, total_ms=total, kernels=rows[:80]))
        del step
        torch.cuda.empty_cache()
    if out:
        out.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
