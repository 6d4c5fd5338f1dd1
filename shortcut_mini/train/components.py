"""What a run is built from: its data, model, EMA, optimizer, loss scaler and objective."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..capability import uses_loss_scaling
from ..config import ConfigError, TrainConfig
from ..data import ArrayDataset, load_dataset
from ..objectives import ObjectiveContext, build_objective
from ..run_store import model_from_config
from .devices import autocast
from .distributed import DistInfo, barrier
from .ema import EMA

__all__ = [
    "Components",
    "build_components",
    "data_info_of",
    "load_training_data",
    "make_optimizer",
    "objective_context",
]


def load_training_data(
    cfg: TrainConfig, dataset: ArrayDataset | None, device: torch.device, info: DistInfo
) -> ArrayDataset:
    """``dataset`` if given, else ``cfg.data`` (VAE latents when ``cfg.latent_vae`` is set)."""
    if dataset is not None:
        return dataset
    if cfg.latent_vae is not None:  # images encoded once by the VAE, cached on disk
        from ..data.latents import load_latent_dataset

        return load_latent_dataset(
            cfg.data,
            cfg.latent_vae,
            root=cfg.data_root,
            image_size=cfg.image_size,
            n=cfg.n_data,
            seed=cfg.seed,
            device=device,
            is_main=info.is_main,
        )
    return load_dataset(
        cfg.data,
        root=cfg.data_root,
        train=True,
        image_size=cfg.image_size,
        n=cfg.n_data,
        seed=cfg.seed,
    )


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


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; the fused CUDA kernel when every parameter is on a GPU (one launch per step, and
    loss scaling without a host sync), PyTorch's default implementation elsewhere."""
    params = list(model.parameters())
    fused = {"fused": True} if params and all(p.is_cuda for p in params) else {}
    return torch.optim.AdamW(
        params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused
    )


@dataclass
class Components:
    model: nn.Module
    ema: EMA
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    objective: object


def build_components(
    cfg: TrainConfig, dinfo: dict, device: torch.device, precision: str
) -> Components:
    """The model (initialised from ``cfg.seed``), its EMA, the optimizer, scaler and objective."""
    torch.manual_seed(cfg.seed)
    model = model_from_config(cfg, dinfo).to(device)
    ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
    opt = make_optimizer(model, cfg)
    # fp16 trains with loss scaling (the rule: shortcut_mini.capability); disabled, it is a no-op
    scaler = torch.amp.GradScaler(device.type, enabled=uses_loss_scaling(precision))
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    objective = build_objective(
        cfg.method,
        M=cfg.M,
        total_steps=cfg.steps * world,  # in units of the trainer's step argument (steps x ranks)
        bootstrap_fraction=cfg.bootstrap_fraction,
        t_sampling=cfg.t_sampling,
        target_weights=cfg.target_weights,
        clip=cfg.clip,
        class_dropout=cfg.class_dropout if dinfo["num_classes"] else 0.0,
        num_classes=dinfo["num_classes"],
        guidance_scale=cfg.guidance_scale,
        teacher=cfg.teacher,
        **cfg.method_args,  # the settings of the method's own (its ``settings`` dataclass)
    )
    return Components(model, ema, opt, scaler, objective)


def objective_context(
    cfg: TrainConfig,
    run_dir,
    device: torch.device,
    precision: str,
    data: ArrayDataset,
    dinfo: dict,
    parts: Components,
    info: DistInfo,
    resumed: bool,
    compile=None,
) -> ObjectiveContext:
    """What every objective's ``setup`` is told (most objectives ignore it); ``compile``: the
    run's compile for the objective's own networks (None: they run eagerly)."""
    return ObjectiveContext(
        run_dir=run_dir,
        device=device,
        model=parts.model,
        ema_model=parts.ema.model,
        data=data,
        data_info=dinfo,
        total_steps=cfg.steps,
        config=cfg,
        seed=cfg.seed,
        resumed=resumed,
        rank=info.rank,
        world_size=info.world_size,
        barrier=lambda: barrier(info),
        autocast=lambda: autocast(device, precision),
        **({} if compile is None else {"compile": compile}),
    )
