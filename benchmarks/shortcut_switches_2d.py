"""The shortcut model's switches beyond the paper, each alone and all together, on the 2D
checkerboard (CPU): the SWD of 1-, 4- and 128-step samples, mean and spread over seeds.

Every variant trains with chapter 6's sizes (``settings("06_design_choices", SIZE)``: the toy,
network, steps, batch, learning rate and seeds) and is measured as chapter 6 measures
(``shortcut_mini.ablation.run_ablation``: 4,096 samples from the EMA weights with one fixed
noise against 4,096 held-out points). ``--size ci`` is chapter 6's tiny ``ci`` profile.

    PYTHONPATH=$PWD python benchmarks/shortcut_switches_2d.py --size cpu \
        --out benchmarks/results/shortcut_switches_2d/cpu.json

The variants are the package's (``shortcut_mini.ablation.SHORTCUT_SWITCHES``, which the
book's chapter 9 trains too). Two variants are controls, not switches: "step as a number"
changes only the step-size embedding (``sin_d``), which the continuous jumps and the split need,
so their effect reads against it as well as against "plain"; "EMA targets" is the official
code's choice (decay 0.999), the other end of what the twin EMA (0.95) interpolates from
"plain"'s online targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: no install
import torch  # noqa: E402

from shortcut_mini.ablation import SHORTCUT_SWITCHES, run_switch_ablation  # noqa: E402
from shortcut_mini.common import git_commit  # noqa: E402
from shortcut_mini.config import TrainConfig  # noqa: E402
from shortcut_mini.profiles import settings  # noqa: E402
from shortcut_mini.reproduce.record import git_dirty  # noqa: E402


def base_config(size: str) -> tuple[TrainConfig, object]:
    s = settings("06_design_choices", size)
    cfg = TrainConfig(
        data=s.data,
        model=s.model,
        steps=s.steps,
        batch_size=s.batch_size,
        lr=s.lr,
        n_data=s.n_data,
        device="cpu",
        progress=False,
        log_every=0,
        ckpt_every=0,
    )
    return cfg, s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=("ci", "cpu"), default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (2 shared cores: 1)")
    p.add_argument("--out", type=Path, help="write the record (JSON) here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    base, s = base_config(a.size)
    t0 = time.perf_counter()
    result = run_switch_ablation(
        base,
        seeds=s.seeds,
        steps=s.budgets,
        n_eval=s.n_eval,
        log=lambda line: print(line, flush=True),
    )
    wall = time.perf_counter() - t0
    print(f"\n{result.n_runs} runs in {wall:.0f} s\n")
    print(result.to_markdown())
    print()
    print(result.to_markdown(value="on_board"))
    verdicts = {
        budget: result.compare("switch", "plain", budget)
        for budget in (s.budgets[0], s.budgets[-1])
    }
    print()
    for budget, rows in verdicts.items():
        for row in rows:
            print(
                f"{budget:>3} step(s)  {row['variant']:<22s} {row['diff']:+.4f} ± {row['se']:.4f}"
                f"  {row['verdict']}"
            )
    if a.out is not None:
        record = {
            "what": " ".join(__doc__.split("\n\n")[0].split()),
            "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
            "commit": git_commit(),
            "dirty": git_dirty(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": {
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "torch_threads": a.threads,
                "torch": torch.__version__,
            },
            "size": a.size,
            "base_config": base.to_dict(),
            "variants": SHORTCUT_SWITCHES,
            "train_seconds": {
                f"{v} / seed {seed}": round(sec, 2)
                for (_, v, seed), sec in result.train_seconds.items()
            },
            "verdicts_against_plain": {str(b): rows for b, rows in verdicts.items()},
            **result.to_dict(),
            "wall_seconds": round(wall, 1),  # of the ablation, after the imports
        }
        a.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        tmp.replace(a.out)
        print(f"\nrecord: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
