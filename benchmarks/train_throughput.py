"""Training throughput (images/s) of one full training step, eager and compiled.

Measures what the book's design notes anchors: forward + backward + AdamW + EMA, including the two
no-grad self-consistency queries of the shortcut objective. Synthetic data of the right shape
(the step's cost does not depend on pixel values). Median over timed windows after warm-up,
CUDA-synchronised. Prints one JSON line per configuration.

    python benchmarks/train_throughput.py --model dit-mini --shape 1 28 28 --batch 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from shortcut_mini.config import TrainConfig
from shortcut_mini.data import ArrayDataset
from shortcut_mini.models import count_parameters
from shortcut_mini.objectives import build_objective
from shortcut_mini.run_store import model_from_config
from shortcut_mini.train.devices import autocast, resolve_device, resolve_precision
from shortcut_mini.train.ema import EMA


def measure(model_name, shape, batch, method, compile_, precision, warmup, iters, windows):
    device = resolve_device("auto")
    precision = resolve_precision(precision, device)
    cfg = TrainConfig(data="digits", model=model_name, method=method, batch_size=batch)
    info = {"shape": list(shape), "num_classes": 0}
    torch.manual_seed(0)
    model = model_from_config(cfg, info).to(device)
    ema = EMA(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    objective = build_objective(method, M=128, bootstrap_fraction=0.25)
    net = torch.compile(model) if compile_ else model
    data = ArrayDataset(
        x=torch.randint(0, 256, (4 * batch, *shape), dtype=torch.uint8),
        y=torch.zeros(4 * batch),
        num_classes=0,
        kind="image",
        name="synthetic",
    )
    data = data.to(device)
    gen = torch.Generator(device)

    def step(i):
        x1, _ = data.batch(torch.randint(0, 4 * batch, (batch,), device=device), device)
        gen.manual_seed(i)
        with autocast(device, precision):
            out = objective.loss(net, x1, None, generator=gen, step=i)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        ema.update(model, i)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(warmup):
        step(i)
    sync()
    rates = []
    for w in range(windows):
        t0 = time.perf_counter()
        for i in range(iters):
            step(warmup + w * iters + i)
        sync()
        rates.append(iters * batch / (time.perf_counter() - t0))
    return {
        "model": model_name,
        "shape": list(shape),
        "batch": batch,
        "method": method,
        "compile": compile_,
        "precision": precision,
        "device": _device_name(device),
        "params": count_parameters(model),
        "img_per_s_median": round(statistics.median(rates)),
        "torch": str(torch.__version__),
    }


def _device_name(device):
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dit-mini")
    p.add_argument("--shape", type=int, nargs="+", default=[1, 28, 28])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--methods", nargs="+", default=["shortcut", "flow_matching"])
    p.add_argument("--compile", choices=["no", "yes", "both"], default="both")
    p.add_argument("--precision", default="auto")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--windows", type=int, default=3)
    args = p.parse_args(argv)
    modes = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]
    for method in args.methods:
        for c in modes:
            r = measure(
                args.model,
                tuple(args.shape),
                args.batch,
                method,
                c,
                args.precision,
                args.warmup,
                args.iters,
                args.windows,
            )
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
