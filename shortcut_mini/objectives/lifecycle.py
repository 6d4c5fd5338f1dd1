"""The hooks the trainer calls on every objective, and their no-op defaults.

Most objectives turn a batch into targets and need nothing else. The two-stage methods (a
teacher, per-stage teacher refreshes, generated pairs) need a little more, and the trainer
gives it to every objective alike, without knowing which one it runs:

- ``setup(context)``: once, after the model and its EMA are built and before a checkpoint
  is restored (:class:`ObjectiveContext` says where, on what, and whether the run resumes);
- ``on_step(step, total_steps)``: before every optimizer step ``step`` (0-based);
- ``state_dict()`` / ``load_state_dict(state)``: what the objective must keep for an exact
  resume, saved in the trainer's checkpoint (an empty dict: nothing);
- ``training_network(model)``: the module the trainer compiles, wraps in DDP and passes to
  ``loss`` (the model itself, unless the objective needs more from one call: MeanFlow's
  prediction and its derivative). It must share the model's parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

__all__ = [
    "ObjectiveContext",
    "ObjectiveHooks",
    "call_setup",
    "call_on_step",
    "training_network",
]


@dataclass
class ObjectiveContext:
    """What :meth:`ObjectiveHooks.setup` is told about the run.

    ``config`` is the run's ``TrainConfig``; ``model`` and ``ema_model`` are the student's online and EMA networks (restored in place on
    resume); ``data`` the training set; ``resumed`` whether a checkpoint will be restored after
    ``setup``; ``barrier`` waits for every process (a no-op in one process); ``autocast()``
    the trainer's mixed-precision context; ``compile(module)`` returns ``module`` compiled as
    the training network is (the module itself where the run does not compile), for a network
    of the objective's own that each step calls.
    """

    run_dir: Path | None
    device: Any
    model: nn.Module
    ema_model: nn.Module
    data: Any
    data_info: dict
    total_steps: int
    config: Any = None
    seed: int = 0
    resumed: bool = False
    rank: int = 0
    world_size: int = 1
    barrier: Callable[[], None] = field(default=lambda: None)
    autocast: Callable[[], Any] = field(default=contextlib.nullcontext)
    compile: Callable[[nn.Module], nn.Module] = field(default=lambda module: module)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class ObjectiveHooks:
    """No-op defaults for the trainer's hooks (flow matching and shortcut need none)."""

    def setup(self, context: ObjectiveContext) -> None:
        """Prepare what the objective needs before training (teachers, pairs)."""

    def on_step(self, step: int, total_steps: int) -> None:
        """Called before optimizer step ``step`` of ``total_steps``."""

    def state_dict(self) -> dict:
        """State an exact resume needs (plain data and tensors); empty: none."""
        return {}

    def training_network(self, model: nn.Module) -> nn.Module:
        """The module the trainer compiles and passes to ``loss``: the model itself."""
        return model

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(
                f"{type(self).__name__} keeps no state, but the checkpoint holds objective "
                f"state {sorted(state)}: it was saved by another method"
            )


def call_setup(objective, context: ObjectiveContext) -> None:
    """``objective.setup(context)`` if the objective has it (any object with ``loss`` trains)."""
    hook = getattr(objective, "setup", None)
    if hook is not None:
        hook(context)


def call_on_step(objective, step: int, total_steps: int) -> None:
    hook = getattr(objective, "on_step", None)
    if hook is not None:
        hook(step, total_steps)


def training_network(objective, model: nn.Module) -> nn.Module:
    """``objective.training_network(model)`` if the objective has it, else ``model``."""
    hook = getattr(objective, "training_network", None)
    return model if hook is None else hook(model)
