"""A run read back from its folder: :func:`load_run`, and :func:`as_run` for the entry points
that take a run or its folder."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..config import TrainConfig
from ..run_store import load_checkpoint, network_from_state, run_folder
from .devices import resolve_device
from .metrics_log import METRICS_NAME, read_metrics_log
from .trainer import Run

__all__ = ["as_run", "load_run"]


def load_run(path: str | Path, device: str | torch.device = "cpu") -> Run:
    """Load a run folder (or its ``checkpoint.pt``) written by :func:`~shortcut_mini.train.train`.

    The model is rebuilt from the checkpoint's own config; loading never executes code
    (``torch.load(weights_only=True)``). ``device``: ``"cpu"`` (default), ``"auto"`` (a GPU
    when there is one), ``"cuda"``, ``"cuda:N"``; one this machine lacks is refused with a
    ``ConfigError`` that says so.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"load_run takes the path of a run folder (or of its checkpoint.pt), got "
            f"{type(path).__name__}"
        )
    if not isinstance(device, torch.device):
        device = resolve_device(device, setting="device")
    state = load_checkpoint(path)
    cfg = TrainConfig.from_saved(state["config"])
    model = network_from_state(cfg, state, "model", device)
    ema = network_from_state(cfg, state, "ema", device, frozen=True)
    out_dir = run_folder(path)
    history = read_metrics_log(out_dir / METRICS_NAME)
    return Run(
        model=model,
        ema=ema,
        config=cfg,
        history=history,
        data_info=state["data_info"],
        step=state["step"],
        out_dir=str(out_dir),
        train_seconds=state["train_seconds"],
    )


def as_run(run, what: str = "sample()") -> Run:
    """``run`` as a :class:`Run`: a ``Run`` itself, or the path of a run folder (loaded with
    :func:`load_run`); ``TypeError`` naming both forms otherwise."""
    if isinstance(run, Run):
        return run
    if isinstance(run, (str, os.PathLike)):
        return load_run(run)
    raise TypeError(
        f"{what} takes a Run (from train() or load_run()) or the path of a run folder, got "
        f"{type(run).__name__}"
    )
