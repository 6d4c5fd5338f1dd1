"""Why a compiled training step does or does not replay CUDA graphs: runs the project's step of
each (method, attention) under mode ``reduce-overhead`` and prints inductor's cudagraph skip
reasons, the kernel launches and graph replays per step (torch.profiler), and img/s."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import torch
from torch._dynamo.utils import counters

sys.path.insert(0, str(Path(__file__).parent))
from step_kernels import warm_steps, write  # noqa: E402


def launches(step, i: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(i)
        torch.cuda.synchronize()
    names = {}
    for e in prof.events():
        if e.name in ("cudaLaunchKernel", "cudaGraphLaunch", "cuLaunchKernel", "cuLaunchKernelEx"):
            names[e.name] = names.get(e.name, 0) + 1
    return names


def main(argv) -> None:
    model = argv[0] if argv else "dit-mini"
    out = Path(argv[1]) if len(argv) > 1 else None
    torch._logging.set_logs(perf_hints=True)
    logging.getLogger("torch._inductor").addHandler(logging.StreamHandler(sys.stdout))
    records = []
    counters.clear()
    for method, attention, step, args in warm_steps(model, "reduce-overhead", torch.device("cuda")):
        torch.cuda.synchronize()
        skips = dict(counters["inductor"])  # what compiling and recording this step counted
        t0 = time.perf_counter()
        for i in range(6, 36):
            step(i)
        torch.cuda.synchronize()
        rate = 30 * args.batch / (time.perf_counter() - t0)
        rec = dict(
            method=method,
            attention=attention,
            img_per_s=round(rate),
            counters=skips,
            launches=launches(step, 40),
        )
        print(json.dumps(rec), flush=True)
        records.append(rec)
        counters.clear()
    write(records, out)


if __name__ == "__main__":
    main(sys.argv[1:])
