"""One (preset, method, seed) run, start to finish: train, evaluate, sample grid, record.

``reproduce.ipynb`` (executed by papermill for each run of a batch) goes through these steps cell
by cell; :func:`run_one` does the same in one call (the runner's ``--engine python``, for machines
without a Jupyter stack). Both train through :func:`train_run`: in this process, or with
``nproc > 1`` in ``nproc`` processes under ``torchrun`` (DistributedDataParallel).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..common import atomic_write_json
from .presets import eval_settings, get_preset, run_config, run_name
from .record import build_record, write_record

__all__ = [
    "LAUNCH_CONFIG",
    "LAUNCH_LOG",
    "RunPaths",
    "run_paths",
    "check_nproc",
    "train_run",
    "train_torchrun",
    "evaluate_run",
    "save_grid",
    "run_one",
]

LAUNCH_CONFIG = "launch_config.json"  # the config a torchrun launch reads (in the train dir)
LAUNCH_LOG = "torchrun.log"  # the launch's stdout and stderr, appended per launch


@dataclass(frozen=True)
class RunPaths:
    """Where one run's files go inside the batch folder ``out``."""

    train_dir: Path  # checkpoints and metrics.jsonl (resume point)
    record: Path  # the results JSON
    notebook: Path  # the executed notebook
    grid: Path  # the sample-grid PNG


def run_paths(out: str | Path, method: str, seed: int, nproc: int = 1) -> RunPaths:
    out = Path(out)
    name = run_name(method, seed, nproc)
    return RunPaths(
        train_dir=out / "runs" / name,
        record=out / f"{name}.json",
        notebook=out / f"{name}.ipynb",
        grid=out / f"{name}.png",
    )


def check_nproc(nproc) -> int:
    """``nproc`` as an ``int`` >= 1 (raises ``ValueError`` otherwise)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(
            f"nproc (training processes per run) must be an integer >= 1, got {nproc!r}"
        )
    return nproc


def torchrun_command(config_file: str | Path, nproc: int) -> list[str]:
    """``python -m torch.distributed.run ... -m shortcut_mini.cli train --config FILE``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "shortcut_mini.cli",
        "train",
        "--config",
        str(config_file),
    ]


def _launch_env() -> dict[str, str]:
    """This process's environment for the launch: no process-group variables of our own, NVLink
    multicast off unless set (see :mod:`shortcut_mini.train.distributed`), and this copy of
    ``shortcut_mini`` first on the path (a source checkout or worktree, not another install)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.setdefault("NCCL_NVLS_ENABLE", "0")
    root = Path(__file__).resolve().parents[2]
    if root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


def _launch_error(output: str, returncode: int, nproc: int, log: Path) -> str:
    """One line on a failed launch: the first error a process printed (the root cause; torchrun's
    own report follows it), else the output's last lines."""
    errors = [
        line
        for line in output.splitlines()
        if line[:1].strip() and not line.startswith(("File ", "Traceback")) and "rror" in line
    ]
    cause = errors[0] if errors else "\n" + "\n".join(output.splitlines()[-20:])
    return (
        f"training under torchrun failed (return code {returncode}, {nproc} processes; full "
        f"output in {log}): {cause}"
    )


def train_torchrun(cfg, nproc: int):
    """Train ``cfg`` in ``nproc`` processes under ``torchrun``; the :class:`Run` it saved.

    The config goes to ``LAUNCH_CONFIG`` in ``cfg.out_dir`` (atomically), the launch's output to
    ``LAUNCH_LOG`` there. As in one process, a run with a checkpoint in ``cfg.out_dir`` resumes.
    Raises ``RuntimeError`` (naming the log and the first error in it) if the launch fails.
    """
    from ..api import load_run
    from ..train.devices import resolve_device

    if cfg.out_dir is None:
        raise ValueError("training under torchrun needs cfg.out_dir (the run is loaded from it)")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_file, log = out / LAUNCH_CONFIG, out / LAUNCH_LOG
    atomic_write_json(config_file, cfg.to_dict())
    with open(log, "ab") as f:
        start = f.tell()  # this launch's output starts here
        try:
            subprocess.run(
                torchrun_command(config_file, nproc),
                env=_launch_env(),
                stdout=f,
                stderr=subprocess.STDOUT,
                check=True,
            )
        except subprocess.CalledProcessError as e:
            output = log.read_bytes()[start:].decode(errors="replace")
            raise RuntimeError(_launch_error(output, e.returncode, nproc, log)) from e
    return load_run(out, device=resolve_device(cfg.device))


