"""Step-budget sweeps: sample quality as a function of the number of sampling steps.

A shortcut model's claim is quality per step budget, so every chapter, test and reproduction
measures it with :func:`evaluate`, which follows :ref:`the book's design notes <design-evaluation>`:

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

:func:`evaluate` checks its arguments, builds the :class:`Metric` (the reference comes from
:mod:`shortcut_mini.reference`, which turns any accepted reference input into a
:class:`Reference`), runs :func:`sweep` (one distance per budget and seed: sample, time, decode
latents, score) and records the provenance in the table's ``meta``. The demo and the ablations
call the same sweep, so their numbers are the protocol's.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from numbers import Integral
from pathlib import Path

import numpy as np
import torch

from .api import as_run, check_memory, sample
from .budget_runs import budget_weights, missing_budgets
from .capability import choose_precision, compile_support
from .common import atomic_write_bytes
from .levels import DEFAULT_BUDGETS, dyadic_schedule
from .metrics.features import FEATURE_KINDS
from .metrics.frechet import FeatureStats
from .metrics.on_board import toy2d_on_board
from .metrics.precision_recall import precision_recall as _precision_recall
from .metrics.sliced_wasserstein import sliced_wasserstein
from .reference import (
    CLASSIFIER_DATASETS,
    Reference,
    extract_features,
    reference_for,
    resolve_features,
    resolve_reference,
)
from .tables import markdown_table

__all__ = [
    "CLASSIFIER_DATASETS",
    "DEFAULT_STEPS",
    "EvalTable",
    "Metric",
    "Reference",
    "evaluate",
    "metric_name",
    "reference_for",
    "swd_metric",
    "sweep",
]

DEFAULT_STEPS = DEFAULT_BUDGETS
"""The step budgets every table reports (:ref:`the book's design notes <design-evaluation>`)."""

SWD_DIRECTIONS = 512
SWD_SEED = 0
IMAGE_N_CAP = 10_000
"""Default number of image samples: the held-out split's size, at most this."""

_METRIC_NAMES = {"swd": "SWD", **{k: kind.metric for k, kind in FEATURE_KINDS.items()}}


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
    ``_std``; on the checkerboard toy also ``on_board`` (mean fraction of samples on its filled
    squares) and ``on_board_std``. ``meta`` records the run, metric, reference, seeds, device and git commit.

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
        board = any("on_board" in row for row in self.rows)
        head = ["steps", self.metric, "std"]
        head += [f"seed {s}" for s in seeds] if len(seeds) > 1 else []
        head += ["on the board"] if board else []
        head += ["precision", "recall"] if pr else []
        head += ["sampling s", "samples/s"]
        body = []
        for row in self.rows:
            cells = [row["steps"], row["distance"], row.get("distance_std", float("nan"))]
            cells += (
                [row.get(f"distance_seed{s}", float("nan")) for s in seeds]
                if len(seeds) > 1
                else []
            )
            cells += [row.get("on_board", float("nan"))] if board else []
            cells += (
                [row.get("precision", float("nan")), row.get("recall", float("nan"))] if pr else []
            )
            cells += [row["sample_seconds"], row["samples_per_second"]]
            body.append([_fmt(c, digits) for c in cells])
        lines = [markdown_table(head, body, align="r")]
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
# argument checks

CLASS_LABEL_MODES = ("match", "uniform", "null")
"""How class-conditional runs get their labels: the reference's proportions, uniform, or none."""


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _int_sequence(values, name: str, example: str) -> list[int]:
    """``values`` as a non-empty list of ints (numpy ints too; bools, floats and strs refused)."""
    ok = isinstance(values, Iterable) and not isinstance(values, (str, bytes))
    out = list(values) if ok else []
    if not out or not all(map(_is_int, out)):
        raise ValueError(
            f"{name} must be a non-empty sequence of integers, e.g. {example}; got {values!r}"
        )
    return [int(v) for v in out]


def _check_class_labels(mode) -> None:
    if mode not in CLASS_LABEL_MODES:
        raise ValueError(f"class_labels must be 'match', 'uniform' or 'null', got {mode!r}")


