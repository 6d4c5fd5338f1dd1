"""shortcut-mini: shortcut models (Frans et al., ICLR 2025) in small, tested PyTorch.

Public API::

    from shortcut_mini import TrainConfig, train, sample, load_run
    run = train(TrainConfig(data="checkerboard", method="shortcut", steps=2000))
    x = sample(run, n=1000, steps=1)
    table = evaluate(run, steps=(1, 2, 4, 128))
"""

from .api import load_run, sample
from .config import ConfigError, TrainConfig, names
from .evaluate import EvalTable, evaluate
from .train import NonFiniteLossError, Run, RunExistsError, train

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "EvalTable",
    "NonFiniteLossError",
    "Run",
    "RunExistsError",
    "TrainConfig",
    "evaluate",
    "load_run",
    "names",
    "sample",
    "train",
]