def train_run(cfg, nproc: int = 1):
    """Train ``cfg`` (resuming from the last checkpoint in ``cfg.out_dir``) and return the
    :class:`~shortcut_mini.Run`: in this process when ``nproc == 1``, else in ``nproc``
    processes under ``torchrun`` (:func:`~shortcut_mini.reproduce.train_torchrun`). The global
    batch is ``cfg.batch_size`` either way."""
    if check_nproc(nproc) == 1:
        from ..train import train

        return train(cfg)
    return train_torchrun(cfg, nproc)


def evaluate_run(run, preset: str, eval_overrides: dict | None = None, *, cache_dir=None):
    """The preset's step-budget sweep of ``run``: ``(EvalTable, seconds)``.

    A budget the run cannot sample (:func:`~shortcut_mini.budget_runs.missing_budgets`) is left
    out, not an error: ``table.meta["missing_budgets"]`` says why, and the record and the
    aggregated table leave it blank."""
    from ..budget_runs import missing_budgets
    from ..evaluate import evaluate

    ev = eval_settings(preset, eval_overrides)
    missing = missing_budgets(run, ev["steps"])
    steps = [s for s in ev["steps"] if s not in missing]
    if not steps:
        raise ValueError(
            f"{run.config.method} cannot sample any of the budgets {ev['steps']}: "
            + "; ".join(f"{b}: {why}" for b, why in missing.items())
        )
    t0 = time.perf_counter()
    table = evaluate(
        run,
        steps=steps,
        n=ev["n"],
        seeds=ev["seeds"],
        features=ev["metric"],
        progress=False,
        cache_dir=cache_dir,
    )
    table.meta["missing_budgets"] = {str(b): why for b, why in missing.items()}
    return table, time.perf_counter() - t0


def save_grid(run, preset: str, path: str | Path, seed: int = 0, name: str | None = None):
    """Save the preset's sample grid (same noise, seeded by ``seed``, at each budget of
    ``grid.steps`` the run can sample; a progressive-distillation budget from its stage's
    student), titled by the preset's row ``name`` (default: the run's method), model and training
    seed; the figure."""
    from ..budget_runs import missing_budgets
    from ..plots import plot_sample_grid, save_figure

    grid = get_preset(preset)["grid"]
    steps = [s for s in grid["steps"] if s not in missing_budgets(run, grid["steps"])]
    fig = plot_sample_grid(run, steps=steps, n=grid["n"], seed=seed, name=name)
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
    nproc: int = 1,
) -> dict:
    """Train (resuming from the last checkpoint; in ``nproc`` processes, see :func:`train_run`),
    evaluate, save the grid, write the record."""
    paths = run_paths(out_dir, method, seed, nproc)
    cfg = run_config(preset, method, seed, paths.train_dir, overrides)
    run = train_run(cfg, nproc)
    table, eval_seconds = evaluate_run(
        run, preset, eval_overrides, cache_dir=Path(out_dir) / "cache"
    )
    save_grid(run, preset, paths.grid, name=method)
    record = build_record(
        preset=preset,
        run=run,
        table=table,
        eval_seconds=eval_seconds,
        command=command,
        sample_grid=paths.grid.name,
        world_size=nproc,
        label=method,
    )
    write_record(record, paths.record)
    return record
