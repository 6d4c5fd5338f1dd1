"""Exponential moving average of the weights, with a warm-up so that short runs sample well."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA", "ema_decay_at"]


def ema_decay_at(step: int, decay: float, warmup: bool = True) -> float:
    """Decay used at optimizer step ``step`` (0-based): ``min(decay, (1 + step) / (10 + step))``."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


class EMA:
    """``ema <- beta * ema + (1 - beta) * theta`` after every optimizer step; buffers are copied."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        self.decay, self.warmup = decay, warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> float:
        beta = ema_decay_at(step, self.decay, self.warmup)
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - beta)
        buffers = list(self.model.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(model.buffers()))
        return beta

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
