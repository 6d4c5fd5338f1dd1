"""Figures of the book: quality versus step budget, and samples per step budget.

The functions return :class:`matplotlib.figure.Figure` objects built without ``pyplot`` (no
global state, no figure left open; Jupyter shows a returned figure once). :func:`save_figure`
writes one atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .common import atomic_write_bytes

__all__ = ["plot_quality_vs_steps", "plot_sample_grid", "save_figure"]


def _new_figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def plot_quality_vs_steps(
    tables,
    ax=None,
    *,
    title: str | None = None,
    logy: bool = False,
    markers: Sequence[str] = ("o", "s", "^", "D", "v", "P", "X", "*"),
):
    """Distance versus step budget for one or several runs on one axis.

    Args:
        tables: ``{label: EvalTable}`` (one line per run), or a single ``EvalTable`` (labelled by
            its method).
        ax: draw into this matplotlib axis; default a new figure.
        title: axis title.
        logy: logarithmic y axis.

    The x axis is logarithmic in base 2 with a tick at every budget; error bars are the standard
    deviation over seeds (none for a single seed). Returns the figure.
    """
    from matplotlib.ticker import FixedLocator, NullLocator

    from .evaluate import EvalTable

    if isinstance(tables, EvalTable):
        tables = {tables.meta.get("method", "run"): tables}
    if not isinstance(tables, Mapping) or not tables:
        raise ValueError("tables must be a non-empty {label: EvalTable} mapping or an EvalTable")
    if ax is None:
        fig = _new_figure((5.5, 3.8))
        ax = fig.add_subplot()
    fig = ax.figure
    metrics, budgets = [], set()
    for i, (label, table) in enumerate(tables.items()):
        steps = table.steps
        budgets.update(steps)
        y = table.column("distance")
        err = [0.0 if not math.isfinite(e) else e for e in table.column("distance_std")]
        ax.errorbar(
            steps,
            y,
            yerr=err if any(err) else None,
            marker=markers[i % len(markers)],
            markersize=4,
            capsize=3,
            label=str(label),
        )
        if table.metric not in metrics:
            metrics.append(table.metric)
    ax.set_xscale("log", base=2)
    ticks = sorted(budgets)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(t) for t in ticks])
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel(" / ".join(metrics) + " (lower is better)")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def _image_grid(x: torch.Tensor, nrow: int):
    from torchvision.utils import make_grid

    grid = make_grid((x.float() + 1) / 2, nrow=nrow, padding=1, pad_value=1.0)
    return grid.permute(1, 2, 0).clamp(0, 1).numpy()


def plot_sample_grid(
    run,
    steps: Sequence[int] = (1, 2, 4, 128),
    n: int | None = None,
    seed: int = 0,
    *,
    y: torch.Tensor | int | None = None,
    cfg_scale: float = 1.0,
    reference: torch.Tensor | None = None,
    panel_size: float = 2.6,
    name: str | None = None,
):
    """Samples of ``run`` from the same noise at each step budget, one panel per budget.

    Image runs: an image grid per budget (``n`` default 64; for class-conditional runs the
    labels default to ``arange(n) % num_classes`` with one column per class). 2D runs: a scatter
    plot per budget (``n`` default 2,048), plus a leading grey "data" panel if ``reference``
    points are given. A progressive-distillation run samples each budget with that stage's
    student (:func:`~shortcut_mini.budget_runs.budget_weights`). ``seed`` seeds the noise; the
    title names the run: ``name`` (default: its method), model and training seed. Returns the figure
    (one axis per panel).
    """
    from .api import sample
    from .budget_runs import budget_weights

    kind = run.data_info["kind"]
    nc = int(run.data_info.get("num_classes", 0))
    steps = [int(s) for s in steps]
    if kind == "image":
        n = 64 if n is None else int(n)
        nrow = math.ceil(math.sqrt(n))
        if y is None and nc:
            y, nrow = torch.arange(n) % nc, nc
    else:
        n = 2048 if n is None else int(n)
    samples = {
        s: sample(budget_weights(run, s), n, s, seed=seed, y=y, cfg_scale=cfg_scale) for s in steps
    }

    panels = ([("data", reference)] if (kind != "image" and reference is not None) else []) + [
        (f"{s} step{'s' if s != 1 else ''}", samples[s]) for s in steps
    ]
    aspect = 1.0
    if kind == "image":  # height / width of one image grid
        aspect = math.ceil(n / nrow) / nrow
    fig = _new_figure((panel_size * len(panels), panel_size * aspect + 0.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    if kind == "image":
        gray = run.data_info["shape"][0] == 1
        for ax, (panel, x) in zip(axes, panels):
            img = _image_grid(x, nrow)
            ax.imshow(img[..., 0] if gray else img, cmap="gray" if gray else None, vmin=0, vmax=1)
            ax.set_title(panel)
            ax.axis("off")
    else:
        ref_pts = reference if reference is not None else samples[steps[-1]]
        ref_pts = torch.as_tensor(ref_pts).float()
        lo = torch.quantile(ref_pts, 0.005, dim=0)
        hi = torch.quantile(ref_pts, 0.995, dim=0)
        pad = 0.1 * (hi - lo)
        lo, hi = (lo - pad).tolist(), (hi + pad).tolist()
        for ax, (panel, x) in zip(axes, panels):
            x = torch.as_tensor(x).float()
            ax.scatter(x[:, 0], x[:, 1], s=1, c="gray" if panel == "data" else None, alpha=0.6)
            ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xticks=[], yticks=[])
            ax.set_aspect("equal")
            ax.set_title(panel)
    name = name or run.config.method.replace("_", " ")
    fig.suptitle(f"{name}, {run.config.model}, training seed {run.config.seed}")
    return fig


def save_figure(fig, path: str | Path, dpi: int = 120, **kwargs) -> Path:
    """Write ``fig`` to ``path`` atomically (format from the suffix, e.g. ``.png``, ``.pdf``)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, **kwargs)
    atomic_write_bytes(path, buf.getvalue())
    return path
