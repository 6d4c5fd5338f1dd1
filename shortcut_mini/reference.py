"""What samples are compared with: held-out toy points, or features of held-out images.

:func:`~shortcut_mini.evaluate.evaluate` measures every step budget against one
:class:`Reference`, which :func:`resolve_reference` builds from any of five inputs:

- ``None``: the run's default (:func:`reference_for`): for 2D runs ``n`` held-out points of the
  toy, drawn with the test seed of the training seed (``load_dataset(..., train=False)``); for
  image runs the feature statistics of the held-out split (optionally cached on disk);
- a :class:`Reference`, used as it is;
- for 2D runs, a point tensor ``[N, 2]``;
- for image runs, a :class:`~shortcut_mini.metrics.FeatureStats` of the same features, or an
  image tensor ``[N, C, H, W]`` (uint8, or float in ``[-1, 1]``) whose features are extracted.

Image features come from :func:`resolve_features`: the package's small classifier for the
MNIST family (reported as "FD (classifier)", never as FID), Inception-v3 pool features for the
other datasets (FID), raw pixels, or any callable ``images -> features``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import IMAGE_DATASETS
from .metrics.frechet import FeatureStats

__all__ = [
    "CLASSIFIER_DATASETS",
    "POINTS_N",
    "Reference",
    "extract_features",
    "held_out_points",
    "reference_for",
    "resolve_features",
    "resolve_reference",
]

CLASSIFIER_DATASETS = tuple(n for n, d in IMAGE_DATASETS.items() if d.features == "classifier")
"""Datasets whose Frechet distance uses the package's classifier features ("FD (classifier)"):
those whose registry entry says so (``shortcut_mini.data.IMAGE_DATASETS``)."""

POINTS_N = 4096
"""Held-out points of a 2D toy (and samples compared with them), :ref:`the book's design notes <design-evaluation>`."""


@dataclass
class Reference:
    """What samples are compared with.

    For 2D runs ``points`` holds the held-out points; for image runs ``stats`` the
    :class:`~shortcut_mini.metrics.FeatureStats` of the reference features (and ``features``
    the features themselves, kept when precision/recall is asked for). ``labels`` are the
    reference's class labels (or None), ``description`` names it in tables.
    """

    description: str
    points: torch.Tensor | None = None
    stats: FeatureStats | None = None
    features: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    n: int = 0


# ---------------------------------------------------------------------------------------------
# features


def resolve_features(
    features: str | Callable, run, feature_kwargs: dict | None = None, device=None
) -> tuple[Callable, str]:
    """``(extractor, kind)`` for an image run.

    ``features`` is ``"auto"`` (``"classifier"`` for :data:`CLASSIFIER_DATASETS`, else
    ``"inception"``), ``"classifier"``, ``"inception"``, ``"identity"`` (raw pixels; also
    ``"pixels"``), or a callable ``images [B, C, H, W] in [-1, 1] -> [B, D]`` (its kind is its
    ``name`` attribute, else its type's name). ``feature_kwargs`` go to the extractor.
    """
    if not isinstance(features, str):
        if not callable(features):
            raise TypeError(f"features must be a name or a callable, got {features!r}")
        return features, getattr(features, "name", type(features).__name__)
    kind = features.lower()
    name = run.data_info["name"]
    if kind == "auto":
        kind = "classifier" if name in CLASSIFIER_DATASETS else "inception"
    from .metrics.features import FEATURE_KINDS, feature_kind

    try:
        kind, entry = feature_kind(kind)
    except ValueError:
        raise ValueError(
            f"unknown features {features!r}; use 'auto', "
            + ", ".join(f"'{k}'" for k in FEATURE_KINDS)
            + " or a callable"
        ) from None
    kw = dict(feature_kwargs or {})
    defaults = {"image_size": run.config.image_size, "device": device}
    for setting in entry.takes:
        kw.setdefault(setting, defaults[setting])
    return entry.build(name, **kw), kind


def extract_features(extractor: Callable, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``extractor`` over ``x`` in batches of ``batch_size``: float32 features on the CPU."""
    out = [extractor(x[i : i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)


def _feature_cache_key(extractor, kind: str) -> str | None:
    from .metrics.features import FEATURE_KINDS

    return FEATURE_KINDS[kind].cache_key(extractor) if kind in FEATURE_KINDS else None


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:60]


# ---------------------------------------------------------------------------------------------
# the run's default reference


def held_out_points(name: str, n: int = POINTS_N, seed: int = 0) -> Reference:
    """``n`` held-out points of the 2D toy ``name``: its test split for the training seed
    ``seed`` (``load_dataset(name, train=False, seed=seed)``, disjoint from the training
    points)."""
    from .data import load_dataset

    ds = load_dataset(name, train=False, n=n, seed=seed)
    return Reference(
        description=f"{n} held-out {name} points (test seed of training seed {seed})",
        points=ds.x.float(),
        n=n,
    )


def _held_out_labels(run, root) -> torch.Tensor | None:
    """The held-out split's labels (for ``class_labels="match"``), or None if unconditional."""
    if not run.data_info.get("num_classes"):
        return None
    from .data import load_dataset

    ds = load_dataset(
        run.data_info["name"], train=False, image_size=run.config.image_size, root=root
    )
    return ds.y.clone() if ds.num_classes else None


def reference_for(
    run,
    *,
    n: int | None = None,
    extractor=None,
    feature_kind: str | None = None,
    keep_features: bool = False,
    cache_dir: str | Path | None = None,
    batch_size: int = 500,
    data_root: str | None = None,
) -> Reference:
    """The default reference of ``run``: held-out toy points or held-out-split feature stats.

    Args:
        n: 2D only: number of held-out points (default 4,096).
        extractor, feature_kind: image runs: the feature extractor and its kind (part of the
            cache key).
        keep_features: keep the reference features (for precision/recall).
        cache_dir: if given, image reference statistics are cached there as ``.npz``, keyed by
            dataset, image size and feature extractor (not used when ``keep_features``).
        data_root: where the dataset lives (default: the run's ``data_root``).
    """
    if run.data_info["kind"] == "points":
        n = POINTS_N if n is None else int(n)
        return held_out_points(run.data_info["name"], n, seed=run.config.seed)
    from .data import load_dataset

    name, size = run.data_info["name"], run.config.image_size
    root = data_root if data_root is not None else run.config.data_root
    split = "test split" if not name.startswith("image_folder:") else "images (no split)"
    desc = f"{name} {split}" + (f" at {size}x{size}" if size else "")
    key = _feature_cache_key(extractor, feature_kind or "")
    cache_file = None
    if cache_dir is not None and key is not None and not keep_features:
        cache_file = Path(cache_dir) / f"refstats_{_safe(name)}_size{size or 'native'}_{key}.npz"
        if cache_file.exists():
            stats = FeatureStats.load(cache_file)
            labels = _held_out_labels(run, root)
            return Reference(description=desc, stats=stats, labels=labels, n=stats.count)
    ds = load_dataset(name, train=False, image_size=size, root=root)
    feats = extract_features(extractor, ds.x.float().div(127.5).sub(1.0), batch_size)
    stats = FeatureStats.from_features(feats)
    if cache_file is not None:
        stats.save(cache_file)
    return Reference(
        description=desc,
        stats=stats,
        features=feats if keep_features else None,
        labels=ds.y.clone() if ds.num_classes else None,
        n=len(ds),
    )


# ---------------------------------------------------------------------------------------------
# any of the five inputs


def _given_images(images, extractor, keep_features: bool, batch_size: int) -> Reference:
    imgs = torch.as_tensor(images)
    if imgs.dtype == torch.uint8:
        imgs = imgs.float().div(127.5).sub(1.0)
    feats = extract_features(extractor, imgs, batch_size)
    return Reference(
        description=f"{len(imgs)} given images",
        stats=FeatureStats.from_features(feats),
        features=feats if keep_features else None,
        n=len(imgs),
    )


def resolve_reference(
    run,
    reference: Reference | FeatureStats | torch.Tensor | None,
    *,
    n: int | None = None,
    extractor: Callable | None = None,
    feature_kind: str | None = None,
    keep_features: bool = False,
    cache_dir: str | Path | None = None,
    batch_size: int = 500,
) -> Reference:
    """Turn any of the five accepted reference inputs (module docstring) into a :class:`Reference`.

    2D runs: ``reference`` is None (``n`` held-out points), a :class:`Reference` or a point
    tensor. Image runs: None (the held-out split through ``extractor``), a :class:`Reference`,
    a :class:`~shortcut_mini.metrics.FeatureStats` or an image tensor; ``keep_features`` keeps
    the reference features (precision/recall needs them) and raises ``ValueError`` where the
    input has none. ``batch_size`` is the feature-extraction batch size.
    """
    if isinstance(reference, Reference):
        ref = reference
    elif run.data_info["kind"] == "points":
        if reference is None:
            return reference_for(run, n=n)
        pts = torch.as_tensor(reference).float().reshape(len(reference), -1)
        return Reference(description=f"{len(pts)} given points", points=pts, n=len(pts))
    elif isinstance(reference, FeatureStats):
        if keep_features:
            raise ValueError(
                "precision_recall needs reference features, not FeatureStats: pass the "
                "reference images (or no reference) instead"
            )
        ref = Reference(description="given feature statistics", stats=reference, n=reference.count)
    elif reference is not None:
        ref = _given_images(reference, extractor, keep_features, batch_size)
    else:
        ref = reference_for(
            run,
            extractor=extractor,
            feature_kind=feature_kind,
            keep_features=keep_features,
            cache_dir=cache_dir,
            batch_size=batch_size,
        )
    if keep_features and run.data_info["kind"] != "points" and ref.features is None:
        raise ValueError("precision_recall needs a reference that keeps its features")
    return ref
