"""The batch runner: ``shortcut-mini reproduce PRESET`` (and ``make reproduce PRESET=...``).

For each (method, seed) of a preset it executes ``reproduce.ipynb`` with papermill, with the run's
parameters injected, and keeps the executed notebook (``OUT/METHOD_seedS.ipynb``) beside the run's
results record (``OUT/METHOD_seedS.json``), sample grid (``.png``) and training folder
(``OUT/runs/METHOD_seedS/``, checkpoints). Then it aggregates every record in ``OUT`` into
``summary.md``, ``summary.csv`` and ``quality_vs_steps.png``.

- **Settings first.** Every run's settings (``--methods``, ``--set``, ``--eval-set``) are checked
  before the first run starts (:func:`check_batch`): a bad one stops the batch at once, with a
  message naming it, instead of after hours of training.
- **Resume.** A run whose record exists and validates is skipped, so a killed batch restarts where
  it stopped; a run killed mid-training resumes from its last checkpoint. A batch may be run in
  parts (``--methods``, ``--seeds``) into the same folder.
- **Teachers.** A method that distils a teacher (consistency and progressive distillation,
  reflow) gets ``teacher=`` the batch's flow-matching run of its seed, or of seed 0
  (:mod:`.teachers`); that run is trained first. A teacher neither in the batch nor finished in
  its folder stops the batch before anything runs, naming it; a teacher that fails fails its
  students without running them.
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
    shortcut-mini reproduce table1 --methods flow_matching     # a part: the teachers first
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RESUME_IGNORED_FIELDS, ConfigError, TrainConfig
from ..output_paths import check_output_file, check_output_folder
from .aggregate import Summary, record_values, write_summary
from .arguments import add_arguments
from .one_run import check_nproc, run_one, run_paths
from .presets import (
    eval_settings,
    get_preset,
    method_seeds,
    method_settings_overrides,
    objective_of,
    run_config,
)
from .record import read_record
from .teachers import TEACHER_METHOD, needs_teacher, order_runs, teacher_seed

__all__ = [
    "BatchPlan",
    "BatchResult",
    "RunOutcome",
    "add_arguments",
    "check_batch",
    "is_finished",
    "run_preset",
]

NOTEBOOK = Path(__file__).with_name("reproduce.ipynb")

# Exceptions (by class name, as papermill reports them) that a rerun of the same command cannot
# fix: the run's settings or its data must change first.
NOT_RETRYABLE = ("ConfigError", "ValueError", "DatasetError", "DatasetUnavailableError")


@dataclass
class RunOutcome:
    """What happened to one run: ``done``, ``skipped`` (already finished), ``failed`` (also: not
    run because its teacher failed) or ``planned`` (dry run)."""

    method: str
    seed: int
    status: str
    seconds: float = 0.0
    error: str | None = None
    record: Path | None = None
    notebook: Path | None = None
    retryable: bool = True


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


@dataclass
class BatchPlan:
    """The runs of one batch and how they are run (the arguments of :func:`run_preset`,
    resolved). ``seeds`` maps each method to its training seeds; ``teacher_seeds`` are the
    flow-matching seeds that teach the two-stage runs (``reproduce.teachers.teacher_seed``)."""

    preset: str
    methods: list[str]
    seeds: dict[str, list[int]]
    out: Path
    overrides: dict
    eval_overrides: dict
    engine: str = "python"
    fell_back: bool = False
    kernel_name: str | None = None
    command: str = ""
    nproc: int = 1
    teacher_seeds: list[int] = field(default_factory=lambda: [0])

    @property
    def runs(self) -> list[tuple[str, int]]:
        every = sorted({s for seeds in self.seeds.values() for s in seeds})
        runs = [(m, s) for s in every for m in self.methods if s in self.seeds[m]]
        return order_runs(runs, self.teacher_of)

    def teacher_of(self, method: str, seed: int) -> tuple[str, int] | None:
        """The ``(method, seed)`` of the run that teaches this one (None: no teacher, or one
        given with ``--set teacher=``)."""
        if not needs_teacher(objective_of(self.preset, method)) or "teacher" in self.overrides:
            return None
        return TEACHER_METHOD, teacher_seed(seed, self.teacher_seeds)

    def run_overrides(self, method: str, seed: int) -> dict:
        """``overrides`` of one run: the batch's, plus ``teacher=`` its teacher's folder."""
        teacher = self.teacher_of(method, seed)
        if teacher is None:
            return dict(self.overrides)
        return {
            **self.overrides,
            "teacher": str(run_paths(self.out, *teacher, self.nproc).train_dir),
        }


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


# What a finished record may differ in from the run asked for and still stand for it: the fields
# a resumed run may change, but not its length, and not where its teacher's folder was.
_RECORD_IGNORED_FIELDS = tuple(f for f in RESUME_IGNORED_FIELDS if f != "steps") + ("teacher",)


def stale_settings(path: Path, cfg: TrainConfig) -> dict:
    """The training settings of ``cfg`` that the finished record at ``path`` was not made with,
    ``{name: (recorded, asked)}`` (empty: the record stands for the run asked for)."""
    recorded = TrainConfig.from_saved(read_record(path)["config"])
    return recorded.differences(cfg, ignore=_RECORD_IGNORED_FIELDS)


def _pick_engine(engine: str) -> str:
    if engine not in ("auto", "papermill", "python"):
        raise ConfigError(f"unknown engine {engine!r}; use auto, papermill or python")
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


def _retryable(exc: BaseException) -> bool:
    """False for an error in the run's settings or data (papermill reports its class name)."""
    names = {c.__name__ for c in type(exc).__mro__} | {getattr(exc, "ename", "")}
    return not names & set(NOT_RETRYABLE)


