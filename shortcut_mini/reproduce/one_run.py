"""One (preset, method, seed) run, start to finish: train, evaluate, sample grid, record.

``reproduce.ipynb`` (executed by papermill for each run of a batch) goes through these steps cell
by cell; :func:`run_one` does the same in one call (the runner's ``--engine python``, for machines
without a Jupyter stack).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .presets import eval_settings, get_preset, run_config, run_name
from .record import build_record, write_record

__all__ = ["RunPaths", "run_paths", "evaluate_run", "save_grid", "run_one"]


@dataclass(frozen=True)
class RunPaths:
    """Where one run's files go inside the batch folder ``out``."""

    train_dir: Path  # checkpoints and metrics.jsonl (resume point)
    record: Path  # the results JSON
    notebook: Path  # the executed notebook
    grid: Path  # the sample-grid PNG


def run_paths(out: str | Path, method: str, seed: int) -> RunPaths:
    out = Path(out)
    name = run_name(method, seed)
    return RunPaths(
        train_dir=out / "runs" / name,
        record=out / f"{name}.json",
        notebook=out / f"{name}.ipynb",
        grid=out / f"{name}.png",
    )


def evaluate_run(run, preset: str, eval_overrides: dict | None = None, *, cache_dir=None):
    """The preset's step-budget sweep of ``run``: ``(EvalTable, seconds)``."""
    from ..evaluate import evaluate

    ev = eval_settings(preset, eval_overrides)
    t0 = time.perf_counter()
    table = evaluate(
        run,
        steps=ev["steps"],
        n=ev["n"],
        seeds=ev["seeds"],
        features=ev["metric"],
        progress=False,
        cache_dir=cache_dir,
    )
    return table, time.perf_counter() - t0


def save_grid(run, preset: str, path: str | Path, seed: int = 0):
    """Save the preset's sample grid (same noise at each budget of ``grid.steps``); the figure."""
    from ..plots import plot_sample_grid, save_figure

    grid = get_preset(preset)["grid"]
    fig = plot_sample_grid(run, steps=grid["steps"], n=grid["n"], seed=seed)
    save_figure(fig, path)
    return fig


def run_one(
    preset: str,
    method: str,
    seed: int,
    out_dir: str | Path,
    overrides: dict | None = None,
    eval_overrides: dict | None = None,
    command: str = "",
) -> dict:
    """Train (resuming from the last checkpoint), evaluate, save the grid, write the record."""
    from ..train import train

    paths = run_paths(out_dir, method, seed)
    cfg = run_config(preset, method, seed, paths.train_dir, overrides)
    run = train(cfg)
    table, eval_seconds = evaluate_run(
        run, preset, eval_overrides, cache_dir=Path(out_dir) / "cache"
    )
    save_grid(run, preset, paths.grid)
    record = build_record(
        preset=preset,
        run=run,
        table=table,
        eval_seconds=eval_seconds,
        command=command,
        sample_grid=paths.grid.name,
    )
    write_record(record, paths.record)
    return record
