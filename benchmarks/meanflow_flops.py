"""What a MeanFlow step costs in flow-matching steps of the same model, counted in FLOPs on the
CPU: all that an eager step computes, and without the products by the weights' zero tangents
(the work of the compiled step, whose graph drops them: ``shortcut_mini.zero_products``).

    python benchmarks/meanflow_flops.py --out benchmarks/results/meanflow_flops.json

The steps are ``benchmarks/speed.py``'s (the trainer's own step on synthetic images of each
model's shape, fp32, eager); FLOPs are counted by ``torch.utils.flop_counter`` over forward and
backward (not the optimizer), with every attention through the math kernel (the counter has no
formula for the CPU's fused kernel; the math kernel does the same products). The ratio hardly
depends on the batch (``--batch``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import speed_steps  # noqa: E402
import torch  # noqa: E402
from provenance import provenance  # noqa: E402
from speed import SHAPES  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from shortcut_mini.common import atomic_write_json  # noqa: E402
from shortcut_mini.models.dit import forward_ad_attention  # noqa: E402
from shortcut_mini.zero_products import SkipMadeZeroProducts  # noqa: E402


def flops(step, skip_zero_products: bool) -> float:
    skip = SkipMadeZeroProducts() if skip_zero_products else contextlib.nullcontext()
    with FlopCounterMode(display=False) as counter, skip, forward_ad_attention("math"):
        step(0)
    return float(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--models", nargs="+", default=list(SHAPES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--attention", default="math", help="MeanFlow's kernel inside the JVP")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    start = time.time()
    record = {
        **provenance(__file__, argv),
        "device": "cpu (counts do not depend on the device)",
        "batch": args.batch,
        "attention": args.attention,
        "models": {},
    }
    how = SimpleNamespace(shapes=SHAPES, batch=args.batch, precision="fp32", smoke=True,
                          compile_backend="inductor")  # fmt: skip
    cpu = torch.device("cpu")
    for model in args.models:
        fm = speed_steps.make_step("project", model, "flow_matching", False, None, how, cpu, None)
        mf = speed_steps.make_step(
            "project", model, "meanflow", False, None, how, cpu, None, attention=args.attention
        )
        fm_flops = flops(fm, skip_zero_products=False)
        every, useful = flops(mf, False), flops(mf, True)
        record["models"][model] = {
            "flow_matching_gflop": round(fm_flops / 1e9, 3),
            "meanflow_gflop": round(every / 1e9, 3),
            "meanflow_gflop_without_zero_products": round(useful / 1e9, 3),
            "ratio": round(every / fm_flops, 4),
            "ratio_without_zero_products": round(useful / fm_flops, 4),
        }
        print(model, record["models"][model], flush=True)
        record["wall_s"] = round(time.time() - start, 1)
        atomic_write_json(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
