"""Training: the loop, EMA, checkpoints, devices and multi-GPU."""

from .checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from .ema import EMA, ema_decay_at
from .trainer import NonFiniteLossError, Run, RunExistsError, model_from_config, train

__all__ = [
    "EMA",
    "CheckpointError",
    "NonFiniteLossError",
    "Run",
    "RunExistsError",
    "ema_decay_at",
    "load_checkpoint",
    "load_weights",
    "model_from_config",
    "save_checkpoint",
    "train",
]
