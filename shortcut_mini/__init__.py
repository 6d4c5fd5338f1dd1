"""shortcut-mini: shortcut models (Frans et al., ICLR 2025) in small, tested PyTorch.

Public API::

    from shortcut_mini import TrainConfig, evaluate, load_run, sample, train
    run = train(TrainConfig(data="checkerboard", method="shortcut", steps=2000))
    x = sample(run, n=1000, steps=1)
    table = evaluate(run, steps=(1, 2, 4, 128))

A method of your own: an ``Objective`` subclass (``shortcut_mini.objectives.base``), its
settings a ``MethodSettings`` dataclass (``shortcut_mini.method_settings``), and one call,
``register_objective(MyObjective)``; ``TrainConfig(method=MyObjective.name)`` then trains it.

The names are imported on first use, so that ``shortcut-mini --help`` does not import torch.
"""

import importlib
import sys
import types

__version__ = "0.1.0"

_MODULE_OF = {
    "ConfigError": "config",
    "TrainConfig": "config",
    "names": "config",
    "load_run": "api",
    "sample": "api",
    "run_for_budget": "budget_runs",
    "EvalTable": "evaluate",
    "evaluate": "evaluate",
    "NonFiniteLossError": "train",
    "Run": "train",
    "RunExistsError": "train",
    "RunLockedError": "train",
    "TrainingInterrupted": "train",
    "train": "train",
    "register_objective": "objectives",
    "UserError": "errors",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``train`` and ``evaluate`` name both a submodule and the exported function: importing the
    submodule first must not hide the function."""

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if name in ("train", "evaluate") and isinstance(value, types.ModuleType):
            return getattr(value, name)
        return value


sys.modules[__name__].__class__ = _Package
