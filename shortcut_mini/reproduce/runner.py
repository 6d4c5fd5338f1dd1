"""The batch runner: ``shortcut-mini reproduce PRESET`` (and ``make reproduce PRESET=...``).

For each (method, seed) of a preset it executes ``reproduce.ipynb`` with papermill, with the run's
parameters injected, and keeps the executed notebook (``OUT/METHOD_seedS.ipynb``) beside the run's
results record (``OUT/METHOD_seedS.json``), sample grid (``.png``) and training folder
(``OUT/runs/METHOD_seedS/``, checkpoints). Then it aggregates every record in ``OUT`` into
``summary.md``, ``summary.csv`` and ``quality_vs_steps.png``.

- **Resume.** A run whose record exists and validates is skipped, so a killed batch restarts where
  it stopped; a run killed mid-training resumes from its last checkpoint.
- **Failures.** A failed run is reported (its executed notebook shows the error) and the batch
  goes on; the exit status is non-zero if any run failed.
- **No Jupyter?** ``--engine python`` runs the same steps in-process (:func:`.one_run.run_one`),
  without the executed notebooks; ``auto`` picks it when papermill is not installed.
- **Several GPUs.** ``--nproc N`` trains each run in ``N`` processes under ``torchrun``
  (DistributedDataParallel, one GPU each, the same global batch); evaluation stays in one process.

Examples::

    shortcut-mini reproduce fashion_mnist                      # 2 methods x 2 seeds
    shortcut-mini reproduce fashion_mnist --seeds 0 --dry-run  # show the plan
    shortcut-mini reproduce smoke --set steps=50 --out /tmp/smoke
    shortcut-mini reproduce fashion_mnist --nproc 4            # each run on 4 GPUs
    shortcut-mini reproduce fashion_mnist --publish            # + book/results and README
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .aggregate import Summary, write_summary
from .one_run import check_nproc, run_one, run_paths
from .presets import eval_settings, get_preset, run_config
from .record import read_record

__all__ = ["BatchResult", "RunOutcome", "add_arguments", "is_finished", "main", "run_preset"]

NOTEBOOK = Path(__file__).with_name("reproduce.ipynb")


@dataclass
class RunOutcome:
    """What happened to one run: ``done``, ``skipped`` (already finished), ``failed`` or
    ``planned`` (dry run)."""

    method: str
    seed: int
    status: str
    seconds: float = 0.0
    error: str | None = None
    record: Path | None = None
    notebook: Path | None = None


@dataclass
class BatchResult:
    preset: str
    out_dir: Path
    outcomes: list[RunOutcome] = field(default_factory=list)
    summary: Summary | None = None

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def is_finished(path: Path, preset: str, method: str, seed: int) -> bool:
    """True if ``path`` holds a valid record of this (preset, method, seed)."""
    if not path.exists():
        return False
    try:
        rec = read_record(path)
    except (ValueError, OSError):
        return False
    return (rec["preset"], rec["method"], rec["seed"]) == (preset, method, int(seed))


def _pick_engine(engine: str) -> str:
    if engine != "auto":
        return engine
    try:
        import ipykernel  # noqa: F401
        import papermill  # noqa: F401
    except ImportError:
        return "python"
    return "papermill"


def _execute_papermill(params: dict, notebook: Path, kernel_name: str | None) -> None:
    import papermill

    notebook.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(notebook),
        parameters=params,
        kernel_name=kernel_name,
        progress_bar=False,
        log_output=False,
        cwd=str(Path.cwd()),
    )


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip()
    # papermill's message ends with the cell's exception: keep the last informative line
    lines = [x for x in text.splitlines() if x.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line.strip()[:400]
    return (lines[-1] if lines else type(exc).__name__)[:400]


def run_preset(
    preset: str,
    *,
    methods: list[str] | None = None,
    seeds: list[int] | None = None,
    out: str | Path | None = None,
    overrides: dict | None = None,
    eval_overrides: dict | None = None,
    dry_run: bool = False,
    engine: str = "auto",
    kernel_name: str | None = None,
    progress: bool = True,
    command: str = "",
    log=None,
    nproc: int = 1,
) -> BatchResult:
    """Run every (method, seed) of ``preset`` not yet finished in ``out``, then aggregate.

    Args:
        methods, seeds: subsets (default: the preset's).
        out: the batch folder (default ``runs/reproduce/PRESET``).
        overrides: TrainConfig fields replacing the preset's for every run.
        eval_overrides: replace the sweep's ``n``, ``steps``, ``seeds`` or ``metric``.
        dry_run: list what would run, run nothing.
        engine: ``"papermill"`` (executed notebooks kept), ``"python"`` (in-process) or ``"auto"``.
        kernel_name: Jupyter kernel for papermill (default: the notebook's, ``python3``).
        command: the command line recorded in each record.
        log: a ``print``-like function for the per-run lines (default: ``tqdm.write``).
        nproc: training processes per run; above 1 each run trains under ``torchrun``.
    """
    spec = get_preset(preset)
    methods = list(methods or spec["methods"])
    seeds = [int(s) for s in (seeds if seeds is not None else spec["seeds"])]
    out = Path(out or Path("runs") / "reproduce" / preset).resolve()
    overrides, eval_overrides = dict(overrides or {}), dict(eval_overrides or {})
    eval_settings(preset, eval_overrides)  # unknown evaluation settings fail before any run
    nproc = check_nproc(nproc)
    fell_back = engine == "auto" and _pick_engine(engine) == "python"
    engine = _pick_engine(engine)
    plan = [(m, s) for s in seeds for m in methods]  # seed-major: a cut batch has every method
    result = BatchResult(preset=preset, out_dir=out)

    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), desc=f"reproduce {preset}", unit="run")
        say = log or tqdm.write
    else:
        bar = _NoBar()
        say = log or print
    say(
        f"reproduce {preset}: {len(plan)} runs ({', '.join(methods)} x seeds "
        f"{', '.join(map(str, seeds))}) in {out} [engine {engine}"
        + (f", {nproc} training processes per run]" if nproc > 1 else "]")
    )
    if fell_back and not dry_run:
        say("  note: papermill/ipykernel not installed: running in-process, no executed notebooks")
    try:
        for i, (method, seed) in enumerate(plan, 1):
            paths = run_paths(out, method, seed, nproc)
            tag = f"[{i}/{len(plan)}] {method} seed {seed}"
            if is_finished(paths.record, preset, method, seed):
                result.outcomes.append(
                    RunOutcome(
                        method, seed, "skipped", record=paths.record, notebook=paths.notebook
                    )
                )
                say(f"{tag}: finished earlier, skipped ({paths.record.name})")
                bar.update(1)
                continue
            if dry_run:
                try:
                    cfg = run_config(preset, method, seed, paths.train_dir, overrides)
                    what = f"{cfg.data} {cfg.model} {cfg.steps:,} steps x {cfg.batch_size}"
                    what += f" in {nproc} processes" if nproc > 1 else ""
                except ValueError as e:
                    what = f"invalid config: {e}"
                resumable = (paths.train_dir / "checkpoint.pt").exists()
                say(f"{tag}: would run ({what}{'; resumes a checkpoint' if resumable else ''})")
                result.outcomes.append(RunOutcome(method, seed, "planned"))
                bar.update(1)
                continue
            say(f"{tag}: running")
            out.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            params = dict(
                preset=preset,
                method=method,
                seed=seed,
                out_dir=str(out),
                overrides=overrides,
                eval_overrides=eval_overrides,
                command=command,
                nproc=nproc,
            )
            try:
                if engine == "papermill":
                    _execute_papermill(params, paths.notebook, kernel_name)
                elif engine == "python":
                    run_one(**params)
                else:
                    raise ValueError(f"unknown engine {engine!r}; use auto, papermill or python")
                rec = read_record(paths.record)
            except Exception as e:  # one run's failure must not stop the batch
                secs = time.perf_counter() - t0
                err = _short_error(e)
                if engine == "python":
                    err += "\n" + traceback.format_exc(limit=3)
                result.outcomes.append(
                    RunOutcome(method, seed, "failed", secs, err, notebook=paths.notebook)
                )
                where = f" (see {paths.notebook})" if engine == "papermill" else ""
                say(f"{tag}: FAILED after {secs:.0f} s: {err.splitlines()[0]}{where}")
            else:
                secs = time.perf_counter() - t0
                ev = {e["steps"]: e["value"] for e in rec["evaluation"]}
                brief = ", ".join(f"{s}: {ev[s]:.3g}" for s in sorted(ev) if s in (1, 4, 128))
                name = rec["evaluation"][0]["distance"]
                result.outcomes.append(
                    RunOutcome(
                        method, seed, "done", secs, record=paths.record, notebook=paths.notebook
                    )
                )
                say(
                    f"{tag}: done in {secs:.0f} s (training {rec['train_seconds']:.0f} s); "
                    f"{name} by steps {{{brief}}}"
                )
            bar.update(1)
    finally:
        bar.close()
    if not dry_run and out.exists():
        result.summary = write_summary(out, preset)
        say(f"summary: {out / 'summary.md'} ({len(result.summary.records)} records)")
    if result.failed:
        say(
            f"{len(result.failed)} of {len(plan)} runs failed: "
            + ", ".join(f"{o.method} seed {o.seed}" for o in result.failed)
            + ". Rerun the same command to retry them (finished runs are skipped)."
        )
    return result


# ---- command line ------------------------------------------------------------------------------


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def _positive_int(text: str) -> int:
    try:
        return check_nproc(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", nargs="?", help="preset name (see --list)")
    p.add_argument("--methods", nargs="+", default=None, help="default: the preset's")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the preset's")
    p.add_argument("--out", default=None, help="batch folder (default runs/reproduce/PRESET)")
    p.add_argument("--dry-run", action="store_true", help="show the plan, run nothing")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="TrainConfig override for every run (JSON value), e.g. steps=500",
    )
    p.add_argument(
        "--eval-set",
        dest="eval_overrides",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="evaluation override: n, steps, seeds or metric",
    )
    p.add_argument(
        "--nproc",
        type=_positive_int,
        default=1,
        metavar="N",
        help="training processes (GPUs) per run; N > 1 trains under torchrun (default 1)",
    )
    p.add_argument("--engine", choices=("auto", "papermill", "python"), default="auto")
    p.add_argument("--kernel", default=None, help="Jupyter kernel for papermill")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over runs")
    p.add_argument(
        "--publish",
        action="store_true",
        help="copy records + aggregate into BOOK_RESULTS/PRESET, regenerate the results page "
        "table and the README table",
    )
    p.add_argument("--book-results", default="book/results", help="publish destination")
    p.add_argument("--readme", default="README.md", help="README to update on --publish")
    p.add_argument("--list", action="store_true", help="print the preset table and exit")


def main_from_args(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    if args.list:
        from .presets import preset_table

        print(preset_table())
        return 0
    if not args.preset:
        raise ValueError("name a preset (shortcut-mini reproduce --list shows them)")
    command = shlex.join(["shortcut-mini", *(argv if argv is not None else sys.argv[1:])])
    result = run_preset(
        args.preset,
        methods=args.methods,
        seeds=args.seeds,
        out=args.out,
        overrides=dict(args.overrides),
        eval_overrides=dict(args.eval_overrides),
        dry_run=args.dry_run,
        engine=args.engine,
        kernel_name=args.kernel,
        progress=not args.no_progress,
        command=command,
        log=None,
        nproc=args.nproc,
    )
    if args.publish and not args.dry_run:
        from .publish import publish

        dest = publish(
            result.out_dir, args.preset, book_results=args.book_results, readme=args.readme
        )
        print(f"published to {dest} and {Path(args.book_results) / 'summary.md'}")
    return 1 if result.failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="shortcut-mini reproduce",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    args = p.parse_args(argv)
    return main_from_args(args, argv)


if __name__ == "__main__":
    sys.exit(main())
