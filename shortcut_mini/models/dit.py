"""A Diffusion Transformer (Peebles & Xie, 2023) conditioned on time, step size and class.

The whole model in one file, in the spirit of facebookresearch/DiT ``models.py``: patchify,
add a fixed 2D sin-cos position embedding, run ``depth`` transformer blocks whose LayerNorms are
modulated by the conditioning vector ``c = emb(t) + emb(level) + emb(y)`` (adaLN-Zero: the
modulation and the output layer start at zero, so every block starts as the identity), unpatchify.
This is the network ``s_theta(x_t, t, d)`` of the paper (Sec. 3, Eq. 4).

Attention runs through ``F.scaled_dot_product_attention``, which picks the fastest kernel (flash,
memory-efficient). Forward-mode AD (``torch.func.jvp``, MeanFlow's derivative) does not pass those
kernels; inside :func:`forward_ad_attention` attention runs through one that it passes.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from ..levels import num_levels
from .embeddings import LabelEmbedder, LevelEmbedder, TimestepEmbedder, time_scale

__all__ = [
    "ATTENTION_KERNELS",
    "DiT",
    "forward_ad_attention",
    "matmul_attention",
    "sincos_pos_embed_2d",
]

ATTENTION_KERNELS = ("math", "matmul")
"""Attention kernels that forward-mode AD passes (:func:`forward_ad_attention`): ``"math"``,
PyTorch's reference kernel of ``scaled_dot_product_attention``; ``"matmul"``,
:func:`matmul_attention` written out. Both compute the same function and run
equally fast compiled on an H200 (``benchmarks/speed.py``), but only ``"matmul"`` runs *eagerly*
on a GPU in bf16: there the math kernel's backward calls PyTorch's CUDA softmax backward with a
float gradient for a bf16 input, which it refuses ("expected input and grad types to match")."""


def sincos_pos_embed_2d(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2D sin-cos position embedding, shape ``[grid * grid, dim]`` (MAE / DiT)."""
    if dim % 4:
        raise ValueError(f"hidden size must be divisible by 4 for the 2D embedding, got {dim}")
    omega = 1.0 / 10_000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
    ys, xs = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64))
    parts = []
    for coord in (xs.T.reshape(-1), ys.T.reshape(-1)):  # row-major: index = row * grid + col
        args = np.outer(coord, omega)
        parts += [np.sin(args), np.cos(args)]
    return torch.from_numpy(np.concatenate(parts, axis=1)).float()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d_head)) v`` with two matmuls and a softmax (no fused kernel)."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    return scores.softmax(dim=-1) @ v


class _MatmulAttentionMode(TorchFunctionMode):
    """Routes every ``F.scaled_dot_product_attention(q, k, v)`` call to :func:`matmul_attention`."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            if len(args) != 3 or kwargs:
                raise NotImplementedError(
                    "matmul attention takes (q, k, v) only; use forward_ad_attention('math')"
                )
            return matmul_attention(*args)
        return func(*args, **kwargs)


@contextlib.contextmanager
def forward_ad_attention(kernel: str = "math"):
    """Inside this context attention runs through ``kernel`` (one of :data:`ATTENTION_KERNELS`),
    which forward-mode AD passes; the network and its weights are unchanged. It also holds while
    ``torch.compile`` traces the code inside it."""
    if kernel not in ATTENTION_KERNELS:
        raise ValueError(f"attention kernel must be one of {ATTENTION_KERNELS}, got {kernel!r}")
    context = sdpa_kernel(SDPBackend.MATH) if kernel == "math" else _MatmulAttentionMode()
    with context:
        yield


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention`` (scale 1/sqrt(d_head))."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h e) -> three b h n e", three=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(out, "b h n e -> b n (h e)"))


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero: shift, scale and gate for attention and MLP from ``c``."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden)
        )
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN(c).chunk(6, dim=-1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm, then a linear map from tokens back to patches."""

    def __init__(self, hidden: int, patch: int, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * channels)
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class DiT(nn.Module):
    """``s_theta(x, t, level, y) -> velocity`` for images ``[B, C, H, W]`` (H = W).

    ``level`` is the integer step-size level; with ``level_embedding="sin_d"`` or
    ``"sin_d_unit"`` it may instead be the step size ``d`` itself, a float tensor (MeanFlow's
    continuous step).
    """

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        patch: int = 2,
        hidden: int = 256,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        num_classes: int = 0,
        M: int = 128,
        level_embedding: str = "learned",
    ):
        super().__init__()
        if image_size % patch:
            raise ValueError(
                f"image_size {image_size} is not divisible by patch {patch}: resize the data "
                f"(image_size=...) or pick a model preset with another patch size."
            )
        self.image_size, self.channels, self.patch = image_size, channels, patch
        self.num_classes, self.M = num_classes, M
        self.grid = image_size // patch
        self.patch_embed = nn.Linear(patch * patch * channels, hidden)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(hidden, self.grid)[None])
        self.t_embed = TimestepEmbedder(hidden, scale=time_scale(level_embedding))
        self.level_embed = LevelEmbedder(hidden, num_levels(M), level_embedding)
        self.y_embed = LabelEmbedder(num_classes, hidden)
        self.blocks = nn.ModuleList(DiTBlock(hidden, heads, mlp_ratio) for _ in range(depth))
        self.final = FinalLayer(hidden, patch, channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier for linear layers; zero adaLN modulation and output layer (adaLN-Zero)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for emb in (self.t_embed, getattr(self.level_embed, "embed", None)):
            if emb is not None:
                for layer in (emb.mlp[0], emb.mlp[2]):
                    nn.init.normal_(layer.weight, std=0.02)
        for block in [*self.blocks, self.final]:
            nn.init.zeros_(block.adaLN[-1].weight)
            nn.init.zeros_(block.adaLN[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, (H/p)(W/p), p*p*C]``."""
        return rearrange(x, "b c (h p) (w q) -> b (h w) (p q c)", p=self.patch, q=self.patch)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, (H/p)(W/p), p*p*C] -> [B, C, H, W]``."""
        return rearrange(
            tokens, "b (h w) (p q c) -> b c (h p) (w q)", h=self.grid, p=self.patch, q=self.patch
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, level: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.shape[1:] != (self.channels, self.image_size, self.image_size):
            raise ValueError(
                f"DiT expects images of shape [B, {self.channels}, {self.image_size}, "
                f"{self.image_size}], got {list(x.shape)}"
            )
        h = self.patch_embed(self.patchify(x)) + self.pos_embed
        c = self.t_embed(t) + self.level_embed(level) + self.y_embed(y, x.shape[0], x.device)
        for block in self.blocks:
            h = block(h, c)
        return self.unpatchify(self.final(h, c))
