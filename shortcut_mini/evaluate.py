"""Step-budget sweeps: sample quality as a function of the number of sampling steps.

A shortcut model's claim is quality per step budget, so every chapter, test and reproduction
measures it with :func:`evaluate`, which follows the book's design notes:

- **2D runs**: the sliced Wasserstein-2 distance (``"SWD"``, not squared) between ``n`` samples
  (default 4,096) and ``n`` held-out points of the toy, drawn with a seed disjoint from the
  training points' seed; 512 random directions with a fixed seed.
- **Image runs**: the Frechet distance between features of ``n`` samples and of the held-out
  split (``load_dataset(name, train=False)``). For ``mnist``, ``fashion_mnist`` and ``digits`` the
  features are those of the package's small classifier (reported as ``"FD (classifier)"``, never
  as FID); for other datasets Inception-v3 pool features (``"FID"``). The reference statistics
  are computed once per call (optionally cached on disk) and reused for every budget and seed.

Samples come from the EMA weights. Each seed draws its own noise (and labels); a row of the
returned :class:`EvalTable` reports, per step budget, the mean distance over seeds, its standard
deviation (``ddof=1``; ``nan`` for one seed), each seed's value, the wall time of sampling and
samples per second.

Example::

    from shortcut_mini import load_run
    from shortcut_mini.evaluate import evaluate
    table = evaluate(load_run("runs/ckpt"), seeds=(0, 1))
    print(table.to_markdown())
    table.to_csv("runs/ckpt/eval/table.csv")
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .api import sample
from .common import atomic_write_bytes
from .levels import DEFAULT_BUDGETS
from .metrics.frechet import FeatureStats
from .metrics.precision_recall import precision_recall as _precision_recall
from .metrics.sliced_wasserstein import sliced_wasserstein

__all__ = [
    "CLASSIFIER_DATASETS",
    "DEFAULT_STEPS",
    "EvalTable",
    "Reference",
    "evaluate",
    "metric_name",
    "reference_for",
]

DEFAULT_STEPS = DEFAULT_BUDGETS
"""The step budgets every table reports (the book's design notes)."""

CLASSIFIER_DATASETS = ("mnist", "fashion_mnist", "digits")
"""Datasets whose Frechet distance uses the package's classifier features ("FD (classifier)")."""

POINTS_N = 4096
"""Samples and held-out points for the 2D metric."""

SWD_DIRECTIONS = 512
SWD_SEED = 0
IMAGE_N_CAP = 10_000
"""Default number of image samples: the held-out split's size, at most this."""

_METRIC_NAMES = {
    "swd": "SWD",
    "classifier": "FD (classifier)",
    "inception": "FID",
    "identity": "FD (pixels)",
}


def metric_name(features: str) -> str:
    """Name of the reported metric for a feature kind (``"classifier"`` -> ``"FD (classifier)"``)."""
    return _METRIC_NAMES.get(features, f"FD ({features})")


# ---------------------------------------------------------------------------------------------
# the table


def _to_jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {str(k): _to_jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_jsonable(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return _to_jsonable(v.item())
    if isinstance(v, Path):
        return str(v)
    return v


def _parse_cell(s: str):
    """CSV cell -> int, float or str (empty -> nan)."""
    if s == "":
        return float("nan")
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def _fmt(v, digits: int = 4) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


@dataclass
class EvalTable:
    """The result of :func:`evaluate`: one row per step budget, plus metadata.

    Each row is a flat dict with keys ``steps``, ``metric``, ``distance`` (mean over seeds),
    ``distance_std`` (standard deviation over seeds, ``ddof=1``; ``nan`` for one seed),
    ``distance_seed{S}`` for each seed ``S``, ``n_samples`` (per seed), ``n_seeds``,
    ``sample_seconds`` (mean wall time to draw ``n_samples``), ``samples_per_second``,
    ``reference``; with precision/recall also ``precision``, ``recall`` (means) and their
    ``_std``. ``meta`` records the run, metric, reference, seeds, device and git commit.

    ``table[steps]`` returns the row of a budget; ``len(table)`` and iteration go over rows.
    """

    rows: list[dict]
    meta: dict = field(default_factory=dict)

    # -- access --------------------------------------------------------------------------------
    def __getitem__(self, steps: int) -> dict:
        for row in self.rows:
            if row["steps"] == steps:
                return row
        raise KeyError(f"no row for steps={steps!r}; budgets: {self.steps}")

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    @property
    def steps(self) -> list[int]:
        """The step budgets, in row order."""
        return [row["steps"] for row in self.rows]

    @property
    def metric(self) -> str:
        """The metric's name (``"SWD"``, ``"FD (classifier)"``, ``"FID"``, ...)."""
        return self.meta.get("metric") or (self.rows[0]["metric"] if self.rows else "")

    def column(self, key: str) -> list:
        """The values of ``key`` over the rows (e.g. ``table.column("distance")``)."""
        return [row.get(key, float("nan")) for row in self.rows]

    def per_seed(self, steps: int) -> dict[int, float]:
        """``{seed: distance}`` for one budget."""
        row = self[steps]
        out = {}
        for k, v in row.items():
            m = re.fullmatch(r"distance_seed(-?\d+)", k)
            if m:
                out[int(m.group(1))] = v
        return out

    @property
    def columns(self) -> list[str]:
        """Every row key, in first-seen order."""
        cols: list[str] = []
        for row in self.rows:
            cols += [k for k in row if k not in cols]
        return cols

    # -- output --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """``{"meta": ..., "rows": ...}`` with non-finite floats made JSON-safe (nan -> null)."""
        return {"meta": _to_jsonable(self.meta), "rows": _to_jsonable(self.rows)}

    def to_json(self, path: str | Path | None = None) -> str:
        """The table as JSON text; written atomically to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            atomic_write_bytes(Path(path), text.encode())
        return text

    def to_csv(self, path: str | Path | None = None) -> str:
        """The rows as CSV text (one row per budget; no metadata); written atomically if asked."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow(
                {k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            )
        text = buf.getvalue()
        if path is not None:
            atomic_write_bytes(Path(path), text.encode())
        return text

    def to_markdown(self, path: str | Path | None = None, digits: int = 4) -> str:
        """A markdown table (budget, distance +- std, per-seed values, timing) with a caption."""
        seeds = sorted({s for steps in self.steps for s in self.per_seed(steps)})
        pr = any("precision" in row for row in self.rows)
        head = ["steps", self.metric, "std"]
        head += [f"seed {s}" for s in seeds] if len(seeds) > 1 else []
        head += ["precision", "recall"] if pr else []
        head += ["sampling s", "samples/s"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        for row in self.rows:
            cells = [row["steps"], row["distance"], row.get("distance_std", float("nan"))]
            cells += (
                [row.get(f"distance_seed{s}", float("nan")) for s in seeds]
                if len(seeds) > 1
                else []
            )
            cells += (
                [row.get("precision", float("nan")), row.get("recall", float("nan"))] if pr else []
            )
            cells += [row["sample_seconds"], row["samples_per_second"]]
            lines.append("| " + " | ".join(_fmt(c, digits) for c in cells) + " |")
        m = self.meta
        caption = (
            f"{self.metric} (lower is better) of {m.get('n', '?')} samples per seed "
            f"(seeds {m.get('seeds', '?')}) against {m.get('reference', '?')}"
        )
        if m.get("method"):
            caption += f"; {m['method']} / {m.get('model', '?')} on {m.get('data', '?')}"
            caption += f" after {m.get('train_step', '?')} training steps"
        caption += f"; EMA weights, device {m.get('device', '?')}, commit {m.get('commit', '?')}."
        text = "\n".join(lines) + "\n\n" + caption + "\n"
        if path is not None:
            atomic_write_bytes(Path(path), text.encode())
        return text

    def __repr__(self) -> str:
        return f"EvalTable(metric={self.metric!r}, steps={self.steps})"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    # -- input ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> EvalTable:
        """Inverse of :meth:`to_dict` (``null`` floats come back as ``nan``)."""

        def back(v):
            if v is None:
                return float("nan")
            if v in ("inf", "-inf"):
                return float(v)
            return v

        rows = [{k: back(v) for k, v in row.items()} for row in d["rows"]]
        return cls(rows=rows, meta=dict(d.get("meta", {})))

    @classmethod
    def from_json(cls, path: str | Path) -> EvalTable:
        """Read a table written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_csv(cls, path: str | Path, meta: dict | None = None) -> EvalTable:
        """Read rows written by :meth:`to_csv` (numbers parsed back; no metadata in CSV)."""
        with open(path, newline="") as f:
            rows = [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(f)]
        return cls(rows=rows, meta=dict(meta or {}))


# ---------------------------------------------------------------------------------------------
# references


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


def _feature_cache_key(extractor, kind: str) -> str | None:
    if kind == "classifier" and getattr(extractor, "cache_path", None) is not None:
        return Path(extractor.cache_path).stem
    if kind == "inception":
        return "inception-v3-compat"
    if kind == "identity":
        return "identity"
    return None


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:60]


def _extract(extractor, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = [extractor(x[i : i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)


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
    from .data import load_dataset

    cfg = run.config
    name = run.data_info["name"]
    root = data_root if data_root is not None else cfg.data_root
    if run.data_info["kind"] == "points":
        n = POINTS_N if n is None else int(n)
        ds = load_dataset(name, train=False, n=n, seed=cfg.seed)
        return Reference(
            description=f"{n} held-out {name} points (test seed of training seed {cfg.seed})",
            points=ds.x.float(),
            n=n,
        )
    split = "test split" if not name.startswith("image_folder:") else "images (no split)"
    size = cfg.image_size
    desc = f"{name} {split}" + (f" at {size}x{size}" if size else "")
    key = _feature_cache_key(extractor, feature_kind or "")
    cache_file = None
    if cache_dir is not None and key is not None and not keep_features:
        cache_file = Path(cache_dir) / f"refstats_{_safe(name)}_size{size or 'native'}_{key}.npz"
        if cache_file.exists():
            stats = FeatureStats.load(cache_file)
            labels = None
            if run.data_info.get("num_classes"):  # labels for class_labels="match" (cheap)
                ds = load_dataset(name, train=False, image_size=size, root=root)
                labels = ds.y.clone() if ds.num_classes else None
            return Reference(description=desc, stats=stats, labels=labels, n=stats.count)
    ds = load_dataset(name, train=False, image_size=size, root=root)
    x = ds.x.float().div(127.5).sub(1.0)
    feats = _extract(extractor, x, batch_size)
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
# the sweep


def _labels(run, reference: Reference, n: int, mode: str, seed: int) -> torch.Tensor | None:
    nc = int(run.data_info.get("num_classes", 0))
    if nc == 0 or mode == "null":
        return None
    gen = torch.Generator().manual_seed(1_000_000 + seed)
    if mode == "uniform" or reference.labels is None:
        return torch.randint(nc, (n,), generator=gen)
    if mode != "match":
        raise ValueError(f"class_labels must be 'match', 'uniform' or 'null', got {mode!r}")
    ref = reference.labels
    reps = -(-n // len(ref))  # whole permutations: exact class proportions when n == len(ref)
    idx = torch.cat([torch.randperm(len(ref), generator=gen) for _ in range(reps)])[:n]
    return ref[idx]


def _resolve_features(features, run, feature_kwargs: dict, device) -> tuple[object, str]:
    """Return (extractor, kind) for an image run."""
    if not isinstance(features, str):
        if not callable(features):
            raise TypeError(f"features must be a name or a callable, got {features!r}")
        return features, getattr(features, "name", type(features).__name__)
    kind = features.lower()
    name = run.data_info["name"]
    if kind == "auto":
        kind = "classifier" if name in CLASSIFIER_DATASETS else "inception"
    from .metrics.features import get_feature_extractor

    kw = dict(feature_kwargs)
    if kind == "classifier":
        kw.setdefault("image_size", run.config.image_size)
        kw.setdefault("device", device)
        return get_feature_extractor("classifier", name, **kw), kind
    if kind == "inception":
        kw.setdefault("device", device)
        return get_feature_extractor("inception", **kw), kind
    if kind in ("identity", "points", "pixels"):
        return get_feature_extractor("identity", **kw), "identity"
    raise ValueError(
        f"unknown features {features!r}; use 'auto', 'classifier', 'inception', 'identity' "
        "or a callable"
    )


def _blas_threads():
    """Limit BLAS threads (scipy's ``sqrtm``) to torch's thread count while computing FDs.

    On a machine whose cores are busy, OpenBLAS's default thread pool can make a 128x128
    matrix square root take seconds instead of milliseconds; ``torch.set_num_threads`` is the
    knob users already set, so BLAS follows it. A no-op without ``threadpoolctl``.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=torch.get_num_threads(), user_api="blas")


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def evaluate(
    run,
    steps: Sequence[int] = DEFAULT_STEPS,
    n: int | None = None,
    seeds: Sequence[int] = (0,),
    features: str | Callable = "auto",
    reference: Reference | FeatureStats | torch.Tensor | None = None,
    batch_size: int = 1024,
    cfg_scale: float = 1.0,
    progress: bool = True,
    *,
    precision_recall: bool = False,
    class_labels: str = "match",
    feature_kwargs: dict | None = None,
    cache_dir: str | Path | None = None,
    use_ema: bool = True,
) -> EvalTable:
    """Sample ``run`` at each step budget and measure the distance to held-out data.

    Args:
        run: a ``shortcut_mini.Run`` (from ``train`` or ``load_run``); sampling runs on
            the device its model lives on.
        steps: step budgets (ints; see ``shortcut_mini.sample``).
        n: samples per seed and budget. Default: 4,096 for 2D runs; for image runs the size of
            the held-out split, at most 10,000.
        seeds: one sampling seed per repetition (noise and labels); the spread over seeds is
            reported.
        features: image runs: ``"auto"`` (``"classifier"`` for mnist, fashion_mnist and digits,
            else ``"inception"``), ``"classifier"``, ``"inception"``, ``"identity"``, or a
            callable ``images [B, C, H, W] in [-1, 1] -> [B, D]``. 2D runs: ``"auto"`` or
            ``"swd"`` (the sliced Wasserstein distance).
        reference: default: the held-out split (see :func:`reference_for`). Also accepted: a
            :class:`Reference`; for images a :class:`~shortcut_mini.metrics.FeatureStats` of the
            same features or an image tensor ``[N, C, H, W]`` (uint8 or in ``[-1, 1]``); for 2D
            a point tensor ``[N, 2]`` (``n`` defaults to ``N``).
        batch_size: sampling batch size (feature extraction uses ``min(batch_size, 500)``).
        cfg_scale: classifier-free guidance weight for class-conditional runs.
        progress: show a tqdm progress bar.
        precision_recall: also report improved precision and recall (Kynkaanniemi et al. 2019,
            ``k = 3``) of the same features (2D: of the points).
        class_labels: class-conditional runs: ``"match"`` (the reference's label proportions),
            ``"uniform"``, or ``"null"`` (the unconditional null label).
        feature_kwargs: passed to the feature extractor (e.g. ``{"cache_dir": ..., "epochs": 2}``
            for the classifier; ``{"weights_path": ...}`` for Inception).
        cache_dir: cache image reference statistics there (reused across calls).
        use_ema: sample with the EMA weights (the protocol) or the online weights.

    Returns:
        An :class:`EvalTable` with one row per budget, in the order of ``steps``.
    """
    t_start = time.perf_counter()
    steps = [int(s) for s in steps]
    seeds = [int(s) for s in seeds]
    if not steps or not seeds:
        raise ValueError("evaluate needs at least one step budget and one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    model = run.ema if use_ema else run.model
    device = next(model.parameters()).device
    points = run.data_info["kind"] == "points"
    feature_batch = min(batch_size, 500)
    extractor, feature_info = None, {}

    # -- reference ------------------------------------------------------------------------------
    if points:
        if not (isinstance(features, str) and features.lower() in ("auto", "swd")):
            raise ValueError(
                f"2D runs are evaluated with the sliced Wasserstein distance; got "
                f"features={features!r} (use 'auto')"
            )
        kind, metric = "swd", metric_name("swd")
        if isinstance(reference, Reference):
            ref = reference
        elif reference is not None:
            pts = torch.as_tensor(reference).float().reshape(len(reference), -1)
            ref = Reference(description=f"{len(pts)} given points", points=pts, n=len(pts))
        else:
            ref = reference_for(run, n=n)
        n = ref.n if n is None else int(n)
        if n != ref.n:
            raise ValueError(
                f"the sliced Wasserstein distance compares equal-sized sets: n={n} but the "
                f"reference has {ref.n} points"
            )
    else:
        extractor, kind = _resolve_features(features, run, feature_kwargs or {}, device)
        metric = metric_name(kind)
        if kind == "classifier":
            feature_info = {
                "classifier_accuracy": extractor.accuracy,
                "classifier_cache": str(extractor.cache_path),
                **{f"classifier_{k}": extractor.meta.get(k) for k in ("epochs", "seed")},
            }
        if isinstance(reference, Reference):
            ref = reference
        elif isinstance(reference, FeatureStats):
            if precision_recall:
                raise ValueError("precision_recall needs reference features, not FeatureStats")
            ref = Reference(
                description="given feature statistics", stats=reference, n=reference.count
            )
        elif reference is not None:
            imgs = torch.as_tensor(reference)
            if imgs.dtype == torch.uint8:
                imgs = imgs.float().div(127.5).sub(1.0)
            feats = _extract(extractor, imgs, feature_batch)
            ref = Reference(
                description=f"{len(imgs)} given images",
                stats=FeatureStats.from_features(feats),
                features=feats if precision_recall else None,
                n=len(imgs),
            )
        else:
            ref = reference_for(
                run,
                extractor=extractor,
                feature_kind=kind,
                keep_features=precision_recall,
                cache_dir=cache_dir,
                batch_size=feature_batch,
            )
        if precision_recall and ref.features is None:
            raise ValueError("precision_recall needs a reference that keeps its features")
        n = min(ref.n, IMAGE_N_CAP) if n is None else int(n)
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")

    # -- sweep ----------------------------------------------------------------------------------
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(steps) * len(seeds), desc=f"evaluate ({metric})", leave=False)
    # warm-up (lazy CUDA init, kernel selection) so that the first budget's timing is fair
    sample(run, min(n, 8), 1, seed=0, cfg_scale=cfg_scale, use_ema=use_ema)
    labels = {s: _labels(run, ref, n, class_labels, s) for s in seeds}
    rows = []
    try:
        for budget in steps:
            dists, secs, precs, recs = [], [], [], []
            for s in seeds:
                t0 = time.perf_counter()
                x = sample(
                    run,
                    n,
                    budget,
                    seed=s,
                    cfg_scale=cfg_scale,
                    y=labels[s],
                    use_ema=use_ema,
                    batch_size=batch_size,
                )
                if run.data_info["kind"] == "latent":  # FID is measured on decoded images
                    from .data.latents import decode_samples

                    x = decode_samples(run, x, device=device).float().cpu()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                secs.append(time.perf_counter() - t0)
                if points:
                    dists.append(sliced_wasserstein(x, ref.points, SWD_DIRECTIONS, SWD_SEED))
                    if precision_recall:
                        pr = _precision_recall(ref.points, x.reshape(n, -1))
                        precs.append(pr.precision)
                        recs.append(pr.recall)
                else:
                    feats = _extract(extractor, x, feature_batch)
                    with _blas_threads():
                        dists.append(FeatureStats.from_features(feats).frechet_distance(ref.stats))
                    if precision_recall:
                        pr = _precision_recall(ref.features, feats)
                        precs.append(pr.precision)
                        recs.append(pr.recall)
                if bar is not None:
                    bar.update(1)
            sec = float(np.mean(secs))
            row = {
                "steps": budget,
                "metric": metric,
                "distance": float(np.mean(dists)),
                "distance_std": _std(dists),
                **{f"distance_seed{s}": float(d) for s, d in zip(seeds, dists)},
                "n_samples": n,
                "n_seeds": len(seeds),
                "sample_seconds": sec,
                "samples_per_second": n / sec if sec > 0 else float("inf"),
                "reference": ref.description,
            }
            if precision_recall:
                row.update(
                    precision=float(np.mean(precs)),
                    precision_std=_std(precs),
                    recall=float(np.mean(recs)),
                    recall_std=_std(recs),
                )
            rows.append(row)
    finally:
        if bar is not None:
            bar.close()

    from .common import device_name, git_commit

    cfg = run.config
    meta = {
        "metric": metric,
        "features": kind,
        **feature_info,
        "reference": ref.description,
        "n_reference": ref.n,
        "n": n,
        "seeds": seeds,
        "steps": steps,
        "cfg_scale": cfg_scale,
        "class_labels": class_labels if run.data_info.get("num_classes") else None,
        "weights": "ema" if use_ema else "online",
        "data": run.data_info.get("name", cfg.data),
        "method": cfg.method,
        "model": cfg.model,
        "train_step": run.step,
        "train_seconds": run.train_seconds,
        "run_dir": run.out_dir,
        "config": cfg.to_dict(),
        "device": device_name() if device.type == "cuda" else str(device),
        "torch": torch.__version__,
        "commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "eval_seconds": round(time.perf_counter() - t_start, 3),
    }
    if points:
        meta.update(swd_directions=SWD_DIRECTIONS, swd_seed=SWD_SEED)
    return EvalTable(rows=rows, meta=meta)
