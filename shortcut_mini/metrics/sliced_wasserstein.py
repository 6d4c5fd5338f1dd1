"""Sliced Wasserstein-2 distance between two point sets (the book's metric for 2D data).

For a unit direction ``u`` the 1D Wasserstein-2 distance between the projections ``u.x`` and
``u.y`` of two equal-sized samples is the root mean squared difference of the *sorted*
projections. The sliced distance averages the squared 1D distances over random directions:

    ``SW2(x, y) = sqrt( mean_u mean_i (sort(x u)_i - sort(y u)_i)^2 )``

This is the protocol of :ref:`the book's design notes <design-evaluation>`: 4,096 samples against 4,096 held-out data points, 512
random unit directions drawn from a seeded generator, the root taken at the end (a distance in the
data's units, not squared). Shifting a set by a vector ``c`` gives ``sqrt(mean_u (u.c)^2)``, which
tends to ``|c| / sqrt(D)`` for many directions in ``D`` dimensions.
"""

from __future__ import annotations

import torch

__all__ = ["random_directions", "sliced_wasserstein"]


def random_directions(n_directions: int, dim: int, seed: int = 0) -> torch.Tensor:
    """``n_directions`` unit vectors in ``R^dim``, uniform on the sphere, float64 on the CPU.

    Drawn from a ``torch.Generator`` seeded with ``seed``, so the same seed gives the same
    directions on every machine and device.
    """
    if n_directions < 1 or dim < 1:
        raise ValueError(f"need n_directions >= 1 and dim >= 1, got {n_directions}, {dim}")
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n_directions, dim, generator=gen, dtype=torch.float64)
    return u / u.norm(dim=1, keepdim=True)


def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, n_directions: int = 512, seed: int = 0
) -> float:
    """Sliced Wasserstein-2 distance (not squared) between samples ``x`` and ``y``.

    Args:
        x, y: point sets of shape ``[N, D]`` with the same ``N`` and ``D`` (images may be passed
            as ``[N, ...]``; they are flattened).
        n_directions: number of random unit projection directions.
        seed: seed of the directions; keep it fixed to compare numbers across runs.

    Returns:
        ``sqrt`` of the mean, over all directions and points, of the squared difference of the
        sorted projections, computed in float64.
    """
    x = torch.as_tensor(x).reshape(len(x), -1).to(torch.float64)
    y = torch.as_tensor(y).reshape(len(y), -1).to(torch.float64)
    if x.shape != y.shape:
        raise ValueError(
            f"sliced_wasserstein needs equal-sized samples of one dimension, got {tuple(x.shape)} "
            f"and {tuple(y.shape)}; draw as many samples as held-out points (e.g. 4096 each)"
        )
    if x.shape[0] == 0:
        raise ValueError("sliced_wasserstein needs at least one point")
    dirs = random_directions(n_directions, x.shape[1], seed).to(x.device)
    y = y.to(x.device)
    px = torch.sort(dirs @ x.T, dim=1).values  # [n_directions, N]: sort along contiguous rows
    py = torch.sort(dirs @ y.T, dim=1).values
    return float(torch.sqrt(torch.mean((px - py) ** 2)))
