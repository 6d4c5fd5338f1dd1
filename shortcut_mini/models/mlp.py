"""A small velocity network for 2D data, with the same call signature as the DiT."""

from __future__ import annotations

import torch
from torch import nn

from ..levels import num_levels
from .embeddings import LabelEmbedder, LevelEmbedder, TimestepEmbedder, time_scale

__all__ = ["MLPVelocity"]


class ResidualBlock(nn.Module):
    """``h + MLP(norm(h) * (1 + scale) + shift)``, modulation from the conditioning vector."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.modulation = nn.Linear(width, 2 * width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c).chunk(2, dim=-1)
        return h + self.mlp(self.norm(h) * (1 + scale) + shift)


class MLPVelocity(nn.Module):
    """``s_theta(x_t, t, d)`` for points in R^dim: residual MLP modulated by t, level and label.

    ``level`` is the integer step-size level; with ``level_embedding="sin_d"`` or
    ``"sin_d_unit"`` it may instead be the step size ``d`` itself, a float tensor (MeanFlow's
    continuous step).
    """

    def __init__(
        self,
        dim: int = 2,
        width: int = 256,
        depth: int = 4,
        num_classes: int = 0,
        M: int = 128,
        level_embedding: str = "learned",
    ):
        super().__init__()
        self.dim, self.num_classes, self.M = dim, num_classes, M
        self.t_embed = TimestepEmbedder(width, scale=time_scale(level_embedding))
        self.level_embed = LevelEmbedder(width, num_levels(M), level_embedding)
        self.y_embed = LabelEmbedder(num_classes, width)
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, dim))

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, level: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        c = self.t_embed(t) + self.level_embed(level) + self.y_embed(y, x.shape[0], x.device)
        c = nn.functional.silu(c)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)