def _check_arguments(run, steps, n, seeds, batch_size, cfg_scale, class_labels):
    """Refuse bad arguments of :func:`evaluate` before any work; ``(steps, seeds, n)`` as
    lists of ints and an int (or None)."""
    steps = _int_sequence(steps, "steps (the step budgets)", "(1, 2, 4, 128)")
    seeds = _int_sequence(seeds, "seeds (one sampling seed per repetition)", "(0, 1, 2)")
    for budget in steps:
        dyadic_schedule(budget, run.config.M)  # raises on a budget the model cannot do
    missing = missing_budgets(run, steps)  # (progressive distillation: a budget no stage trained)
    if missing:
        raise ValueError(
            f"steps: {run.config.method} cannot sample "
            + "; ".join(f"{b} steps ({why})" for b, why in missing.items())
            + "; leave those budgets out"
        )
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    if n is not None and (not _is_int(n) or n < 2):
        raise ValueError(
            f"n (samples per seed and budget) must be an integer >= 2, or None for the "
            f"protocol's default; got {n!r}"
        )
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(
            f"batch_size must be a positive integer (samples per forward pass, e.g. 1024), "
            f"got {batch_size!r}"
        )
    ok = isinstance(cfg_scale, (int, float)) and not isinstance(cfg_scale, bool)
    if not ok or not math.isfinite(cfg_scale):
        raise ValueError(f"cfg_scale must be a finite number (1: no guidance), got {cfg_scale!r}")
    _check_class_labels(class_labels)
    if n is not None:  # noise, samples and as many reference points: refused before any work
        check_memory(int(n), run.data_info["shape"], copies=3)
    return steps, seeds, None if n is None else int(n)


# ---------------------------------------------------------------------------------------------
# one distance


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


@dataclass
class Metric:
    """How one set of ``n`` samples is scored against ``reference``.

    2D runs (``extractor`` None): the sliced Wasserstein-2 distance to ``reference.points``
    over ``swd_directions`` directions drawn with ``swd_seed``. Image runs: the Frechet
    distance between the ``extractor`` features of the samples and ``reference.stats``
    (features extracted in batches of ``feature_batch``). With ``precision_recall`` also
    improved precision and recall (Kynkaanniemi et al. 2019, ``k = 3``) of the same features.
    ``name`` is the reported metric (``"SWD"``, ``"FD (classifier)"``, ``"FID"``, ...),
    ``kind`` the features' kind and ``info`` the extractor's provenance for the table's meta.
    With ``on_board`` (the checkerboard toy) also the fraction of samples on the board's filled
    squares (:func:`~shortcut_mini.metrics.toy2d_on_board`), which SWD can hide.
    """

    name: str
    kind: str
    reference: Reference
    n: int
    extractor: Callable | None = None
    feature_batch: int = 500
    precision_recall: bool = False
    swd_directions: int = SWD_DIRECTIONS
    swd_seed: int = SWD_SEED
    on_board: bool = False
    info: dict = field(default_factory=dict)

    def score(self, x: torch.Tensor) -> dict[str, float]:
        """``{"distance": ...}`` of samples ``x`` (and ``precision``, ``recall`` if asked)."""
        if self.extractor is None:
            real, fake = self.reference.points, x.reshape(len(x), -1)
            swd = sliced_wasserstein(x, real, self.swd_directions, self.swd_seed)
            out = {"distance": swd}
            if self.on_board:
                out["on_board"] = toy2d_on_board(x)
        else:
            real = self.reference.features
            fake = extract_features(self.extractor, x, self.feature_batch)
            with _blas_threads():
                stats = FeatureStats.from_features(fake)
                out = {"distance": stats.frechet_distance(self.reference.stats)}
        if self.precision_recall:
            pr = _precision_recall(real, fake)
            out.update(precision=pr.precision, recall=pr.recall)
        return out


def swd_metric(
    reference: Reference,
    *,
    n_directions: int = SWD_DIRECTIONS,
    precision_recall: bool = False,
    on_board: bool = False,
) -> Metric:
    """The 2D protocol's metric against held-out ``reference.points``: SWD, ``n = len(points)``
    (and, with ``on_board``, the fraction of samples on the checkerboard's filled squares)."""
    return Metric(
        name=metric_name("swd"),
        kind="swd",
        reference=reference,
        n=reference.n,
        precision_recall=precision_recall,
        swd_directions=n_directions,
        on_board=on_board,
    )