def check_batch(plan: BatchPlan) -> dict:
    """Check the settings of every run of ``plan`` before any starts: the methods, the
    TrainConfig of each (method, seed) with ``plan.overrides`` and the sweep with
    ``plan.eval_overrides``. Returns the checked evaluation overrides; raises one
    :class:`~shortcut_mini.ConfigError` naming every problem and its flag, so that a typo never
    costs a trained run."""
    from ..objectives import OBJECTIVES

    problems: dict[str, None] = {}  # ordered, without repeats
    unknown = [m for m in plan.methods if objective_of(plan.preset, m) not in OBJECTIVES]
    if unknown:
        rows = [m for m in get_preset(plan.preset)["methods"] if m not in OBJECTIVES]
        valid = sorted(OBJECTIVES) + rows
        problems[f"--methods: unknown method(s) {unknown}; valid: {valid}"] = None
    negative = sorted({s for seeds in plan.seeds.values() for s in seeds if s < 0})
    if negative:
        problems[f"--seeds: seeds are integers >= 0 (they seed the runs), got {negative}"] = None
    checked, base_steps = {}, set()
    runs = plan.runs
    for method, seed in runs:
        if method in unknown or seed in negative:
            continue
        try:
            cfg = run_config(plan.preset, method, seed, None, plan.run_overrides(method, seed))
            base_steps.add(cfg.M)
        except ConfigError as e:
            problems[f"{_flag_of(e, plan)}: {e}"] = None
        problem = _teacher_problem(plan, method, seed, runs)
        if problem:
            problems[problem] = None
    problem = _settings_problem(plan)
    if problem:
        problems[problem] = None
    for M in sorted(base_steps) or [get_preset(plan.preset)["config"].get("M", 128)]:
        try:
            ev = eval_settings(plan.preset, plan.eval_overrides, M=M)
            checked = {k: ev[k] for k in plan.eval_overrides}
        except ConfigError as e:
            problems[f"--eval-set: {e}"] = None
    if problems:
        raise ConfigError(
            f"reproduce {plan.preset}: nothing was run; fix these settings and run again: "
            + "; ".join(problems)
        )
    return checked


