"""The run store: a run folder, its checkpoint format, and the networks rebuilt from its config.

A run folder holds the run's ``checkpoint.pt`` (:data:`CHECKPOINT_NAME`); a checkpoint is a dict
of plain data and tensors in one format (:data:`CHECKPOINT_FORMAT`), written atomically and
read with ``weights_only=True`` (reading never runs code). Every writer and reader of a run goes
through this module: the trainer's checkpoints, a progressive-distillation stage's student,
``shortcut_mini.load_run`` and the teacher of a two-stage method.

It knows no config class: a caller gives the config it read (``TrainConfig.from_dict``), and
the networks are built from that config's model fields (:func:`model_from_config`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .common import atomic_write
from .errors import UserError
from .models import build_model

__all__ = [
    "CheckpointError",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "load_checkpoint",
    "load_weights",
    "model_from_config",
    "network_from_state",
    "run_folder",
    "run_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "shortcut-mini/checkpoint-v1"
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts only) to ``path`` atomically."""
    atomic_write(path, lambda f: torch.save({"format": CHECKPOINT_FORMAT, **state}, f))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read the checkpoint at ``path`` (a file, or a run folder); a :class:`CheckpointError`
    names the file and the way out when it is missing, corrupt or of another format."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
        if not path.exists():
            raise CheckpointError(
                f"no checkpoint in {path.parent}: it holds no trained run (train one into it "
                "first, or give the folder of a trained run)"
            )
    elif not path.exists():
        what, folder = ("file", path.parent) if path.suffix else ("folder", path)
        raise CheckpointError(
            f"no checkpoint at {path}: there is no such {what}; check the path (was it deleted "
            f"or moved?), or train a run into {folder} first"
        )
    way_out = (
        f"To start this run afresh, delete the folder {path.parent} or train into it again "
        "with overwrite=True (CLI: --overwrite)."
    )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except IsADirectoryError as e:
        raise CheckpointError(f"{path} is a folder, not a checkpoint file. {way_out}") from e
    except OSError as e:  # it is there but cannot be read: not damage
        raise CheckpointError(
            f"cannot read checkpoint {path} ({e.strerror or e}); check its permissions"
        ) from e
    except Exception as e:  # corrupt file, or an object that is not plain data
        raise CheckpointError(
            f"could not read checkpoint {path}: it is truncated, corrupt or not plain data "
            f"({type(e).__name__}: {str(e)[:200]}). {way_out}"
        ) from e
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if found != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a shortcut-mini checkpoint (format {found!r}, expected "
            f"{CHECKPOINT_FORMAT!r}). {way_out}"
        )
    return state


def load_weights(model: nn.Module, state_dict: dict, what: str = "checkpoint") -> None:
    """Load a state dict, turning a shape or key mismatch into a clear :class:`CheckpointError`."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        detail = "; ".join(
            [f"missing keys {missing[:3]}"] * bool(missing)
            + [f"unexpected keys {unexpected[:3]}"] * bool(unexpected)
            + [f"shape mismatch {wrong[:3]}"] * bool(wrong)
        )
        raise CheckpointError(
            f"the {what} was saved from a different model than the one being loaded ({detail}). "
            "Build the model with the checkpoint's own config (shortcut_mini.load_run does)."
        )
    model.load_state_dict(state_dict)


def run_folder(path) -> Path:
    """The folder of a run given as its folder or as a checkpoint file in it."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def run_state(*, step: int, config, data_info: dict, model, ema, train_seconds: float) -> dict:
    """What every checkpoint holds, and every reader needs: the step, the config (as a dict),
    the data's description, the online and EMA weights, and the training time so far."""
    return {
        "step": step,
        "config": config.to_dict(),
        "data_info": data_info,
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "train_seconds": train_seconds,
    }


def model_from_config(cfg, data_info: dict) -> nn.Module:
    """A fresh network of the shape ``cfg`` names (``model``, ``M``, ``level_embedding``,
    ``model_overrides``) for the data ``data_info`` describes (its shape and classes)."""
    return build_model(
        cfg.model,
        sample_shape=tuple(data_info["shape"]),
        num_classes=data_info["num_classes"],
        M=cfg.M,
        level_embedding=cfg.level_embedding,
        **cfg.model_overrides,
    )


def network_from_state(cfg, state: dict, weights: str, device, frozen: bool = False) -> nn.Module:
    """The network of a checkpoint ``state`` (read by :func:`load_checkpoint`; ``cfg`` its config)
    with its ``weights`` (``"model"``: the online weights, ``"ema"``: the EMA's), on ``device``
    in eval mode; ``frozen``: without gradients. A mismatch is a :class:`CheckpointError`."""
    what = {"model": "checkpoint", "ema": "checkpoint's EMA weights"}[weights]
    network = model_from_config(cfg, state["data_info"])
    load_weights(network, state[weights], what=what)
    network.to(device).eval()
    return network.requires_grad_(False) if frozen else network