def _classifier_info(extractor, kind: str) -> dict:
    if kind != "classifier":
        return {}
    return {
        "classifier_accuracy": extractor.accuracy,
        "classifier_cache": str(extractor.cache_path),
        **{f"classifier_{k}": extractor.meta.get(k) for k in ("epochs", "seed")},
    }


def _metric_for(
    run, features, reference, n, *, device, precision_recall, feature_kwargs, cache_dir, batch
) -> Metric:
    """The protocol's metric for ``run`` (SWD for 2D, a Frechet distance for images)."""
    if run.data_info["kind"] == "points":
        if not (isinstance(features, str) and features.lower() in ("auto", "swd")):
            raise ValueError(
                f"2D runs are evaluated with the sliced Wasserstein distance; got "
                f"features={features!r} (use 'auto')"
            )
        metric = swd_metric(
            resolve_reference(run, reference, n=n),
            precision_recall=precision_recall,
            on_board=run.config.data == "checkerboard",
        )
        if n is not None and n != metric.n:
            raise ValueError(
                f"the sliced Wasserstein distance compares equal-sized sets: n={n} but the "
                f"reference has {metric.n} points (leave n out to use them all)"
            )
    else:
        extractor, kind = resolve_features(features, run, feature_kwargs, device)
        ref = resolve_reference(
            run,
            reference,
            extractor=extractor,
            feature_kind=kind,
            keep_features=precision_recall,
            cache_dir=cache_dir,
            batch_size=batch,
        )
        metric = Metric(
            name=metric_name(kind),
            kind=kind,
            reference=ref,
            n=min(ref.n, IMAGE_N_CAP) if n is None else n,
            extractor=extractor,
            feature_batch=batch,
            precision_recall=precision_recall,
            info=_classifier_info(extractor, kind),
        )
    if metric.n < 2:
        raise ValueError(
            f"n must be at least 2, got {metric.n}: the reference has {metric.reference.n} "
            "item(s); give a larger reference"
        )
    return metric


# ---------------------------------------------------------------------------------------------
# the sweep


def _labels(run, reference: Reference, n: int, mode: str, seed: int) -> torch.Tensor | None:
    _check_class_labels(mode)
    nc = int(run.data_info.get("num_classes", 0))
    if nc == 0 or mode == "null":
        return None
    gen = torch.Generator().manual_seed(1_000_000 + seed)
    if mode == "uniform" or reference.labels is None:
        return torch.randint(nc, (n,), generator=gen)
    ref = reference.labels
    reps = -(-n // len(ref))  # whole permutations: exact class proportions when n == len(ref)
    idx = torch.cat([torch.randperm(len(ref), generator=gen) for _ in range(reps)])[:n]
    return ref[idx]


def _device(run, use_ema: bool) -> torch.device:
    """The device the sampled weights live on."""
    return next((run.ema if use_ema else run.model).parameters()).device


def _timed_sample(run, n: int, budget: int, **sample_kw) -> tuple[torch.Tensor, float]:
    """``n`` samples at one budget and the wall time to draw them; latent runs are decoded
    (FID is measured on images), inside the timing."""
    device = _device(run, sample_kw.get("use_ema", True))
    t0 = time.perf_counter()
    x = sample(run, n, budget, **sample_kw)
    if run.data_info["kind"] == "latent":
        from .data.latents import decode_samples

        x = decode_samples(run, x, device=device).float().cpu()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return x, time.perf_counter() - t0


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _budget_row(budget: int, metric: Metric, seeds, scores: list[dict], secs: list[float]) -> dict:
    """One row of the table: the seeds' scores at one budget, their mean and spread, timing."""
    dists = [score["distance"] for score in scores]
    sec = float(np.mean(secs))
    row = {
        "steps": budget,
        "metric": metric.name,
        "distance": float(np.mean(dists)),
        "distance_std": _std(dists),
        **{f"distance_seed{s}": float(d) for s, d in zip(seeds, dists)},
        "n_samples": metric.n,
        "n_seeds": len(seeds),
        "sample_seconds": sec,
        "samples_per_second": metric.n / sec if sec > 0 else float("inf"),
        "reference": metric.reference.description,
    }
    extra = ("precision", "recall") if metric.precision_recall else ()
    for key in extra + (("on_board",) if metric.on_board else ()):
        values = [score[key] for score in scores]
        row.update({key: float(np.mean(values)), f"{key}_std": _std(values)})
    return row


def _progress_bar(show: bool, total: int, metric: Metric):
    if not show:
        return contextlib.nullcontext()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"evaluate ({metric.name})", leave=False)


