"""One interface for the feature extractors behind the Frechet distances of the book.

A feature extractor is any callable ``extractor(x) -> [B, D]`` with attributes ``name`` and
``dim`` (``None`` when not known in advance). Three kinds:

- ``"inception"``: Inception-v3 pool features, 2048-d: the standard FID (:mod:`.inception`);
- ``"classifier"``: the package's small classifier trained on the dataset: "FD (classifier)"
  (:mod:`.classifier`);
- ``"identity"`` (alias ``"points"``): the raw values, flattened; for 2D points, whose main
  metric is the sliced Wasserstein distance (:mod:`.sliced_wasserstein`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .frechet import FeatureStats

__all__ = ["IdentityFeatures", "feature_stats", "get_feature_extractor"]


class IdentityFeatures:
    """The identity feature map: ``[B, ...] -> [B, prod(...)]`` as float32."""

    name = "identity"
    dim = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        return x.reshape(x.shape[0], -1).float()

    features = __call__


def get_feature_extractor(kind: str, dataset: str | None = None, **kw):
    """Build the feature extractor ``kind`` ("inception", "classifier", "identity"/"points").

    ``dataset`` names the dataset the classifier is trained on (required for "classifier");
    ``kw`` goes to :class:`~.inception.InceptionFeatures` or ``shortcut_mini.metrics.get_classifier``.
    """
    kind = kind.lower()
    if kind == "inception":
        from .inception import InceptionFeatures

        return InceptionFeatures(**kw)
    if kind == "classifier":
        if dataset is None:
            raise ValueError("the 'classifier' feature extractor needs dataset=..., e.g. 'mnist'")
        from .classifier import get_classifier

        return get_classifier(dataset, **kw)
    if kind in ("identity", "points"):
        if kw:
            raise TypeError(f"identity features take no options, got {sorted(kw)}")
        return IdentityFeatures()
    raise ValueError(f"unknown feature extractor {kind!r}; use inception, classifier or identity")


def feature_stats(
    extractor, data: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 500
) -> FeatureStats:
    """Streaming :class:`FeatureStats` of ``extractor`` applied to ``data``.

    ``data`` is a tensor ``[N, ...]`` (processed ``batch_size`` at a time) or an iterable of
    batches (e.g. a generator that samples a model batch by batch).
    """
    stats = FeatureStats()
    if isinstance(data, torch.Tensor):
        batches = torch.split(data, batch_size) if data.shape[0] else ()
    else:
        batches = data
    for batch in batches:
        stats.update(extractor(batch))
    return stats
