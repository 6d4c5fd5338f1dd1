"""Training: the loop, EMA, checkpoints, the run folder, devices and multi-GPU."""

from ..run_store import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    model_from_config,
    save_checkpoint,
)
from .ema import EMA, ema_decay_at
from .interrupt import TrainingInterrupted
from .lock import RunLockedError
from .metrics_log import MetricsLogError, read_metrics_log
from .trainer import NonFiniteLossError, Run, RunExistsError, train

__all__ = [
    "EMA",
    "CheckpointError",
    "MetricsLogError",
    "NonFiniteLossError",
    "Run",
    "RunExistsError",
    "RunLockedError",
    "TrainingInterrupted",
    "ema_decay_at",
    "load_checkpoint",
    "load_weights",
    "model_from_config",
    "read_metrics_log",
    "save_checkpoint",
    "train",
]