def sweep(
    run,
    metric: Metric,
    steps: Sequence[int],
    seeds: Sequence[int],
    *,
    cfg_scale: float = 1.0,
    class_labels: str = "match",
    use_ema: bool = True,
    batch_size: int = 1024,
    progress: bool = False,
) -> list[dict]:
    """The rows of :func:`evaluate`'s table: ``metric`` of ``run``'s samples at every budget.

    Each seed draws its own noise (``sample(..., seed=s)``: the same noise at every budget) and
    labels; arguments as :func:`evaluate`'s (``steps`` and ``seeds`` lists of ints, unchecked).
    """
    # on a GPU every budget runs the compiled forward pass at the device's precision (bf16, or
    # fp16 below compute capability 8.0), where the device compiles (capability.compile_support);
    # the warm-up (lazy CUDA init, compilation of the full-batch graph: sample pads every batch)
    # keeps it out of the timings
    device = next(run.ema.parameters()).device
    on_gpu = device.type == "cuda"
    compiles = on_gpu and compile_support(device, choose_precision("auto", device)).compile
    kw = dict(cfg_scale=cfg_scale, use_ema=use_ema, batch_size=batch_size)
    kw["compile"] = True if compiles else None
    first = steps[0]  # (a budget the run samples: progressive distillation has only its own)
    sample(budget_weights(run, first), min(metric.n, 8), first, seed=0, **kw)
    labels = {s: _labels(run, metric.reference, metric.n, class_labels, s) for s in seeds}
    rows = []
    with _progress_bar(progress, len(steps) * len(seeds), metric) as bar:
        for budget in steps:
            scores, secs = [], []
            budget_run = budget_weights(run, budget)  # (progressive distillation: its stage)
            for s in seeds:
                x, sec = _timed_sample(budget_run, metric.n, budget, seed=s, y=labels[s], **kw)
                scores.append(metric.score(x))
                secs.append(sec)
                if bar is not None:
                    bar.update(1)
            rows.append(_budget_row(budget, metric, seeds, scores, secs))
    return rows


# ---------------------------------------------------------------------------------------------
# provenance


def _provenance(run, metric: Metric, *, steps, seeds, cfg_scale, class_labels, use_ema, seconds):
    """The table's ``meta``: the metric and reference, the sampling settings, the run, the
    machine and the code (device, torch version, git commit, time)."""
    from .common import device_name, git_commit

    cfg = run.config
    device = _device(run, use_ema)
    meta = {
        "metric": metric.name,
        "features": metric.kind,
        **metric.info,
        "reference": metric.reference.description,
        "n_reference": metric.reference.n,
        "n": metric.n,
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
        "eval_seconds": round(seconds, 3),
    }
    if metric.extractor is None:
        meta.update(swd_directions=metric.swd_directions, swd_seed=metric.swd_seed)
    return meta


# ---------------------------------------------------------------------------------------------
# evaluate


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
        run: a ``shortcut_mini.Run`` (from ``train`` or ``load_run``), or the path of a run
            folder (loaded on the CPU); sampling runs on the device its model lives on.
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

    Raises:
        ValueError: an argument it cannot use (naming it and the fix), before any sampling.

    Returns:
        An :class:`EvalTable` with one row per budget, in the order of ``steps``.
    """
    t_start = time.perf_counter()
    run = as_run(run, "evaluate()")
    steps, seeds, n = _check_arguments(run, steps, n, seeds, batch_size, cfg_scale, class_labels)
    metric = _metric_for(
        run,
        features,
        reference,
        n,
        device=_device(run, use_ema),
        precision_recall=precision_recall,
        feature_kwargs=feature_kwargs,
        cache_dir=cache_dir,
        batch=min(batch_size, 500),
    )
    settings = dict(cfg_scale=cfg_scale, class_labels=class_labels, use_ema=use_ema)
    rows = sweep(run, metric, steps, seeds, batch_size=batch_size, progress=progress, **settings)
    seconds = time.perf_counter() - t_start
    meta = _provenance(run, metric, steps=steps, seeds=seeds, seconds=seconds, **settings)
    return EvalTable(rows=rows, meta=meta)
