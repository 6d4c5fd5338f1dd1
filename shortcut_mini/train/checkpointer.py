"""Saving and restoring everything an exact resume needs: the weights, the EMA, the optimizer,
the loss scaler, the torch RNG state, the step, the training time so far, and the objective's
own state (a teacher, a stage) when it has one (``objective.state_dict()``; checkpoints
without it, of objectives without state, load as before)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import TrainConfig
from ..run_store import CHECKPOINT_NAME, load_weights, run_state, save_checkpoint
from .components import Components
from .run_dir import discard_set_aside

__all__ = ["Checkpointer"]

# Implementation choices of the optimizer that belong to this machine, not to the checkpoint:
# a run checkpointed on a GPU (fused AdamW) resumes on a CPU with the CPU's implementation.
_OWN_OPTIMIZER_FLAGS = ("fused", "foreach", "capturable")


class Checkpointer:
    """Writes ``checkpoint.pt`` in ``out`` (``None``: never) when ``writes`` (rank 0 under DDP).

    ``last_saved`` is the step of the newest checkpoint in ``out`` (``None`` if there is none).
    """

    def __init__(
        self,
        out: Path | None,
        parts: Components,
        cfg: TrainConfig,
        dinfo: dict,
        precision: str,
        writes: bool = True,
    ):
        self.out, self.parts, self.cfg, self.dinfo = out, parts, cfg, dinfo
        self.precision, self.writes = precision, writes
        self.last_saved: int | None = None

    def restore(self, state: dict) -> tuple[int, float]:
        """Load ``state`` into the components; return ``(step, train_seconds)``."""
        p = self.parts
        load_weights(p.model, state["model"])
        p.ema.load_state_dict(state["ema"])
        own = [{k: g[k] for k in _OWN_OPTIMIZER_FLAGS if k in g} for g in p.opt.param_groups]
        p.opt.load_state_dict(state["optimizer"])
        for group, flags in zip(p.opt.param_groups, own):
            group.update(flags)
        if "scaler" in state:
            p.scaler.load_state_dict(state["scaler"])
        load_objective_state = getattr(p.objective, "load_state_dict", None)
        if load_objective_state is not None:
            load_objective_state(state.get("objective", {}))
        torch.set_rng_state(state["rng_torch"])
        self.last_saved = state["step"]
        return state["step"], state["train_seconds"]

    def save(self, step: int, train_seconds: float) -> None:
        if self.out is None:
            return
        if self.writes:
            save_checkpoint(self.out / CHECKPOINT_NAME, self._state(step, train_seconds))
            if self.last_saved is None:  # the first: a run that ``overwrite`` set aside goes
                discard_set_aside(self.out)
        self.last_saved = step

    def _state(self, step: int, train_seconds: float) -> dict:
        p = self.parts
        state = run_state(
            step=step,
            config=self.cfg,
            data_info=self.dinfo,
            model=p.model,
            ema=p.ema,
            train_seconds=train_seconds,
        )
        state["optimizer"] = p.opt.state_dict()
        state["rng_torch"] = torch.get_rng_state()
        state["precision"] = self.precision
        state["torch_version"] = str(torch.__version__)
        if p.scaler.is_enabled():
            state["scaler"] = p.scaler.state_dict()
        objective_state = getattr(p.objective, "state_dict", dict)()
        if objective_state:
            state["objective"] = objective_state
        return state