def _settings_problem(plan: BatchPlan) -> str | None:
    """A method setting of ``--set`` that no method of the batch has (it would reach no run)."""
    from ..objectives import OBJECTIVES

    _, given = method_settings_overrides(plan.overrides)
    objectives = {objective_of(plan.preset, m) for m in plan.methods}
    have = {n for m in objectives if m in OBJECTIVES for n in OBJECTIVES[m].settings.names()}
    missing = sorted(set(given) - have)
    if not missing:
        return None
    owners = {n: [m for m, c in OBJECTIVES.items() if n in c.settings.names()] for n in missing}
    return (
        f"--set method_args.{missing[0]}: no method of this batch ({sorted(objectives)}) has the "
        f"setting(s) {missing}"
        + "".join(f"; {n} is a setting of {owners[n]}" for n in missing if owners[n])
    )


def _flag_of(error: ConfigError, plan: BatchPlan) -> str:
    """The flag (or the preset) that set the field a config error names: ``--set`` for a field
    it gives, ``--seeds``, ``--methods``; else the preset's own settings."""
    found = re.search(r"TrainConfig\.(\w+)", str(error))
    field = found.group(1) if found else None
    if field == "method_args" and method_settings_overrides(plan.overrides)[1]:
        return "--set"
    if field is None or field in plan.overrides:
        return "--set"
    flags = {"seed": "--seeds", "method": "--methods", "out_dir": "--out"}
    return flags.get(field, f"the preset {plan.preset!r} (change it with --set {field}=...)")


def _teacher_problem(plan: BatchPlan, method: str, seed: int, runs) -> str | None:
    """Why the teacher of (method, seed) cannot be had: neither in the batch nor finished, or
    finished but without its training folder (the student starts from its weights). A finished
    student needs no teacher (publishing a batch run in parts on machines that are gone)."""
    from ..run_store import CHECKPOINT_NAME

    teacher = plan.teacher_of(method, seed)
    if teacher is None:
        return None
    own = run_paths(plan.out, method, seed, plan.nproc).record
    if is_finished(own, plan.preset, method, seed):
        return None  # the student is finished (it will be skipped): its teacher is not needed
    t_method, t_seed = teacher
    paths = run_paths(plan.out, t_method, t_seed, plan.nproc)
    finished = is_finished(paths.record, plan.preset, t_method, t_seed)
    if finished and not (paths.train_dir / CHECKPOINT_NAME).exists():
        return (
            f"{method} seed {seed} distils the batch's {t_method} seed {t_seed} run: its record "
            f"{paths.record.name} is there but not its training folder {paths.train_dir} "
            f"({CHECKPOINT_NAME}), whose weights the student starts from: copy that folder back "
            f"into the batch, or delete {paths.record.name} to train the teacher again"
        )
    if finished or teacher in runs:
        return None
    return (
        f"{method} seed {seed} distils the batch's {t_method} seed {t_seed} run ({paths.train_dir}, "
        f"record {paths.record.name}), which is neither finished nor in this batch: add "
        f"{t_method} (seed {t_seed}) to --methods/--seeds, or run it first (shortcut-mini "
        f"reproduce {plan.preset} --methods {t_method} --seeds {t_seed} --out {plan.out})"
    )


def _resolve(preset, methods, seeds, out, overrides, eval_overrides, **how) -> BatchPlan:
    spec = get_preset(preset)
    engine = how.pop("engine")
    methods = list(methods or spec["methods"])

    def seeds_of(method: str) -> list[int]:
        return [int(s) for s in seeds] if seeds is not None else method_seeds(spec, method)

    plan = BatchPlan(
        preset=preset,
        methods=methods,
        seeds={m: seeds_of(m) for m in methods},
        teacher_seeds=seeds_of(TEACHER_METHOD),
        out=Path(out or Path("runs") / "reproduce" / preset).resolve(),
        overrides=dict(overrides or {}),
        eval_overrides=dict(eval_overrides or {}),
        engine=_pick_engine(engine),
        **how,
    )
    plan.fell_back = engine == "auto" and plan.engine == "python"
    plan.nproc = check_nproc(plan.nproc)
    plan.eval_overrides = check_batch(plan)
    return plan


def _reporter(plan: BatchPlan, progress: bool, log):
    """The progress bar over runs and the per-run ``say``."""
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan.runs), desc=f"reproduce {plan.preset}", unit="run")
        return bar, log or tqdm.write
    return _NoBar(), log or print


