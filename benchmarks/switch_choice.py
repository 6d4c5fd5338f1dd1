"""Pick the switches of the ``since_paper`` ablation's combined run, by a rule stated before it ran.

The rule (``shortcut_mini.verdict.switches_to_combine``): a switch joins the combination when,
trained alone, it lowers the 1-step FD (classifier) below the plain shortcut model's by more than
1% and costs at most 5% at 128 steps; if none does, the combination is the single switch with the
lowest 1-step FD. "Plain" is the ``table1`` preset's ``shortcut`` run of seed 0 (the same budget,
network and settings, no switch). Prints the combined settings as runner arguments (``--set
method_args.ot_pairing=True ...``) and writes ``switch_choice.json`` beside the switches' records,
so that a queued ``since_paper --methods shortcut_combined`` batch can take them when it starts
(benchmarks/gpu_queue.sh evaluates ``$(...)`` in a queue line's arguments)::

    python benchmarks/switch_choice.py /tmp/batch/since_paper_a /tmp/batch/table1_sc/shortcut_seed0.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from the queue: no install
from shortcut_mini.config import TrainConfig, changed_settings  # noqa: E402
from shortcut_mini.objectives import OBJECTIVES  # noqa: E402
from shortcut_mini.reproduce.aggregate import record_values  # noqa: E402
from shortcut_mini.verdict import switches_to_combine  # noqa: E402

COMBINED = "shortcut_combined"


def combined_settings(records: dict[str, dict], chosen: list[str], plain: dict) -> dict:
    """Every setting that a switch of the ablation changes from the plain record: the chosen
    switches' values, plain's for the others (so that the combined row's own defaults do not
    matter), and the step-size embedding likewise (a split needs the step size as a number)."""
    base = TrainConfig.from_saved(plain["config"])
    changed = {m: changed_settings(r["config"], plain["config"]) for m, r in records.items()}
    args = {}
    for m, settings in changed.items():
        for k, v in settings.items():
            if k != "level_embedding":
                args.setdefault(k, base.method_args.get(k))
                if m in chosen:
                    args[k] = v
    embedding = base.level_embedding or OBJECTIVES[base.method].default_level_embedding
    for m in chosen:
        embedding = changed[m].get("level_embedding", embedding)
    return {"method_args": args, "level_embedding": embedding}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("batch", type=Path, help="folder of the switches' records (one seed each)")
    p.add_argument("plain", type=Path, help="the plain shortcut record (table1, seed 0)")
    a = p.parse_args(argv)
    records = {
        r["method"]: r
        for r in (json.loads(f.read_text()) for f in sorted(a.batch.glob("shortcut_*_seed0.json")))
        if r["method"] != COMBINED
    }
    if not records or not a.plain.exists():
        print(
            f"need shortcut_*_seed0.json records in {a.batch} and the plain record {a.plain}",
            file=sys.stderr,
        )
        return 1
    plain_record = json.loads(a.plain.read_text())
    plain = record_values(plain_record)
    alone = {m: record_values(r) for m, r in records.items()}
    chosen = switches_to_combine(plain, alone)
    settings = combined_settings(records, chosen, plain_record)
    choice = dict(
        rule="1-step FD lower than plain's by more than 1% and 128-step FD at most 5% higher; "
        "else the single switch with the lowest 1-step FD",
        chosen=chosen,
        settings=settings,
        plain={s: plain[s] for s in (1, 2, 4, 128)},
        fd={m: {s: v[s] for s in (1, 2, 4, 128)} for m, v in alone.items()},
    )
    (a.batch / "switch_choice.json").write_text(json.dumps(choice, indent=1) + "\n")
    sets = [f"--set method_args.{k}={v}" for k, v in settings["method_args"].items()]
    if settings["level_embedding"]:
        sets.append(f"--set level_embedding={settings['level_embedding']}")
    print(" ".join(sets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
