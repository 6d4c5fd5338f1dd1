"""2D toy distributions used to visualise flow-matching and shortcut sampling.

Each sampler draws from its own ``torch.Generator`` (never the global RNG), so
``toy2d(name, n, seed)`` is a pure function of its arguments. Every distribution is scaled to
roughly unit standard deviation per axis, matching the ``N(0, I)`` noise ``x0`` of the paper's
interpolation ``x_t = (1 - t) x0 + t x1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Sampler = Callable[[int, torch.Generator], torch.Tensor]

CHECKERBOARD_CELL = 0.9
"""Side of one square of the checkerboard toy, in data units."""

CHECKERBOARD_SIZE = 4
"""Squares per side of the checkerboard toy: a 4x4 board centred on the origin, on
``[-1.8, 1.8]^2``; the filled ("black") squares are those ``(i, j)`` with ``i + j`` even, where
``i, j = floor(x / CHECKERBOARD_CELL + CHECKERBOARD_SIZE / 2)``."""


def _checkerboard(n: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform on the 8 "black" cells of a 4x4 board on [-1.8, 1.8]^2 (std ~1.04 per axis)."""
    size = CHECKERBOARD_SIZE
    cells = torch.tensor([(i, j) for i in range(size) for j in range(size) if (i + j) % 2 == 0])
    pick = torch.randint(len(cells), (n,), generator=gen)
    offset = torch.rand(n, 2, generator=gen)
    return (cells[pick].float() + offset - size / 2) * CHECKERBOARD_CELL


def _moons(n: int, gen: torch.Generator) -> torch.Tensor:
    """Two interleaving half circles with Gaussian jitter (sigma 0.05 before scaling)."""
    upper = torch.rand(n, generator=gen) < 0.5
    theta = torch.rand(n, generator=gen) * math.pi
    a = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    b = torch.stack([1.0 - torch.cos(theta), 0.5 - torch.sin(theta)], dim=1)
    pts = torch.where(upper[:, None], a, b) + 0.05 * torch.randn(n, 2, generator=gen)
    return (pts - torch.tensor([0.5, 0.25])) * torch.tensor([1.15, 2.0])


def _eight_gaussians(n: int, gen: torch.Generator) -> torch.Tensor:
    """Mixture of 8 isotropic Gaussians (sigma 0.1) evenly spaced on a circle of radius sqrt 2."""
    k = torch.randint(8, (n,), generator=gen).float()
    angle = k * (2 * math.pi / 8)
    centers = math.sqrt(2.0) * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centers + 0.1 * torch.randn(n, 2, generator=gen)


def _spirals(n: int, gen: torch.Generator) -> torch.Tensor:
    """Two interleaved Archimedean spirals (1.5 turns each) with small Gaussian jitter."""
    turn = torch.sqrt(torch.rand(n, generator=gen)) * 3 * math.pi
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    pts = sign[:, None] * torch.stack([-torch.cos(turn) * turn, torch.sin(turn) * turn], dim=1)
    pts = pts + 0.5 * torch.randn(n, 2, generator=gen)
    return pts / 4.5


TOY2D: dict[str, tuple[Sampler, str]] = {
    "checkerboard": (_checkerboard, "uniform on 8 squares of a 4x4 checkerboard"),
    "moons": (_moons, "two interleaving half-moons"),
    "8gaussians": (_eight_gaussians, "mixture of 8 Gaussians on a circle"),
    "spirals": (_spirals, "two interleaved spirals"),
}
"""Toy name -> (sampler, one-line description)."""


def toy2d(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """Draw ``n`` points of the 2D toy distribution ``name`` as ``float32 [n, 2]``.

    Deterministic: the same ``(name, n, seed)`` always gives the same tensor.
    """
    if name not in TOY2D:
        raise ValueError(f"unknown toy2d name={name!r}; valid names: {', '.join(TOY2D)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    return TOY2D[name][0](int(n), gen).to(torch.float32).contiguous()
