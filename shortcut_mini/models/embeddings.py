"""Conditioning embeddings shared by the DiT and the 2D MLP.

The network ``s_theta(x_t, t, d)`` of the paper (Eq. 4) is conditioned on the time ``t`` and the
step size ``d``; class-conditional models also see a label ``y``, with one extra *null* label used
for classifier-free guidance (Ho & Salimans, 2022).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "sinusoidal_embedding",
    "TimestepEmbedder",
    "LevelEmbedder",
    "LabelEmbedder",
    "LEVEL_EMBEDDINGS",
    "time_scale",
]

LEVEL_EMBEDDINGS = ("learned", "sin_level", "sin_d", "sin_d_unit")
CONTINUOUS_EMBEDDINGS = ("sin_d", "sin_d_unit")
"""The embeddings that take the step size as a number (a float tensor ``d``)."""
DIT_TIME_SCALE = 1000.0


def time_scale(level_embedding: str) -> float:
    """The factor ``t`` (and a step size ``d``) is multiplied by before its sin-cos features.

    DiT's 1000 for every embedding but ``"sin_d_unit"``, whose network sees ``t`` and ``d`` as
    they are, in ``[0, 1]`` (MeanFlow's official networks, DiT and U-Net alike). MeanFlow's
    target contains the network's derivative in ``t`` and ``d``; through features of ``1000 t``
    that derivative carries factors up to 1000, and the target feeds on it.
    """
    return 1.0 if level_embedding == "sin_d_unit" else DIT_TIME_SCALE


def sinusoidal_embedding(x: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style sinusoidal features of a float tensor ``x`` of shape ``[B]``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half
    )
    args = x.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Embeds a scalar in ``[0, 1]`` (scaled by ``scale``, 1000 as in DiT) with sin-cos features
    and an MLP."""

    def __init__(self, hidden: int, freq_dim: int = 256, scale: float = DIT_TIME_SCALE):
        super().__init__()
        self.freq_dim, self.scale = freq_dim, scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t * self.scale, self.freq_dim))


class LevelEmbedder(nn.Module):
    """Embeds the step-size level ``l`` (step ``d = 2**-l``).

    ``kind="learned"`` (this project's default): a learned vector per level.
    ``kind="sin_level"``: the integer level through sin-cos features and an MLP (official code).
    ``kind="sin_d"``: the step size value ``d`` itself (times 1000, as ``t``) through sin-cos
    features and an MLP; it also takes ``d`` directly, as a float tensor (a continuous step size).
    ``kind="sin_d_unit"``: as ``"sin_d"``, with ``d`` and the network's ``t`` unscaled
    (:func:`time_scale`): MeanFlow's embedding, whose target differentiates the network in both.
    """

    def __init__(self, hidden: int, n_levels: int, kind: str = "learned"):
        super().__init__()
        if kind not in LEVEL_EMBEDDINGS:
            raise ValueError(f"level_embedding must be one of {LEVEL_EMBEDDINGS}, got {kind!r}")
        self.kind, self.n_levels = kind, n_levels
        if kind == "learned":
            self.table = nn.Embedding(n_levels, hidden)
            nn.init.normal_(self.table.weight, std=0.02)
        else:
            self.embed = TimestepEmbedder(
                hidden, scale=1.0 if kind == "sin_level" else time_scale(kind)
            )

    def forward(self, level: torch.Tensor) -> torch.Tensor:
        if level.is_floating_point():
            if self.kind not in CONTINUOUS_EMBEDDINGS:
                raise ValueError(
                    f"a continuous step size (a float tensor d) needs level_embedding='sin_d' "
                    f"or 'sin_d_unit', not {self.kind!r}: set TrainConfig.level_embedding"
                )
            return self.embed(level)
        if self.kind == "learned":
            return self.table(level)
        if self.kind == "sin_level":
            return self.embed(level.float())
        return self.embed(torch.exp2(-level.float()))


class LabelEmbedder(nn.Module):
    """Class-label table with one extra row, index ``num_classes``, for the null label."""

    def __init__(self, num_classes: int, hidden: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, hidden) if num_classes > 0 else None
        if self.table is not None:
            nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if self.table is None:
            return torch.zeros((), device=device)
        if y is None:
            y = torch.full((batch,), self.num_classes, device=device, dtype=torch.long)
        return self.table(y)
