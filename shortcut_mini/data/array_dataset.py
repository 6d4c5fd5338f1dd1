"""In-memory dataset container shared by every data source.

Images are stored as ``uint8`` tensors ``[N, C, H, W]`` (grayscale has ``C = 1``) and are mapped
to floats in ``[-1, 1]`` only when a batch is drawn, which keeps even 60k-image datasets small
enough to live on the GPU. 2D toy points are stored as ``float32 [N, 2]`` and returned as-is;
VAE latents (kind ``"latent"``, see ``data.latents``) as float ``[N, C, H, W]``, returned as
float32 as-is.
In the paper's notation a batch is a draw of data samples ``x1`` (t = 1 is data, t = 0 noise).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class ArrayDataset:
    """A whole dataset held in memory.

    Attributes:
        x: ``uint8 [N, C, H, W]`` for images, ``float32 [N, 2]`` for points.
        y: ``long [N]`` class labels (zeros when unlabeled).
        num_classes: number of classes, ``0`` for unlabeled data and toys.
        kind: ``"image"``, ``"points"`` or ``"latent"`` (float ``[N, C, H, W]`` VAE latents).
        name: the name the dataset was loaded under.
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    kind: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in ("image", "points", "latent"):
            raise ValueError(f"kind must be 'image', 'points' or 'latent', got {self.kind!r}")
        if self.kind == "latent" and (not self.x.is_floating_point() or self.x.ndim != 4):
            raise ValueError(
                f"latent data must be float [N, C, H, W], got {self.x.dtype} {tuple(self.x.shape)}"
            )
        if self.kind == "image" and (self.x.dtype != torch.uint8 or self.x.ndim != 4):
            raise ValueError(
                f"image data must be uint8 [N, C, H, W], got {self.x.dtype} {tuple(self.x.shape)}"
            )
        if self.y.shape != (self.x.shape[0],):
            raise ValueError(f"y must have shape [{self.x.shape[0]}], got {tuple(self.y.shape)}")
        self.y = self.y.long()

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 28, 28)`` or ``(2,)``."""
        return tuple(self.x.shape[1:])

    def batch(
        self, indices: torch.Tensor | list[int], device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather examples ``indices`` and move them to ``device``.

        Returns ``(x, y)``: images as float in ``[-1, 1]`` (``uint8 / 127.5 - 1``), points as the
        stored float32 values; labels as ``long``. The uint8 gather and transfer happen before the
        float conversion, so host-to-device traffic stays at one byte per pixel.
        """
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.x.device)
        x = self.x[idx]
        y = self.y[idx.to(self.y.device)]
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if self.kind == "image":
            x = x.float().div_(127.5).sub_(1.0)
        elif self.kind == "latent":
            x = x.float()  # stored as float16 to halve the memory
        return x, y

    def to(self, device: torch.device | str) -> ArrayDataset:
        """A copy with ``x`` and ``y`` on ``device`` (e.g. keep a small dataset on the GPU)."""
        return replace(self, x=self.x.to(device), y=self.y.to(device))

    def subset(self, n: int, seed: int = 0) -> ArrayDataset:
        """A deterministic random subset of ``n`` examples (kept in source order)."""
        x, y = _subset(self.x, self.y, n, seed)
        return replace(self, x=x, y=y)


def _subset(
    x: torch.Tensor, y: torch.Tensor, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    total = x.shape[0]
    if n <= 0 or n > total:
        raise ValueError(f"n must be in 1..{total} (dataset size), got {n}")
    if n == total:
        return x, y
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(total, generator=gen)[:n].sort().values
    return x[idx.to(x.device)], y[idx.to(y.device)]
