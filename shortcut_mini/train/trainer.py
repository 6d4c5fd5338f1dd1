"""The training loop. It knows the optimizer, EMA, precision, checkpoints and logging, and
nothing about which objective it runs: it calls ``objective.loss(...)`` and steps, and the
hooks every objective has (``objectives.lifecycle``: setup, on_step, state_dict).

Exact resume: the data order of step ``s`` comes from a permutation seeded by ``(seed, epoch)``
and the noise, t and levels of step ``s`` from a generator seeded by ``(seed, s, rank)``; so the
state needed to continue is the weights, the EMA, the optimizer, the loss scaler (fp16) and the
step, all checkpointed. Precision and compilation follow the device's capability
(``shortcut_mini.capability``): a compile the device cannot run is skipped with a warning.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..capability import compile_support
from ..config import ConfigError, TrainConfig, as_train_config
from ..data import ArrayDataset
from ..errors import UserError
from ..objectives.lifecycle import call_on_step, call_setup, training_network
from ..speed import (
    TRAINING_COMPILE_MODE,
    compile_for_training,
    mark_step_begin,
    uses_cudagraphs,
)
from .checkpointer import Checkpointer
from .components import (
    Components,
    build_components,
    data_info_of,
    load_training_data,
    objective_context,
)
from .devices import autocast, resolve_device, resolve_precision
from .distributed import DistInfo, any_rank_max, init_distributed, shutdown_distributed
from .interrupt import StopAtStepEnd, TrainingInterrupted
from .metrics_log import METRICS_NAME, MetricsLog
from .run_dir import RunDir, RunExistsError

__all__ = [
    "Run",
    "train",
    "NonFiniteLossError",
    "RunExistsError",
    "TrainingInterrupted",
    "data_info_of",
]


class NonFiniteLossError(UserError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Run:
    """A trained (or loaded) run: online model, EMA model, config and metrics history."""

    model: nn.Module
    ema: nn.Module
    config: TrainConfig
    history: list[dict] = field(default_factory=list)
    data_info: dict = field(default_factory=dict)
    step: int = 0
    out_dir: str | None = None
    train_seconds: float = 0.0
    budget: int | None = None
    """The one step budget these weights sample (a progressive-distillation stage's student,
    ``budget_runs.run_for_budget``); None: every budget the method samples."""
    compiled: dict = field(default_factory=dict, repr=False, compare=False)
    """Compiled forward passes for sampling, kept for the run's lifetime (``api.sample``)."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(
        np.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1
    )


