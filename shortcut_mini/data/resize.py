"""Bilinear resizing of uint8 image stacks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_uint8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize ``uint8 [N, C, H, W]`` to ``[N, C, size, size]`` with bilinear interpolation.

    Anti-aliasing is applied when shrinking. Values are rounded and clamped back to 0..255.
    Work is done in chunks of ``chunk`` images so large datasets never need a full float copy.
    """
    if x.ndim != 4 or x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
    if size <= 0:
        raise ValueError(f"image_size must be positive, got {size}")
    if x.shape[-2:] == (size, size):
        return x
    shrink = size < max(x.shape[-2:])
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].float()
        part = F.interpolate(
            part, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
        )
        out[start : start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out