def _seeds_line(plan: BatchPlan) -> str:
    """``METHODS x seeds 0, 1``, or per method where the seeds differ."""
    groups: dict[tuple, list[str]] = {}
    for m in plan.methods:
        groups.setdefault(tuple(plan.seeds[m]), []).append(m)
    return "; ".join(
        f"{', '.join(ms)} x seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}"
        for s, ms in groups.items()
    )


def _announce(plan: BatchPlan, say, dry_run: bool) -> None:
    say(
        f"reproduce {plan.preset}: {len(plan.runs)} run{'' if len(plan.runs) == 1 else 's'} ({_seeds_line(plan)}) in {plan.out} "
        f"[engine {plan.engine}"
        + (f", {plan.nproc} training processes per run]" if plan.nproc > 1 else "]")
    )
    if plan.fell_back and not dry_run:
        say("  note: papermill/ipykernel not installed: running in-process, no executed notebooks")


def _dry_run_line(plan: BatchPlan, method: str, seed: int, paths) -> str:
    cfg = run_config(plan.preset, method, seed, paths.train_dir, plan.run_overrides(method, seed))
    what = f"{cfg.data} {cfg.model} {cfg.steps:,} steps x {cfg.batch_size}"
    what += f" in {plan.nproc} processes" if plan.nproc > 1 else ""
    teacher = plan.teacher_of(method, seed)
    what += f"; teacher {teacher[0]} seed {teacher[1]}" if teacher else ""
    resumes = "; resumes a checkpoint" if (paths.train_dir / "checkpoint.pt").exists() else ""
    return f"would run ({what}{resumes})"


def _execute(plan: BatchPlan, method: str, seed: int, paths, say, tag: str) -> RunOutcome:
    """Run one (method, seed) to its record; a failure is reported, not raised."""
    say(f"{tag}: running")
    plan.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    params = dict(
        preset=plan.preset,
        method=method,
        seed=seed,
        out_dir=str(plan.out),
        overrides=plan.run_overrides(method, seed),
        eval_overrides=plan.eval_overrides,
        command=plan.command,
        nproc=plan.nproc,
    )
    try:
        if plan.engine == "papermill":
            _execute_papermill(params, paths.notebook, plan.kernel_name)
        else:
            run_one(**params)
        rec = read_record(paths.record)
    except Exception as e:  # one run's failure must not stop the batch
        secs, err = time.perf_counter() - t0, _short_error(e)
        if plan.engine == "python":
            err += "\n" + traceback.format_exc(limit=3)
        where = f" (see {paths.notebook})" if plan.engine == "papermill" else ""
        say(f"{tag}: FAILED after {secs:.0f} s: {err.splitlines()[0]}{where}")
        return RunOutcome(
            method, seed, "failed", secs, err, notebook=paths.notebook, retryable=_retryable(e)
        )
    secs = time.perf_counter() - t0
    ev = record_values(rec)
    brief = ", ".join(f"{s}: {ev[s]:.3g}" for s in sorted(ev) if s in (1, 4, 128))
    say(
        f"{tag}: done in {secs:.0f} s (training {rec['train_seconds']:.0f} s); "
        f"{rec['evaluation'][0]['distance']} by steps {{{brief}}}"
    )
    return RunOutcome(method, seed, "done", secs, record=paths.record, notebook=paths.notebook)


def _teacher_failed(plan: BatchPlan, method: str, seed: int, done: dict, tag: str, say):
    """The outcome of a run whose teacher failed in this batch (None if it did not)."""
    teacher = plan.teacher_of(method, seed)
    failed = done.get(teacher)
    if failed is None or failed.status != "failed":
        return None
    err = (
        f"not run: its teacher, {teacher[0]} seed {teacher[1]}, failed in this batch; fix that "
        "run, then run the command again (finished runs are skipped)"
    )
    say(f"{tag}: {err}")
    return RunOutcome(method, seed, "failed", error=err, retryable=failed.retryable)


