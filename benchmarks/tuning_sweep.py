"""The tuning sweep of MeanFlow and shortcut models for small data, at the ``table1`` budget.

MeanFlow's defaults are its paper's ImageNet settings; its CIFAR-10 run, unconditional and small
like this project's data, used others. This script trains MeanFlow at three named settings
(``shortcut_mini.objectives.MEANFLOW_SETTINGS``: ``imagenet``, ``between``, ``cifar10``) and, with
the same tuning budget, shortcut models at three self-consistency fractions (1/8, 1/4, 1/2), so
that neither method is compared at settings chosen for the other. Every run is one run of the
``table1`` preset (Fashion-MNIST, dit-mini, 8,000 steps x 256, seed 0) with ``compile_mode``
``reduce-overhead`` and its variant's fields, trained, evaluated (FD with the classifier's
features at 1, 2, 4, ..., 128 steps) and recorded by the reproduction tooling
(``shortcut_mini.reproduce.run_one``): one folder per variant under ``--out``, holding the run's
record (``METHOD_seed0.json``, schema ``shortcut_mini/reproduce/results.schema.json``: config,
command, commit, device, wall times), its sample grid and its checkpoints. It then writes
``sweep.json`` and ``sweep.md`` (one row per variant) from the records.

A finished variant (its record exists and validates) is not run again; an interrupted one resumes
from its last checkpoint. ``--gpus 0 1 2 ...`` runs the variants in parallel, one process per GPU
(``CUDA_VISIBLE_DEVICES``), each process this script with ``--variants NAME``.

    PYTHONPATH=$PWD python benchmarks/tuning_sweep.py --out runs/tuning_sweep --gpus 0 1 2 3 4 5
    PYTHONPATH=$PWD python benchmarks/tuning_sweep.py --out runs/tuning_sweep   # one at a time
    python benchmarks/tuning_sweep.py --list                                     # the variants
    python benchmarks/tuning_sweep.py --preset table1_smoke --out /tmp/sweep     # CPU, seconds

The script chooses nothing: the settings of the preset are chosen from its table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from shortcut_mini.common import atomic_write_json, git_commit
from shortcut_mini.objectives.meanflow import MEANFLOW_SETTINGS

VARIANTS: dict[str, tuple[str, dict]] = {
    **{f"meanflow_{name}": ("meanflow", dict(s)) for name, s in MEANFLOW_SETTINGS.items()},
    "shortcut_k1_8": ("shortcut", dict(bootstrap_fraction=0.125)),
    "shortcut_k1_4": ("shortcut", dict(bootstrap_fraction=0.25)),
    "shortcut_k1_2": ("shortcut", dict(bootstrap_fraction=0.5)),
}
"""Variant name -> (method, TrainConfig fields of the variant)."""

SHARED = dict(compile_mode="reduce-overhead")
"""TrainConfig fields of every run beyond the preset's (CUDA graphs: see ``shortcut_mini.speed``)."""

SEED = 0
SUMMARY_JSON, SUMMARY_MD = "sweep.json", "sweep.md"


def variant_config(preset: str, name: str, out: Path | None = None):
    """The :class:`~shortcut_mini.TrainConfig` of variant ``name`` (its run folder in ``out``)."""
    from shortcut_mini.reproduce.one_run import run_paths
    from shortcut_mini.reproduce.presets import run_config

    method, fields = VARIANTS[name]
    run_dir = None if out is None else run_paths(out / name, method, SEED).train_dir
    return run_config(preset, method, SEED, run_dir, {**SHARED, **fields})


def record_path(out: Path, name: str) -> Path:
    from shortcut_mini.reproduce.one_run import run_paths

    return run_paths(out / name, VARIANTS[name][0], SEED).record


def finished(out: Path, name: str) -> bool:
    """Whether variant ``name`` has a valid record in ``out``."""
    from shortcut_mini.reproduce.record import read_record

    path = record_path(out, name)
    if not path.exists():
        return False
    try:
        read_record(path)
    except Exception:  # an unreadable record is run again
        return False
    return True


def run_variant(preset: str, name: str, out: Path, command: str) -> dict:
    """Train, evaluate and record variant ``name`` (resuming); its record."""
    from shortcut_mini.reproduce.one_run import run_one

    method, fields = VARIANTS[name]
    return run_one(preset, method, SEED, out / name, {**SHARED, **fields}, command=command)


