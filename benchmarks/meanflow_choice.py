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
from shortcut_mini.config import TrainConfig  # noqa: E402
from shortcut_mini.reproduce.aggregate import record_values  # noqa: E402
from shortcut_mini.verdict import best_one_step  # noqa: E402


def by_name(records: list[dict], method: str) -> dict:
    return next(r for r in records if r["method"] == method)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("batch", type=Path, help="folder of a tuning batch's records")
    a = p.parse_args(argv)
    records = [json.loads(f.read_text()) for f in sorted(a.batch.glob("meanflow_*_seed0.json"))]
    if not records:
        print(f"no meanflow_*_seed0.json records in {a.batch}", file=sys.stderr)
        return 1
    fd = {r["method"]: record_values(r) for r in records}
    chosen = best_one_step(fd)
    # a record of either form (settings in method_args, or as fields before method_args)
    settings = TrainConfig.from_saved(by_name(records, chosen)["config"]).method_args
    choice = dict(
        rule="lowest 1-step FD; within 1%: lowest 2-step FD",
        chosen=chosen,
        settings=settings,
        fd={m: {s: v[s] for s in (1, 2, 4, 128)} for m, v in fd.items()},
    )
    (a.batch / "meanflow_choice.json").write_text(json.dumps(choice, indent=1) + "\n")
    print(" ".join(f"--set method_args.{k}={v}" for k, v in settings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