class BatchOrder:
    """Global batch ``s``: rows ``s*B .. s*B+B-1`` of a per-epoch permutation seeded by the epoch.

    The permutation is drawn on the CPU (the same on every device) and kept on ``device``, so
    that picking a batch needs no host-to-device copy.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device | None = None):
        self.n, self.B, self.seed = n, batch_size, seed
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.per_epoch = max(1, n // batch_size)
        self._epoch, self._perm = -1, None
        self._offsets = torch.arange(batch_size, device=self.device)

    def indices(self, step: int) -> torch.Tensor:
        epoch, within = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            perm = torch.randperm(self.n, generator=gen)
            self._epoch, self._perm = epoch, perm.to(self.device)
        rows = (within * self.B + self._offsets) % self.n
        return self._perm[rows]


class FiniteGuard:
    """Notes on the device the first step whose loss is not finite; :meth:`check` stops there."""

    def __init__(self, info: DistInfo, device: torch.device, cfg: TrainConfig, precision: str):
        self.info, self.cfg, self.precision = info, cfg, precision
        self.first_bad = torch.full((), -1, device=device, dtype=torch.long)

    def record(self, loss: torch.Tensor, step: int) -> None:
        finite = torch.isfinite(loss.detach())
        self.first_bad = torch.where(~finite & (self.first_bad < 0), step, self.first_bad)

    def check(self) -> None:
        # Collective under DDP: every rank stops at the same step, none waits in an all-reduce.
        bad = int(any_rank_max(self.info, self.first_bad))
        if bad < 0:
            return
        out = self.cfg.out_dir
        kept = f"is kept in {out}" if out else "is not kept (no out_dir)"
        fixes = ["a lower lr"] + ["precision='fp32'"] * (self.precision != "fp32")
        raise NonFiniteLossError(
            f"non-finite loss at step {bad + 1} (lr={self.cfg.lr}, precision={self.precision}); "
            f"training stopped. The last good checkpoint (if any) {kept}. Try "
            f"{', '.join(fixes)}, or check the data for NaNs."
        )


def train(cfg: TrainConfig, *, dataset: ArrayDataset | None = None) -> Run:
    """Train ``cfg.method`` on ``cfg.data`` and return the :class:`Run`.

    ``cfg`` is a :class:`TrainConfig`, a dict of its fields, or the path of a YAML or JSON
    config file. Into an existing ``out_dir`` it resumes exactly when the config matches,
    refuses when it does not, and returns the run unchanged if it already has ``cfg.steps``
    steps or more; with ``overwrite`` it starts afresh (the old run, with the pictures and tables
    the package's commands wrote into it, is set aside until the new run's first checkpoint,
    then deleted; see ``train.run_dir``). One process at a time trains into an ``out_dir``:
    another is refused with :class:`RunLockedError`. Ctrl-C (or SIGTERM) finishes the step,
    saves a checkpoint and raises :class:`TrainingInterrupted`, whose message says how to
    resume. ``dataset`` replaces loading ``cfg.data`` (the name is still recorded).
    """
    cfg = as_train_config(cfg)
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, dataset, info)
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            "training interrupted before its first step; nothing was trained. Rerun the same "
            "command to start (or resume) it."
        ) from None
    finally:
        shutdown_distributed(info)


def _device_and_precision(cfg: TrainConfig, info: DistInfo) -> tuple[torch.device, str]:
    device = resolve_device(cfg.device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    if cfg.batch_size % info.world_size:
        raise ConfigError(
            f"TrainConfig.batch_size: {cfg.batch_size} is not divisible by the {info.world_size} "
            "processes; the global batch is split evenly over them."
        )
    return device, resolve_precision(cfg.precision, device)


def _train(cfg: TrainConfig, dataset: ArrayDataset | None, info: DistInfo) -> Run:
    device, precision = _device_and_precision(cfg, info)
    folder = RunDir(cfg, info)
    resume = folder.open()
    try:
        data = load_training_data(cfg, dataset, device, info).to(device)
        dinfo = data_info_of(data, cfg)
        parts = build_components(cfg, dinfo, device, precision)
        plan = compile_plan(cfg, device, precision)
        context = objective_context(
            cfg,
            folder.path,
            device,
            precision,
            data,
            dinfo,
            parts,
            info,
            resume is not None,
            compile=(lambda module: compile_for_training(module, plan[1])) if plan[0] else None,
        )
        call_setup(parts.objective, context)  # teachers, pairs: before a restore
        ckpt = Checkpointer(folder.path, parts, cfg, dinfo, precision, writes=info.is_main)
        start, seconds = (0, 0.0) if resume is None else ckpt.restore(resume)
        history = folder.start(start)  # only now is an old run replaced
        if resume is not None and info.is_main:
            print(_resume_line(cfg, start), file=sys.stderr, flush=True)
        log_path = folder.path / METRICS_NAME if folder.path and info.is_main else None
        loop = _Loop(cfg, info, device, precision, data, dinfo, parts, ckpt, plan)
        with MetricsLog(log_path, history, info, cfg.batch_size) as log:
            seconds = loop.run(log, start, seconds)
    finally:
        folder.close()
    parts.model.eval()
    return Run(
        model=parts.model,
        ema=parts.ema.model,
        config=cfg if cfg.steps >= start else cfg.replace(steps=start),
        history=history,
        data_info=dinfo,
        step=max(start, cfg.steps),
        out_dir=cfg.out_dir,
        train_seconds=seconds,
    )


def _resume_line(cfg: TrainConfig, start: int) -> str:
    if start >= cfg.steps:
        return (
            f"{cfg.out_dir} already holds {start} steps (asked for steps={cfg.steps}): nothing "
            "to train; the run is returned as it is"
        )
    return f"resuming the run in {cfg.out_dir} from step {start} to step {cfg.steps}"


def _progress_bar(cfg: TrainConfig, info: DistInfo, start: int):
    if not (cfg.progress and info.is_main and start < cfg.steps):
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=cfg.steps,
        initial=start,
        desc=f"{cfg.method} on {cfg.data}",
        mininterval=1.0,
        dynamic_ncols=True,
    )


def compile_plan(cfg: TrainConfig, device: torch.device, precision: str) -> tuple[bool, str]:
    """``(compile, mode)`` of a run: ``cfg.compile`` and ``cfg.compile_mode`` where the device
    can run them (:func:`shortcut_mini.capability.compile_support`); else eager, or inductor's
    default mode instead of CUDA graphs, each with a ``UserWarning`` that says why."""
    mode = cfg.compile_mode or TRAINING_COMPILE_MODE
    if not cfg.compile:
        return False, mode
    support = compile_support(device, precision)
    if not support.compile:
        warnings.warn(
            f"TrainConfig.compile: not compiling ({support.reason}); the run trains eagerly",
            stacklevel=3,
        )
        return False, mode
    if uses_cudagraphs(mode) and not support.cudagraphs:
        warnings.warn(
            f"TrainConfig.compile_mode: {mode!r} uses CUDA graphs, not used here "
            f"({support.reason}); compiling with inductor's default mode",
            stacklevel=3,
        )
        return True, "default"
    return True, mode


class _Loop:
    """The optimizer steps from ``start`` to ``cfg.steps``, with logging and checkpoints."""

    def __init__(
        self,
        cfg: TrainConfig,
        info: DistInfo,
        device: torch.device,
        precision: str,
        data: ArrayDataset,
        dinfo: dict,
        parts: Components,
        ckpt: Checkpointer,
        plan: tuple[bool, str] | None = None,
    ):
        self.cfg, self.info, self.device, self.precision = cfg, info, device, precision
        self.data, self.dinfo, self.parts, self.ckpt = data, dinfo, parts, ckpt
        self.order = BatchOrder(len(data), cfg.batch_size, cfg.seed, device=data.x.device)
        self.local_b = cfg.batch_size // info.world_size
        self.gen = torch.Generator(device)
        self.guard = FiniteGuard(info, device, cfg, precision)
        # what ``cfg.compile`` means: torch.compile(mode=..., **options), see shortcut_mini.speed
        self.compiles, self.compile_mode = plan or compile_plan(cfg, device, precision)
        self.compile_options: dict = {}

    def network(self) -> nn.Module:
        """What every step calls: the objective's training network (the model itself for most
        objectives), compiled if asked, in DDP under several processes."""
        net: nn.Module = training_network(self.parts.objective, self.parts.model)
        if self.compiles:
            net = compile_for_training(net, self.compile_mode, **self.compile_options)
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        return net

    def step(self, net: nn.Module, step: int) -> tuple[dict, float]:
        """One optimizer step; returns the objective's diagnostics and the EMA decay used."""
        cfg, info, p = self.cfg, self.info, self.parts
        if self.compiles:
            mark_step_begin(self.compile_mode)  # CUDA graphs: this step's outputs are new
        idx = self.order.indices(step)[info.rank * self.local_b : (info.rank + 1) * self.local_b]
        x1, y = self.data.batch(idx, self.device)
        y = y if self.dinfo["num_classes"] else None
        call_on_step(p.objective, step, cfg.steps)
        self.gen.manual_seed(step_seed(cfg.seed, step, info.rank))
        with autocast(self.device, self.precision):
            # Rank r's rows are rows r*B/W.. of the global batch: with this index, the level
            # rotation (``allocate_levels``) is the one-process allocation of the global batch.
            result = p.objective.loss(
                net,
                x1,
                y,
                generator=self.gen,
                step=step * info.world_size + info.rank,
                ema_model=p.ema.model,
            )
        p.opt.zero_grad(set_to_none=True)
        p.scaler.scale(result.loss).backward()
        self.guard.record(result.loss, step)
        if self.device.type == "cpu":  # free on the CPU; on a GPU it waits at log steps only
            self.guard.check()
        p.scaler.step(p.opt)
        p.scaler.update()
        return result.diagnostics, p.ema.update(p.model, step)

    def run(self, log: MetricsLog, start: int, seconds: float) -> float:
        """Train from ``start``; return the training seconds (``seconds`` before ``start``)."""
        cfg, net, bar = self.cfg, self.network(), _progress_bar(self.cfg, self.info, start)
        self.parts.model.train()
        t0 = time.perf_counter()
        log.start_window(start)
        with StopAtStepEnd(enabled=not self.info.enabled) as stop:
            try:
                for step in range(start, cfg.steps):
                    diagnostics, beta = self.step(net, step)
                    log.add(diagnostics)
                    done = step + 1
                    is_log = cfg.log_every and (done % cfg.log_every == 0 or done == cfg.steps)
                    is_ckpt = done == cfg.steps or (cfg.ckpt_every and done % cfg.ckpt_every == 0)
                    if is_log or is_ckpt or stop.requested:
                        self.guard.check()
                    if is_log:
                        row = log.log(done, beta, seconds + time.perf_counter() - t0)
                        if bar is not None and "loss" in row:
                            bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
                    if bar is not None:
                        bar.update(1)
                    if is_ckpt or stop.requested:
                        seconds, t0 = seconds + time.perf_counter() - t0, time.perf_counter()
                        self.ckpt.save(done, seconds)
                    if stop.requested:
                        raise TrainingInterrupted(self._stopped_message(done), self.ckpt.last_saved)
            except TrainingInterrupted:
                raise
            except KeyboardInterrupt:
                raise TrainingInterrupted(self._kept_message(), self.ckpt.last_saved) from None
            finally:
                if bar is not None:
                    bar.close()
        if cfg.steps > start:
            seconds += time.perf_counter() - t0
        return seconds

    def _stopped_message(self, done: int) -> str:
        head = f"training interrupted at step {done} of {self.cfg.steps}"
        if self.ckpt.out is None:
            return f"{head}; nothing was saved (no out_dir). Set out_dir to make a run resumable."
        return (
            f"{head}; saved a checkpoint of step {done} in {self.ckpt.out}. Resume with the "
            "same command (in Python: train() with the same config and out_dir)."
        )

    def _kept_message(self) -> str:
        last, out = self.ckpt.last_saved, self.ckpt.out
        if out is None:
            return "training interrupted; nothing was saved (no out_dir)."
        if last is None:
            return (
                f"training interrupted before its first checkpoint in {out}; rerunning the same "
                "command starts it afresh."
            )
        return (
            f"training interrupted; the last checkpoint (step {last}) in {out} is kept. Resume "
            "from it with the same command (in Python: train() with the same config and out_dir)."
        )
