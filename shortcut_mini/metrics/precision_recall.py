"""Improved precision and recall of generated samples (Kynkaanniemi et al., NeurIPS 2019).

Each real feature vector ``r_i`` gets a ball whose radius is the distance to its ``k``-th nearest
*other* real vector (``k = 3`` in the paper); the union of the balls estimates the support of the
real distribution. Symmetrically for the generated vectors ``g_j``. Then

- **precision**: the fraction of generated vectors inside at least one real ball (fidelity);
- **recall**: the fraction of real vectors inside at least one generated ball (coverage).

FD mixes the two failure modes into one number; these separate them (e.g. a one-step sampler that
produces blurry averages tends to lose precision, a mode-dropping one loses recall).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["PrecisionRecall", "knn_radii", "precision_recall"]


class PrecisionRecall(NamedTuple):
    """Improved precision and recall, each in [0, 1]."""

    precision: float
    recall: float


def _as_2d(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"features must have shape [N, D], got {tuple(x.shape)}")
    return x.to(torch.float64)


def knn_radii(feats: torch.Tensor, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """Distance from each row of ``feats`` to its ``k``-th nearest other row, shape ``[N]``."""
    feats = _as_2d(feats)
    if not 1 <= k < feats.shape[0]:
        raise ValueError(f"need 1 <= k < N, got k={k} with N={feats.shape[0]}")
    radii = []
    for i in range(0, feats.shape[0], chunk):
        d = torch.cdist(feats[i : i + chunk], feats)
        # the k+1 smallest include the point itself (distance 0)
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def _coverage(
    points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int
) -> float:
    """Fraction of ``points`` inside at least one ball ``(centres, radii)``."""
    inside = 0
    for i in range(0, points.shape[0], chunk):
        d = torch.cdist(points[i : i + chunk], centres)
        inside += int((d <= radii[None, :]).any(dim=1).sum())
    return inside / points.shape[0]


def precision_recall(real, fake, k: int = 3, chunk: int = 1024) -> PrecisionRecall:
    """Improved precision and recall of ``fake`` features w.r.t. ``real`` features.

    Args:
        real, fake: feature sets ``[N, D]`` and ``[M, D]`` (e.g. Inception or classifier
            features; the paper uses equal sizes). Computed in float64, ``chunk`` rows at a time.
        k: neighbour index that sets each ball's radius.
    """
    real, fake = _as_2d(real), _as_2d(fake).to(torch.as_tensor(real).device)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimension mismatch: {tuple(real.shape)} vs {tuple(fake.shape)}")
    precision = _coverage(fake, real, knn_radii(real, k, chunk), chunk)
    recall = _coverage(real, fake, knn_radii(fake, k, chunk), chunk)
    return PrecisionRecall(precision, recall)
