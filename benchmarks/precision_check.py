"""Does the precision a T4 gets work? On a GPU of compute capability below 8.0 ``precision="auto"``
trains and samples in fp16 autocast with loss scaling (bf16 would be emulated there). This script
trains the same runs in ``fp16`` and in ``bf16`` on one GPU, same seed, and compares them:

* chapter 3 at ``small_gpu``: flow matching and shortcut on the checkerboard, with the chapter's
  own check (shortcut's 1-step SWD under ``ratio_max`` times flow matching's);
* chapter 5 at ``small_gpu``: a class-conditional dit-tiny shortcut model on 16x16 digits (the
  attention network, where fp16's range matters), with the package's image distance.

    python benchmarks/precision_check.py --out benchmarks/results/precision_check.json

Each run records its wall time, its logged loss at the start and the end, and its distance at
1, 4 and 128 steps; the record says whether the fp16 runs kept a finite loss (a non-finite loss
stops training with an error) and passed chapter 3's check.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from provenance import provenance  # noqa: E402

from shortcut_mini import TrainConfig, train  # noqa: E402
from shortcut_mini.common import atomic_write_json, device_name  # noqa: E402
from shortcut_mini.evaluate import evaluate  # noqa: E402
from shortcut_mini.profiles import settings  # noqa: E402

BUDGETS = (1, 4, 128)
PRECISIONS = ("fp16", "bf16")


def chapter3_configs(seed: int) -> dict[str, TrainConfig]:
    s = settings("03_shortcut_models", "small_gpu")
    base = TrainConfig(data=s.data, model=s.model, steps=s.steps, batch_size=s.batch_size,
                       lr=s.lr, n_data=s.n_data, seed=seed, progress=False)  # fmt: skip
    return {m: base.replace(method=m) for m in ("flow_matching", "shortcut")}


def chapter5_config(seed: int) -> TrainConfig:
    s = settings("05_shortcut_on_images", "small_gpu")
    return TrainConfig(data="digits", model="dit-tiny", class_conditional=True, method="shortcut",
                       image_size=s.image_size, steps=s.steps, batch_size=s.batch_size, lr=s.lr,
                       seed=seed, log_every=max(1, s.steps // 30), progress=False)  # fmt: skip


def measure(cfg: TrainConfig, precision: str, n_eval: int | None) -> dict:
    start = time.perf_counter()
    run = train(cfg.replace(precision=precision))
    table = evaluate(run, steps=BUDGETS, n=n_eval, seeds=(cfg.seed,), progress=False)
    losses = [h["loss"] for h in run.history if "loss" in h]
    return {
        "data": cfg.data,
        "model": cfg.model,
        "method": cfg.method,
        "precision": precision,
        "steps": run.step,
        "train_s": round(run.train_seconds, 1),
        "wall_s": round(time.perf_counter() - start, 1),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "metric": table.metric,
        "distance": {str(row["steps"]): row["distance"] for row in table},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-images", action="store_true", help="chapter 3's runs only")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("precision_check.py compares fp16 with bf16 on a CUDA GPU; none is here")
    start = time.time()
    record = {
        **provenance(__file__, argv),
        "date": datetime.date.today().isoformat(),
        "device": device_name(),
        "capability": list(torch.cuda.get_device_capability()),
        "runs": [],
    }
    chapter3 = settings("03_shortcut_models", "small_gpu")
    cases = [(cfg, chapter3.n_eval) for cfg in chapter3_configs(args.seed).values()]
    if not args.skip_images:
        cases.append((chapter5_config(args.seed), None))
    for precision in PRECISIONS:
        for cfg, n_eval in cases:
            row = measure(cfg, precision, n_eval)
            record["runs"].append(row)
            print(row, flush=True)
            record["wall_s"] = round(time.time() - start, 1)
            atomic_write_json(args.out, record)  # after each run: a killed check keeps them
    ratio_max = chapter3.ratio_max
    record["chapter3_check"] = {}
    for precision in PRECISIONS:
        one = {r["method"]: r["distance"]["1"] for r in record["runs"]
               if r["precision"] == precision and r["data"] == "checkerboard"}  # fmt: skip
        ratio = one["shortcut"] / one["flow_matching"]
        record["chapter3_check"][precision] = {
            "ratio_1_step": round(ratio, 4),
            "ratio_max": ratio_max,
            "holds": ratio < ratio_max,
        }
    record["wall_s"] = round(time.time() - start, 1)
    atomic_write_json(args.out, record)
    print(record["chapter3_check"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
