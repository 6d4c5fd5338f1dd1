"""Frechet distance between two Gaussians fitted to feature sets.

The Frechet (Wasserstein-2) distance between ``N(mu1, S1)`` and ``N(mu2, S2)`` is

    ``FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``

(Dowson and Landau 1982). With Inception-v3 pool features it is the FID of Heusel et al. (2017),
the metric of the paper's Table 1; with the features of this package's small classifier it is what
the book reports as "FD (classifier)".

Everything here runs in float64 on the CPU (numpy / scipy). :class:`FeatureStats` accumulates the
mean and covariance of features batch by batch, so that statistics of 50k samples never need all
features in memory at once; streaming and one-shot statistics agree to rounding.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg

__all__ = ["FeatureStats", "frechet_distance", "frechet_distance_from_features"]


def _as_features(features) -> np.ndarray:
    """Return ``features`` ([B, D] torch tensor or array-like) as a float64 numpy array."""
    if hasattr(features, "detach"):  # torch.Tensor without importing torch here
        features = features.detach().to("cpu").double().numpy()
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"features must have shape [batch, dim], got shape {arr.shape}")
    return arr


def _sqrtm_trace(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    """Return ``tr((sigma1 @ sigma2)^(1/2))``, robust to (near-)singular covariances.

    As in pytorch-fid, the matrix square root is taken with ``scipy.linalg.sqrtm``; if it fails
    (non-finite entries) or is inaccurate, ``eps * I`` is added to both covariances and it is taken
    again. Tiny imaginary parts (rounding) are dropped; a large one means the inputs are not
    covariance matrices and raises ``ValueError``.
    """
    product = sigma1 @ sigma2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on singular input; checked below instead
        covmean = scipy.linalg.sqrtm(product)
    scale = max(float(np.abs(product).max()), 1e-300)
    residual = np.abs(covmean @ covmean - product).max() if np.isfinite(covmean).all() else np.inf
    if not residual <= 1e-3 * scale:  # non-finite or grossly wrong
        offset = np.eye(sigma1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.isfinite(covmean).all():
            raise ValueError("matrix square root of sigma1 @ sigma2 is not finite, even with eps*I")
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3 * max(1.0, np.abs(np.diagonal(covmean).real).max()):
            raise ValueError(
                f"matrix square root has a large imaginary component ({imag:.3g}); "
                "are sigma1 and sigma2 symmetric positive semi-definite?"
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``, in float64.

    Args:
        mu1, mu2: means, shape ``[D]``.
        sigma1, sigma2: covariances, shape ``[D, D]`` (symmetric positive semi-definite).
        eps: diagonal offset used only when the square root of ``sigma1 @ sigma2`` fails.

    Returns:
        The (squared-units) distance ``||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``,
        clipped at 0 against rounding.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"means must be vectors of one shape, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"covariances must have shape ({d}, {d}) to match the means, "
            f"got {sigma1.shape} and {sigma2.shape}"
        )
    diff = mu1 - mu2
    tr_covmean = _sqrtm_trace(sigma1, sigma2, eps)
    fd = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(fd, 0.0)


class FeatureStats:
    """Streaming mean and covariance of feature vectors, accumulated in float64.

    Keeps the count, the sum of ``x`` and the sum of ``x x^T``; ``update`` takes one batch
    ``[B, D]`` (torch tensor or array). ``mean`` and ``cov`` (unbiased, divisor ``n - 1``) are
    computed on request, so feeding the features in any batching gives the same statistics.
    """

    def __init__(self, dim: int | None = None):
        self.dim = dim
        self.count = 0
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None

    def update(self, features) -> FeatureStats:
        """Add a batch of features of shape ``[B, D]``; returns ``self``."""
        x = _as_features(features)
        if self.dim is None:
            self.dim = x.shape[1]
        if x.shape[1] != self.dim:
            raise ValueError(f"feature dimension mismatch: stats have D={self.dim}, got {x.shape}")
        if self._sum is None:
            self._sum = np.zeros(self.dim)
            self._outer = np.zeros((self.dim, self.dim))
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x
        self.count += x.shape[0]
        return self

    @classmethod
    def from_features(cls, features) -> FeatureStats:
        """Statistics of one ``[N, D]`` feature set."""
        return cls().update(features)

    @property
    def mean(self) -> np.ndarray:
        """Mean feature vector, shape ``[D]``."""
        if self.count == 0:
            raise ValueError("no features accumulated yet")
        return self._sum / self.count

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance, shape ``[D, D]`` (needs at least two feature vectors)."""
        if self.count < 2:
            raise ValueError(f"covariance needs at least 2 feature vectors, have {self.count}")
        mean = self.mean
        cov = (self._outer - self.count * np.outer(mean, mean)) / (self.count - 1)
        return (cov + cov.T) / 2.0

    def frechet_distance(self, other: FeatureStats) -> float:
        """Frechet distance between the Gaussians fitted to ``self`` and ``other``."""
        if self.dim != other.dim:
            raise ValueError(f"feature dimension mismatch: {self.dim} vs {other.dim}")
        return frechet_distance(self.mean, self.cov, other.mean, other.cov)

    def save(self, path: str | os.PathLike) -> None:
        """Write the running sums to an ``.npz`` file (atomically), e.g. reference statistics."""
        if self.count == 0:
            raise ValueError("no features accumulated yet")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, count=self.count, sum=self._sum, outer=self._outer)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStats:
        """Read statistics written by :meth:`save`; they can be updated further."""
        with np.load(path) as data:
            stats = cls(dim=int(data["sum"].shape[0]))
            stats.count = int(data["count"])
            stats._sum, stats._outer = data["sum"].copy(), data["outer"].copy()
        return stats

    def __repr__(self) -> str:
        return f"FeatureStats(dim={self.dim}, count={self.count})"


def frechet_distance_from_features(feats_a, feats_b) -> float:
    """Frechet distance between the Gaussians fitted to two ``[N, D]`` feature sets."""
    a, b = _as_features(feats_a), _as_features(feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimension mismatch: {a.shape} vs {b.shape}")
    return FeatureStats.from_features(a).frechet_distance(FeatureStats.from_features(b))
