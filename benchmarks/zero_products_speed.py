"""Time MeanFlow's compiled training network with and without the zero-product pass, on the
device at hand (the CPU here; the GPU rows are ``benchmarks/speed.py``'s).

    python benchmarks/zero_products_speed.py --out benchmarks/results/zero_products_speed_cpu.json

One forward-with-derivative and backward of ``MeanFlowForward`` (the module the trainer compiles
for MeanFlow) on a ``dit-mini`` of the speed table's shape, compiled by plain ``torch.compile``
and by ``shortcut_mini.speed.compile_for_training`` (which adds
``shortcut_mini.zero_products.DropZeroProducts``); the median of ``--repeats`` timed steps after
two warm-up steps, and the loss and gradients of the two compared.
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
from shortcut_mini.objectives.meanflow import MeanFlowForward  # noqa: E402
from shortcut_mini.speed import compile_for_training  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="dit-mini")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    shape = (1, 28, 28)
    net = build_model(args.model, sample_shape=shape, level_embedding="sin_d_unit")
    with torch.no_grad():  # adaLN-Zero's zero layers would make most gradients vanish
        for param in net.parameters():
            param.add_(0.02 * torch.randn(param.shape))
    b = args.batch
    x, w = torch.randn(b, *shape), torch.randn(b, *shape)
    t, d = torch.rand(b), 0.5 * torch.rand(b)

    def step(module):
        net.zero_grad(set_to_none=True)
        u, dudt = module(x, t, d, None, w)
        loss = (u - (w + d.view(-1, 1, 1, 1) * dudt)).square().mean()
        loss.backward()
        return loss.detach(), torch.cat([q.grad.flatten() for q in net.parameters()])

    record = {
        **provenance(__file__, argv),
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "model": args.model,
        "batch": b,
        "rows": {},
    }
    results = {}
    for name, module in (
        ("plain torch.compile", torch.compile(MeanFlowForward(net, "math"), dynamic=False)),
        ("compile_for_training (zero-product pass)",
         compile_for_training(MeanFlowForward(net, "math"), None)),
    ):  # fmt: skip
        start = time.perf_counter()
        for _ in range(2):
            results[name] = step(module)
        warmup = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            step(module)
            times.append(time.perf_counter() - start)
        record["rows"][name] = {"median_s": round(statistics.median(times), 4),
                                "warmup_s": round(warmup, 1)}  # fmt: skip
        print(name, record["rows"][name], flush=True)
        atomic_write_json(args.out, record)
    (loss_a, grad_a), (loss_b, grad_b) = results.values()
    record["same_loss"] = bool(torch.equal(loss_a, loss_b))
    record["gradient_relative_difference"] = float((grad_a - grad_b).norm() / grad_a.norm())
    plain, passed = (r["median_s"] for r in record["rows"].values())
    record["speedup"] = round(plain / passed, 3)
    atomic_write_json(args.out, record)
    print({k: record[k] for k in ("same_loss", "gradient_relative_difference", "speedup")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