def _one_run(plan: BatchPlan, i: int, run: tuple[str, int], dry_run: bool, say, done: dict):
    method, seed = run
    paths = run_paths(plan.out, method, seed, plan.nproc)
    tag = f"[{i}/{len(plan.runs)}] {method} seed {seed}"
    if is_finished(paths.record, plan.preset, method, seed):
        asked = run_config(plan.preset, method, seed, None, plan.run_overrides(method, seed))
        stale = stale_settings(paths.record, asked)
        if stale:
            what = ", ".join(f"{k}: {a!r} recorded, {b!r} asked" for k, (a, b) in stale.items())
            err = (
                f"its record {paths.record} was made with other settings ({what}); move the "
                "record (and its run folder) away, or give the batch another --out"
            )
            say(f"{tag}: not run: {err}")
            return RunOutcome(method, seed, "failed", error=err, retryable=False)
        say(f"{tag}: finished earlier, skipped ({paths.record.name})")
        return RunOutcome(method, seed, "skipped", record=paths.record, notebook=paths.notebook)
    blocked = _teacher_failed(plan, method, seed, done, tag, say)
    if blocked is not None:
        return blocked
    if dry_run:
        say(f"{tag}: {_dry_run_line(plan, method, seed, paths)}")
        return RunOutcome(method, seed, "planned")
    return _execute(plan, method, seed, paths, say, tag)


def _failure_note(result: BatchResult, n_runs: int) -> str:
    names = ", ".join(f"{o.method} seed {o.seed}" for o in result.failed)
    note = f"{len(result.failed)} of {n_runs} runs failed: {names}."
    if all(o.retryable for o in result.failed):
        return note + " Rerun the same command to retry them (finished runs are skipped)."
    return (
        note + " Fix what each error above names (a setting or the data), then run the command "
        "again (finished runs are skipped)."
    )


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

    Every run's settings are checked first (:func:`check_batch`): an invalid one raises
    :class:`~shortcut_mini.ConfigError` before anything trains.

    Args:
        methods, seeds: subsets (default: the preset's; ``seeds`` given applies to every
            method, else each method has the preset's seeds for it).
        out: the batch folder (default ``runs/reproduce/PRESET``).
        overrides: TrainConfig fields replacing the preset's for every run (values or text).
        eval_overrides: replace the sweep's ``n``, ``steps``, ``seeds`` or ``metric``.
        dry_run: list what would run, run nothing.
        engine: ``"papermill"`` (executed notebooks kept), ``"python"`` (in-process) or ``"auto"``.
        kernel_name: Jupyter kernel for papermill (default: the notebook's, ``python3``).
        command: the command line recorded in each record.
        log: a ``print``-like function for the per-run lines (default: ``tqdm.write``).
        nproc: training processes per run; above 1 each run trains under ``torchrun``.
    """
    how = dict(engine=engine, kernel_name=kernel_name, command=command, nproc=nproc)
    plan = _resolve(preset, methods, seeds, out, overrides, eval_overrides, **how)
    if not dry_run:  # before the first run: a batch folder it cannot write fails now
        check_output_folder(plan.out, "--out")
    result = BatchResult(preset=preset, out_dir=plan.out)
    bar, say = _reporter(plan, progress, log)
    _announce(plan, say, dry_run)
    done: dict[tuple[str, int], RunOutcome] = {}
    try:
        for i, run in enumerate(plan.runs, 1):
            done[run] = _one_run(plan, i, run, dry_run, say, done)
            result.outcomes.append(done[run])
            bar.update(1)
    finally:
        bar.close()
    if not dry_run and plan.out.exists():
        result.summary = write_summary(plan.out, preset)
        say(f"summary: {plan.out / 'summary.md'} ({len(result.summary.records)} records)")
    if result.failed:
        say(_failure_note(result, len(plan.runs)))
    return result


# ---- command line ------------------------------------------------------------------------------


def main_from_args(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    if args.list:
        from .presets import preset_table

        print(preset_table())
        return 0
    if not args.preset:
        raise ConfigError("name a preset (shortcut-mini reproduce --list shows them)")
    command = shlex.join(["shortcut-mini", *(argv if argv is not None else sys.argv[1:])])
    if args.publish and not args.dry_run:  # the publication's destinations, before any run
        check_output_folder(args.book_results, "--book-results")
        check_output_file(args.readme, "--readme")
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
