"""Evaluation metrics (:ref:`the book's design notes <design-evaluation>`).

- :func:`frechet_distance`, :class:`FeatureStats`: Frechet distance of Gaussian-fitted features;
- :func:`sliced_wasserstein`: the 2D metric;
- :func:`get_feature_extractor`: Inception-v3 (standard FID), the package's classifier
  ("FD (classifier)") or identity features;
- :func:`precision_recall`: improved precision and recall (Kynkaanniemi et al. 2019);
- :func:`toy2d_on_board`: the fraction of 2D samples on the checkerboard toy's filled squares.

Other names live in the submodules (e.g. ``shortcut_mini.metrics.classifier.DEFAULT_EPOCHS``).
The classifier module is imported on first use, so that ``python -m
shortcut_mini.metrics.classifier`` runs it cleanly.
"""

from .features import IdentityFeatures, feature_stats, get_feature_extractor
from .frechet import FeatureStats, frechet_distance, frechet_distance_from_features
from .inception import FeatureWeightsUnavailableError, InceptionFeatures
from .on_board import toy2d_on_board
from .precision_recall import PrecisionRecall, precision_recall
from .sliced_wasserstein import random_directions, sliced_wasserstein

__all__ = [
    "FeatureStats",
    "FeatureWeightsUnavailableError",
    "IdentityFeatures",
    "InceptionFeatures",
    "PrecisionRecall",
    "TrainedClassifier",
    "feature_stats",
    "frechet_distance",
    "frechet_distance_from_features",
    "get_classifier",
    "get_feature_extractor",
    "precision_recall",
    "random_directions",
    "sliced_wasserstein",
    "toy2d_on_board",
]


def __getattr__(name: str):
    if name in ("TrainedClassifier", "get_classifier"):
        from . import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
