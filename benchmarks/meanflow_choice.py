"""Pick MeanFlow's table1 settings from a finished tuning batch, by a rule stated before the run.

The rule (``shortcut_mini.verdict.best_one_step``): MeanFlow is a one-step method, so the
setting with the lowest 1-step FD (classifier) wins; a tie (within 1%) goes to the lower 2-step
FD. Prints the winner's settings as runner arguments (``--set method_args.meanflow_ratio=0.75
...``) and writes ``meanflow_choice.json`` beside the
records, so a queued ``table1 --methods meanflow`` batch can take them when it starts
(benchmarks/gpu_queue.sh evaluates ``$(...)`` in a queue line's arguments)::

    python benchmarks/meanflow_choice.py /tmp/batch/tuning_mf
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from the queue: no install
from shortcut_mini.verdict import best_one_step  # noqa: E402

SETTINGS = (
    "meanflow_ratio",
    "meanflow_t_mean",
    "meanflow_t_std",
    "meanflow_norm_p",
    "meanflow_norm_eps",
)


def fd_at(record: dict, steps: int) -> float:
    for row in record["evaluation"]:
        if row["steps"] == steps:
            return row["value"]
    raise KeyError(f"{record['method']}: no evaluation at {steps} steps")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("batch", type=Path, help="folder of a tuning batch's records")
    a = p.parse_args(argv)
    records = [json.loads(f.read_text()) for f in sorted(a.batch.glob("meanflow_*_seed0.json"))]
    if not records:
        print(f"no meanflow_*_seed0.json records in {a.batch}", file=sys.stderr)
        return 1
    by_name = {r["method"]: r for r in records}
    win = by_name[
        best_one_step({name: {s: fd_at(r, s) for s in (1, 2)} for name, r in by_name.items()})
    ]
    # records of either form: the settings in method_args, or as fields (before method_args)
    config = win["config"]
    settings = {k: config.get("method_args", {}).get(k, config.get(k)) for k in SETTINGS}
    table = {r["method"]: {s: fd_at(r, s) for s in (1, 2, 4, 128)} for r in records}
    choice = dict(
        rule="lowest 1-step FD; within 1%: lowest 2-step FD",
        chosen=win["method"],
        settings=settings,
        fd=table,
    )
    (a.batch / "meanflow_choice.json").write_text(json.dumps(choice, indent=1) + "\n")
    print(" ".join(f"--set method_args.{k}={v}" for k, v in settings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
