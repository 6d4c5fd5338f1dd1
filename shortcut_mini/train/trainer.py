"""The training loop. It knows the optimizer, EMA, precision, checkpoints and logging, and
nothing about which objective it runs: it calls ``objective.loss(...)`` and steps.

Exact resume: the data order of step ``s`` comes from a permutation seeded by ``(seed, epoch)``
and the noise, t and levels of step ``s`` from a generator seeded by ``(seed, s, rank)``; so the
state needed to continue is the weights, the EMA, the optimizer and the step, all checkpointed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common import atomic_write_bytes, atomic_write_json
from ..config import ConfigError, TrainConfig
from ..data import ArrayDataset, load_dataset
from ..models import build_model
from ..objectives import build_objective
from .checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from .devices import autocast, resolve_device, resolve_precision
from .distributed import (
    DistInfo,
    any_rank_max,
    barrier,
    gather_sums,
    init_distributed,
    shutdown_distributed,
)
from .ema import EMA

__all__ = ["Run", "train", "NonFiniteLossError", "RunExistsError", "model_from_config"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunExistsError(RuntimeError):
    """``out_dir`` holds a run with a different config."""


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

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def data_info_of(data: ArrayDataset, cfg: TrainConfig) -> dict:
    num_classes = data.num_classes if cfg.class_conditional else 0
    if cfg.class_conditional and data.num_classes == 0:
        raise ConfigError(
            f"TrainConfig.class_conditional: dataset {cfg.data!r} has no labels; "
            "set class_conditional=False"
        )
    return {
        "name": data.name,
        "kind": data.kind,
        "shape": list(data.shape),
        "num_classes": num_classes,
    }


def model_from_config(cfg: TrainConfig, data_info: dict) -> nn.Module:
    return build_model(
        cfg.model,
        sample_shape=tuple(data_info["shape"]),
        num_classes=data_info["num_classes"],
        M=cfg.M,
        level_embedding=cfg.level_embedding,
        **cfg.model_overrides,
    )


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(
        np.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1
    )


class BatchOrder:
    """Global batch ``s``: rows ``s*B .. s*B+B-1`` of a per-epoch permutation seeded by the epoch."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.B, self.seed = n, batch_size, seed
        self.per_epoch = max(1, n // batch_size)
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, within = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen)
        rows = (within * self.B + torch.arange(self.B)) % self.n
        return self._perm[rows]


def _prepare_out_dir(cfg: TrainConfig, info: DistInfo) -> dict | None:
    """Return the checkpoint to resume from, or None; refuse a run of another config."""
    if cfg.out_dir is None:
        return None
    out = Path(cfg.out_dir)
    ckpt = out / CHECKPOINT_NAME
    if not ckpt.exists():
        return None
    state = load_checkpoint(ckpt)
    saved = TrainConfig.from_dict(state["config"])
    diffs = cfg.differences(saved)
    if not diffs:
        return state
    if not cfg.overwrite:
        listing = "; ".join(f"{k}: saved {b!r}, now {a!r}" for k, (a, b) in diffs.items())
        raise RunExistsError(
            f"out_dir {out} holds a run with a different config ({listing}). Use another "
            "out_dir, or overwrite=True (CLI: --overwrite) to start afresh."
        )
    barrier(info)  # every rank has read the old checkpoint before rank 0 deletes it
    if info.is_main:
        for name in (CHECKPOINT_NAME, "metrics.jsonl", "config.json"):
            (out / name).unlink(missing_ok=True)
    return None


def _truncate_log(path: Path, last_step: int) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["step"] <= last_step]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())
    return rows


def train(cfg: TrainConfig, *, dataset: ArrayDataset | None = None) -> Run:
    """Train ``cfg.method`` on ``cfg.data`` and return the :class:`Run`.

    Into an existing ``out_dir`` it resumes exactly when the config matches, refuses when it does
    not (unless ``overwrite``), and returns at once if the run already has ``cfg.steps`` steps.
    ``dataset`` replaces loading ``cfg.data`` (the name is still recorded).
    """
    info = init_distributed(cfg.device)
    try:
        return _train(cfg, dataset, info)
    finally:
        shutdown_distributed(info)


