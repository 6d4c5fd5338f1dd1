"""One interface for the feature extractors behind the Frechet distances of the book.

A feature extractor is any callable ``extractor(x) -> [B, D]`` with attributes ``name`` and
``dim`` (``None`` when not known in advance). Three kinds:

- ``"inception"``: Inception-v3 pool features, 2048-d: the standard FID (:mod:`.inception`);
- ``"classifier"``: the package's small classifier trained on the dataset: "FD (classifier)"
  (:mod:`.classifier`);
- ``"identity"`` (aliases ``"points"``, ``"pixels"``): the raw values, flattened; for 2D points, whose main
  metric is the sliced Wasserstein distance (:mod:`.sliced_wasserstein`).

Each kind is one entry of :data:`FEATURE_KINDS` (its builder, the metric it reports, the
settings it takes, the name of its cached statistics), read by evaluation and the reproduction
runner alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from .frechet import FeatureStats

__all__ = [
    "FEATURE_KINDS",
    "FeatureKind",
    "IdentityFeatures",
    "feature_kind",
    "feature_stats",
    "get_feature_extractor",
]


class IdentityFeatures:
    """The identity feature map: ``[B, ...] -> [B, prod(...)]`` as float32."""

    name = "identity"
    dim = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x)
        return x.reshape(x.shape[0], -1).float()

    features = __call__


def _inception(dataset: str | None = None, **kw):
    from .inception import InceptionFeatures

    return InceptionFeatures(**kw)


def _classifier(dataset: str | None = None, **kw):
    if dataset is None:
        raise ValueError("the 'classifier' feature extractor needs dataset=..., e.g. 'mnist'")
    from .classifier import get_classifier

    return get_classifier(dataset, **kw)


def _identity(dataset: str | None = None, **kw):
    if kw:
        raise TypeError(f"identity features take no options, got {sorted(kw)}")
    return IdentityFeatures()


@dataclass(frozen=True)
class FeatureKind:
    """One kind of features: how its extractor is built, the metric it reports, the run
    settings it takes and the name of its cached reference statistics.

    ``build(dataset, **kw)`` returns the extractor; ``metric`` names the Frechet distance on
    these features in tables; ``takes`` lists the settings an evaluation passes by default
    (``image_size``: the run's, ``device``: the evaluation's); ``cache_key(extractor)`` names
    its reference statistics in a cache folder (None: not cached).
    """

    build: Callable[..., Callable]
    metric: str
    takes: tuple[str, ...] = ()
    cache_key: Callable[[object], str | None] = lambda extractor: None
    aliases: tuple[str, ...] = ()


def _classifier_key(extractor) -> str | None:
    path = getattr(extractor, "cache_path", None)
    return Path(path).stem if path is not None else None


FEATURE_KINDS: dict[str, FeatureKind] = {
    "classifier": FeatureKind(
        _classifier, "FD (classifier)", takes=("image_size", "device"), cache_key=_classifier_key
    ),
    "inception": FeatureKind(
        _inception, "FID", takes=("device",), cache_key=lambda e: "inception-v3-compat"
    ),
    "identity": FeatureKind(
        _identity, "FD (pixels)", cache_key=lambda e: "identity", aliases=("points", "pixels")
    ),
}
"""The feature kinds by name: one entry each (a new kind is one entry here)."""


def feature_kind(kind: str) -> tuple[str, FeatureKind]:
    """``(name, entry)`` of feature kind ``kind`` (a name of :data:`FEATURE_KINDS` or an
    alias, any case); ``ValueError`` lists the names."""
    kind = kind.lower()
    for name, entry in FEATURE_KINDS.items():
        if kind == name or kind in entry.aliases:
            return name, entry
    raise ValueError(f"unknown feature extractor {kind!r}; use {', '.join(FEATURE_KINDS)}")


def get_feature_extractor(kind: str, dataset: str | None = None, **kw):
    """Build the feature extractor ``kind`` ("inception", "classifier", "identity"/"points").

    ``dataset`` names the dataset the classifier is trained on (required for "classifier");
    ``kw`` goes to :class:`~.inception.InceptionFeatures` or ``shortcut_mini.metrics.get_classifier``.
    """
    return feature_kind(kind)[1].build(dataset, **kw)


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