def run_parallel(names: list[str], gpus: list[str], args, log) -> list[str]:
    """Each variant in its own process on its own GPU, at most one per GPU at a time (output in
    ``OUT/NAME.log``); the names of the variants whose process failed."""
    pending, running, failed = list(names), {}, []
    with contextlib.ExitStack() as logs:
        while pending or running:
            for gpu in gpus:
                if gpu not in running and pending:
                    name = pending.pop(0)
                    cmd = [sys.executable, __file__, "--preset", args.preset]
                    cmd += ["--out", str(args.out), "--variants", name]
                    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
                    out = logs.enter_context(open(args.out / f"{name}.log", "ab"))
                    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
                    running[gpu] = (name, proc)
                    log(f"{name}: started on GPU {gpu} (log {args.out / f'{name}.log'})")
            for gpu, (name, proc) in list(running.items()):
                if proc.poll() is not None:
                    del running[gpu]
                    if proc.returncode:
                        failed.append(name)
                    log(f"{name}: {'failed' if proc.returncode else 'done'} on GPU {gpu}")
            time.sleep(1.0)
    return failed


def summarise(preset: str, out: Path, command: str = "", wall_s: float | None = None) -> dict:
    """``sweep.json`` and ``sweep.md`` from the variants' records in ``out`` (``command`` and
    ``wall_s``: the invocation that wrote them; each record holds its own)."""
    from shortcut_mini.reproduce.record import read_record

    rows, budgets = [], set()
    for name, (method, fields) in VARIANTS.items():
        if not finished(out, name):
            rows.append({"variant": name, "method": method, "settings": fields, "record": None})
            continue
        rec = read_record(record_path(out, name))
        values = {int(e["steps"]): float(e["value"]) for e in rec["evaluation"]}
        budgets |= set(values)
        rows.append(
            {
                "variant": name,
                "method": method,
                "settings": fields,
                "record": str(record_path(out, name).relative_to(out)),
                "distance": rec["evaluation"][0]["distance"] if rec["evaluation"] else None,
                "values": values,
                "train_seconds": rec["train_seconds"],
                "eval_seconds": rec["eval_seconds"],
                "device": rec["device"],
                "commit": rec["git"],
            }
        )
    doc = {
        "preset": preset,
        "seed": SEED,
        "shared": SHARED,
        "command": command,
        "commit": git_commit(),
        "wall_seconds": None if wall_s is None else round(wall_s, 1),
        "rows": rows,
    }
    atomic_write_json(out / SUMMARY_JSON, doc)
    (out / SUMMARY_MD).write_text(markdown(rows, sorted(budgets)) + "\n")
    return doc


def markdown(rows: list[dict], budgets: list[int]) -> str:
    """One row per variant: its settings, the distance at each budget, training seconds."""
    head = ["variant", "settings"] + [f"{b} step{'s' * (b > 1)}" for b in budgets] + ["train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        settings = ", ".join(f"{k}={v:g}" for k, v in r["settings"].items())
        if r["record"] is None:
            cells = ["not run"] * len(budgets) + ["–"]
        else:
            cells = [f"{r['values'][b]:.2f}" if b in r["values"] else "–" for b in budgets]
            cells.append(f"{r['train_seconds']:.0f}")
        lines.append("| " + " | ".join([r["variant"], settings, *cells]) + " |")
    distance = next((r["distance"] for r in rows if r.get("distance")), "distance")
    lines.append(f"\n{distance} (lower is better) at each sampling budget; seed {SEED}.")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/tuning_sweep"))
    p.add_argument("--preset", default="table1", help="the runs' preset (table1_smoke: CPU test)")
    p.add_argument("--variants", nargs="+", default=None, help=f"default: all of {list(VARIANTS)}")
    p.add_argument("--gpus", nargs="+", default=None, help="run variants in parallel, one per GPU")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    args = p.parse_args(argv)
    args.variants = list(VARIANTS) if args.variants is None else args.variants
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        p.error(f"--variants: unknown {unknown}; known: {list(VARIANTS)}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.list:
        for name, (method, fields) in VARIANTS.items():
            print(f"{name:20s} {method:10s} {fields}")
        return {}
    for name in args.variants:  # every run's settings are checked before the first one starts
        variant_config(args.preset, name)
    args.out.mkdir(parents=True, exist_ok=True)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/tuning_sweep.py", *given])
    t_start = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    todo = [name for name in args.variants if not finished(args.out, name)]
    for name in sorted(set(args.variants) - set(todo)):
        log(f"{name}: finished earlier, skipped")
    failed = []
    if args.gpus and len(todo) > 1:
        failed = run_parallel(todo, args.gpus, args, log)
    else:
        for name in todo:
            t0 = time.perf_counter()
            try:
                run_variant(args.preset, name, args.out, command)
            except Exception as exc:  # recorded as failed; the other variants still run
                failed.append(name)
                log(f"{name}: FAILED: {exc!r}")
                continue
            log(f"{name}: done in {time.perf_counter() - t0:.0f} s")
    doc = summarise(args.preset, args.out, command, time.perf_counter() - t_start)
    print(markdown(doc["rows"], sorted({b for r in doc["rows"] for b in r.get("values", {})})))
    if failed:
        raise SystemExit(f"failed variants: {failed} (rerun the same command to retry them)")
    return doc


if __name__ == "__main__":
    main()