def _train(cfg: TrainConfig, dataset: ArrayDataset | None, info: DistInfo) -> Run:
    device = resolve_device(cfg.device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    precision = resolve_precision(cfg.precision, device)
    if cfg.batch_size % info.world_size:
        raise ConfigError(
            f"TrainConfig.batch_size: {cfg.batch_size} is not divisible by the {info.world_size} "
            "processes; the global batch is split evenly over them."
        )
    resume = _prepare_out_dir(cfg, info)

    if dataset is not None:
        data = dataset
    elif cfg.latent_vae is not None:  # images encoded once by the VAE, cached on disk
        from ..data.latents import load_latent_dataset

        data = load_latent_dataset(
            cfg.data,
            cfg.latent_vae,
            root=cfg.data_root,
            image_size=cfg.image_size,
            n=cfg.n_data,
            seed=cfg.seed,
            device=device,
            is_main=info.is_main,
        )
    else:
        data = load_dataset(
            cfg.data,
            root=cfg.data_root,
            train=True,
            image_size=cfg.image_size,
            n=cfg.n_data,
            seed=cfg.seed,
        )
    dinfo = data_info_of(data, cfg)
    torch.manual_seed(cfg.seed)
    model = model_from_config(cfg, dinfo).to(device)
    ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    objective = build_objective(
        cfg.method,
        M=cfg.M,
        bootstrap_fraction=cfg.bootstrap_fraction,
        t_sampling=cfg.t_sampling,
        target_weights=cfg.target_weights,
        clip=cfg.clip,
        class_dropout=cfg.class_dropout if dinfo["num_classes"] else 0.0,
        num_classes=dinfo["num_classes"],
        guidance_scale=cfg.guidance_scale,
    )

    start, train_seconds, history = 0, 0.0, []
    out = Path(cfg.out_dir) if cfg.out_dir else None
    if resume is not None:
        load_weights(model, resume["model"])
        ema.load_state_dict(resume["ema"])
        opt.load_state_dict(resume["optimizer"])
        if "scaler" in resume:
            scaler.load_state_dict(resume["scaler"])
        torch.set_rng_state(resume["rng_torch"])
        start, train_seconds = resume["step"], resume["train_seconds"]
    if out is not None and info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", cfg.to_dict())
        history = _truncate_log(out / "metrics.jsonl", start)

    net: nn.Module = torch.compile(model) if cfg.compile else model
    if info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(net, device_ids=ids)

    def checkpoint(step: int) -> None:
        if out is None or not info.is_main:
            return
        state = {
            "step": step,
            "config": cfg.to_dict(),
            "data_info": dinfo,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": opt.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "train_seconds": train_seconds,
            "precision": precision,
            "torch_version": str(torch.__version__),
        }
        if scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        save_checkpoint(out / CHECKPOINT_NAME, state)

    data = data.to(device)
    order = BatchOrder(len(data), cfg.batch_size, cfg.seed)
    local_b = cfg.batch_size // info.world_size
    gen = torch.Generator(device)
    first_bad = torch.full((), -1, device=device, dtype=torch.long)
    log_file = open(out / "metrics.jsonl", "a") if out is not None and info.is_main else None  # noqa: SIM115
    bar = None
    if cfg.progress and info.is_main and start < cfg.steps:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=cfg.steps,
            initial=start,
            desc=f"{cfg.method} on {cfg.data}",
            mininterval=1.0,
            dynamic_ncols=True,
        )

    def check_finite(upto: int) -> None:
        # Collective under DDP: every rank stops at the same step, none waits in an all-reduce.
        bad = int(any_rank_max(info, first_bad))
        if bad >= 0:
            raise NonFiniteLossError(
                f"non-finite loss at step {bad + 1} (lr={cfg.lr}, precision={precision}); "
                f"training stopped. The last good checkpoint (if any) is kept in {out}. Try a "
                "lower lr, precision='fp32', or check the data for NaNs."
            )

    model.train()
    t0, window_t0, window_start = time.perf_counter(), time.perf_counter(), start
    diag_sum: dict[str, torch.Tensor] = {}
    try:
        for step in range(start, cfg.steps):
            idx = order.indices(step)[info.rank * local_b : (info.rank + 1) * local_b]
            x1, y = data.batch(idx.to(data.x.device), device)
            y = y if dinfo["num_classes"] else None
            gen.manual_seed(step_seed(cfg.seed, step, info.rank))
            with autocast(device, precision):
                # Rank r's rows are rows r*B/W.. of the global batch: with this index, the
                # level rotation (``allocate_levels``) is the one-process allocation of the
                # global batch.
                result = objective.loss(
                    net,
                    x1,
                    y,
                    generator=gen,
                    step=step * info.world_size + info.rank,
                    ema_model=ema.model,
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(result.loss).backward()
            finite = torch.isfinite(result.loss.detach())
            first_bad = torch.where(~finite & (first_bad < 0), step, first_bad)
            if device.type == "cpu":
                check_finite(step)
            scaler.step(opt)
            scaler.update()
            beta = ema.update(model, step)
            for k, v in result.diagnostics.items():
                s, c = diag_sum.get(k, (0.0, 0))
                diag_sum[k] = (s + v.float(), c + 1)
            done = step + 1
            is_log = cfg.log_every and (done % cfg.log_every == 0 or done == cfg.steps)
            is_ckpt = done == cfg.steps or (cfg.ckpt_every and done % cfg.ckpt_every == 0)
            if is_log or is_ckpt:
                check_finite(step)
            if is_log:
                now = time.perf_counter()
                diag = gather_sums(info, {k: (float(s), c) for k, (s, c) in diag_sum.items()})
                row = {
                    "step": done,
                    "ema_decay": beta,
                    **{k: s / c for k, (s, c) in diag.items()},  # mean over steps and ranks
                    "img_per_s": (done - window_start) * cfg.batch_size / (now - window_t0),
                    "wall_s": train_seconds + now - t0,
                }
                diag_sum, window_t0, window_start = {}, now, done
                history.append(row)
                if log_file is not None:
                    log_file.write(json.dumps(row) + "\n")
                    log_file.flush()
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
            if bar is not None:
                bar.update(1)
            if is_ckpt:
                train_seconds_now = train_seconds + time.perf_counter() - t0
                train_seconds, t0 = train_seconds_now, time.perf_counter()
                checkpoint(done)
    finally:
        if bar is not None:
            bar.close()
        if log_file is not None:
            log_file.close()
    if cfg.steps > start:
        train_seconds += time.perf_counter() - t0
    step = max(start, cfg.steps)
    model.eval()
    return Run(
        model=model,
        ema=ema.model,
        config=cfg,
        history=history,
        data_info=dinfo,
        step=step,
        out_dir=cfg.out_dir,
        train_seconds=train_seconds,
    )
