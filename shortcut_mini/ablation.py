"""Small ablations: train variants of one config over seeds, tabulate the distance per step budget.

An ablation *group* varies one design choice of :ref:`the book's design notes <design-decisions>` (the fraction ``k`` of
self-consistency rows, EMA or online targets, the level embedding, discrete ``t``, weight
decay); each *variant* of a group is a dict of :class:`~shortcut_mini.TrainConfig` fields that
replace the base config's. Variants with the same resulting config (e.g. the default variant of
every group) are trained once per seed and shared between groups.

For 2D toys every trained run is sampled from its EMA weights at each step budget with the same
noise (``noise_seed``) and compared with held-out points of the toy (:ref:`the book's design notes <design-evaluation>`: the
sliced Wasserstein distance, 4,096 samples against 4,096 held-out points), by the sweep of
:func:`~shortcut_mini.evaluate.evaluate`. The result holds one
record per (group, variant, seed, budget) and reduces them to mean and standard deviation over
training seeds (``ddof=1``).

Example::

    from shortcut_mini import TrainConfig
    from shortcut_mini.ablation import run_ablation

    base = TrainConfig(data="checkerboard", model="mlp-small", steps=1000, progress=False)
    groups = {"fraction k": {"1/8": {"bootstrap_fraction": 0.125}, "1/4": {}}}
    result = run_ablation(base, groups, seeds=(0, 1, 2))
    print(result.to_markdown())

:func:`ablation_records` finds ablations in the run records of the reproduction tooling
(``book/results/*.json``, schema ``shortcut_mini/reproduce/results.schema.json``): records of
one preset and method whose configs differ in one of :data:`ABLATION_FIELDS`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import TrainConfig, trained_settings
from .data.toy2d import TOY2D
from .evaluate import swd_metric, sweep
from .method_settings import SHORTCUT_SWITCHES
from .reference import held_out_points
from .tables import markdown_table
from .train import train

__all__ = [
    "ABLATION_FIELDS",
    "SHORTCUT_SWITCHES",
    "SWITCH_CONTROLS",
    "AblationResult",
    "ablation_records",
    "run_ablation",
    "run_switch_ablation",
    "plot_ablation",
]

ABLATION_FIELDS = (
    "bootstrap_fraction",
    "target_weights",
    "level_embedding",
    "t_sampling",
    "weight_decay",
)
"""The config fields whose effect the design-choices chapter measures."""

SWITCH_CONTROLS = ("step as a number", "EMA targets 0.999")
"""Variants of :data:`~shortcut_mini.method_settings.SHORTCUT_SWITCHES` that are controls, not switches: "step as a number"
changes only the step-size embedding (``sin_d``), which continuous jumps and the split need, so
their effect reads against it as well as against "plain"; "EMA targets 0.999" is the official
code's choice, the far end of what the twin EMA (0.95) moves to from plain's online targets."""


def _config_key(cfg: TrainConfig) -> str:
    return json.dumps(cfg.to_dict(), sort_keys=True, default=str)


@dataclass
class AblationResult:
    """Records ``{"group", "variant", "seed", "steps", "swd"}`` of an ablation, and its timing.

    ``train_seconds[(group, variant, seed)]`` is the training wall time of that run (a run
    shared by several groups appears under each of them).
    """

    groups: dict[str, list[str]]
    steps: list[int]
    seeds: list[int]
    records: list[dict] = field(default_factory=list)
    train_seconds: dict[tuple[str, str, int], float] = field(default_factory=dict)
    n_runs: int = 0
    wall_seconds: float = 0.0
    metric: str = "SWD"

    def values(self, group: str, variant: str, steps: int, value: str = "swd") -> list[float]:
        """The distance (or ``value="on_board"``) of each training seed (order of ``seeds``)."""
        return [
            r[value]
            for r in self.records
            if r["group"] == group and r["variant"] == variant and r["steps"] == steps
        ]

    def mean_std(
        self, group: str, variant: str, steps: int, value: str = "swd"
    ) -> tuple[float, float]:
        """Mean and standard deviation (``ddof=1``; ``nan`` for one seed) over seeds."""
        v = self.values(group, variant, steps, value)
        if not v:
            raise KeyError(f"no records for ({group!r}, {variant!r}, steps={steps})")
        std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
        return float(np.mean(v)), std

    def mean(self, group: str, variant: str, steps: int) -> float:
        return self.mean_std(group, variant, steps)[0]

    def rows(self, value: str = "swd") -> list[dict]:
        """One dict per (group, variant): ``{"group", "variant", steps: (mean, std), ...}``."""
        out = []
        for group, variants in self.groups.items():
            for variant in variants:
                row = {"group": group, "variant": variant}
                row.update({s: self.mean_std(group, variant, s, value) for s in self.steps})
                out.append(row)
        return out

    def compare(
        self, group: str, baseline: str, steps: int, z: float = 2.0, value: str = "swd"
    ) -> list[dict]:
        """Each other variant of ``group`` against ``baseline`` at one step budget.

        Returns dicts ``{"variant", "diff", "se", "verdict"}``: ``diff`` is the difference of
        means (variant minus baseline), ``se`` the standard error of that difference,
        ``sqrt(sd_a^2 / n_a + sd_b^2 / n_b)``, and ``verdict`` is ``"better"`` or ``"worse"``
        when ``|diff| > z * se``, else ``"within seed noise"``. With ``value="swd"`` (a
        distance) a positive ``diff`` is *worse*; with ``value="on_board"`` (a fraction on the
        board) it is *better*. With three seeds this is a rough screen, not a significance
        test: it flags what the reader should look at, nothing more.
        """
        if baseline not in self.groups.get(group, []):
            raise KeyError(f"{baseline!r} is not a variant of group {group!r}")
        base_v = self.values(group, baseline, steps, value)
        higher_is_better = value == "on_board"
        out = []
        for variant in self.groups[group]:
            if variant == baseline:
                continue
            v = self.values(group, variant, steps, value)
            diff = float(np.mean(v) - np.mean(base_v))
            var = sum(np.var(x, ddof=1) / len(x) for x in (v, base_v) if len(x) > 1)
            se = float(math.sqrt(var))
            verdict = "within seed noise"
            if abs(diff) > z * se:
                verdict = "worse" if (diff > 0) != higher_is_better else "better"
            out.append({"variant": variant, "diff": diff, "se": se, "verdict": verdict})
        return out

    def to_markdown(
        self,
        group: str | None = None,
        digits: int = 3,
        steps: Sequence[int] | None = None,
        value: str = "swd",
    ) -> str:
        """A Markdown table: one row per variant, ``mean ± std`` over seeds per step budget.

        ``group`` keeps one group's rows; ``steps`` keeps some budgets (default: all);
        ``value="on_board"`` tabulates the fraction of samples on the checkerboard instead.
        """
        steps = list(self.steps if steps is None else steps)
        name = self.metric if value == "swd" else "on the board"
        head = ["group", "variant"] + [f"{name}, {s} step{'s' * (s > 1)}" for s in steps]
        rows = []
        for row in self.rows(value):
            if group is not None and row["group"] != group:
                continue
            cells = [row["group"], row["variant"]]
            for s in steps:
                m, sd = row[s]
                cells.append(
                    f"{m:.{digits}f} ± {sd:.{digits}f}" if math.isfinite(sd) else f"{m:.{digits}f}"
                )
            rows.append(cells)
        return markdown_table(head, rows)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def to_dict(self) -> dict:
        return {
            "groups": self.groups,
            "steps": self.steps,
            "seeds": self.seeds,
            "metric": self.metric,
            "records": self.records,
            "n_runs": self.n_runs,
            "wall_seconds": self.wall_seconds,
        }


def _check_ablation(base: TrainConfig, groups, seeds, steps) -> tuple[list[int], list[int]]:
    seeds, steps = [int(s) for s in seeds], [int(s) for s in steps]
    if not seeds or not steps or not groups:
        raise ValueError("run_ablation needs at least one group, one seed and one step budget")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    if base.data not in TOY2D:
        raise ValueError(
            f"run_ablation measures 2D toys with the sliced Wasserstein distance; {base.data!r} "
            "is an image dataset (image ablations come from GPU run records: ablation_records)"
        )
    return seeds, steps


def _train_and_measure(cfg: TrainConfig, metric, steps: list[int], noise_seed: int):
    """Train ``cfg``; ``({budget: {"swd": ..., "on_board": ...}}, train_seconds)`` from
    :func:`evaluate`'s sweep (``on_board`` only on the checkerboard toy)."""
    run = train(cfg)
    rows = sweep(run, metric, steps, [noise_seed])
    scores = {
        row["steps"]: {"swd": row["distance"], **{k: row[k] for k in ("on_board",) if k in row}}
        for row in rows
    }
    return scores, run.train_seconds


def run_ablation(
    base: TrainConfig,
    groups: Mapping[str, Mapping[str, Mapping]],
    seeds: Sequence[int] = (0, 1, 2),
    steps: Sequence[int] = (1, 4, 128),
    n_eval: int = 4096,
    *,
    eval_seed: int = 0,
    noise_seed: int = 12_345,
    n_directions: int = 512,
    log: Callable[[str], None] | None = None,
) -> AblationResult:
    """Train every variant of every group at every seed (shared configs once) and measure it.

    Every run is measured by the sweep of :func:`~shortcut_mini.evaluate.evaluate`
    (:func:`~shortcut_mini.evaluate.sweep`): a run of training seed ``eval_seed`` gets the
    numbers ``evaluate(run, steps, n=n_eval, seeds=(noise_seed,))`` reports.

    Args:
        base: the config every variant starts from (a 2D toy; ``seed`` is replaced per run).
        groups: ``{group: {variant: {field: value, ...}}}``; an empty dict is the base config.
        seeds: training seeds (model init, data, noise, t and levels); >= 3 for a spread.
        steps: sampling step budgets.
        n_eval: samples per budget, compared with as many held-out points of ``base.data``.
        eval_seed: the held-out points are the toy's test split for this training seed, the
            same for every run (disjoint from every run's training points).
        noise_seed: seed of the sampling noise, the same for every run (common random numbers:
            differences between variants are not differences of noise).
        n_directions: directions of the sliced Wasserstein distance.
        log: called with a one-line summary after each trained run (e.g. ``print``).

    Returns:
        An :class:`AblationResult`.
    """
    t_start = time.perf_counter()
    seeds, steps = _check_ablation(base, groups, seeds, steps)
    metric = swd_metric(
        held_out_points(base.data, n_eval, eval_seed),
        n_directions=n_directions,
        on_board=base.data == "checkerboard",
    )
    result = AblationResult(
        groups={g: list(v) for g, v in groups.items()}, steps=steps, seeds=seeds
    )
    cache: dict[tuple[str, int], tuple[dict[int, float], float]] = {}
    for seed in seeds:
        for group, variants in groups.items():
            for variant, changes in variants.items():
                cfg = base.replace(**dict(changes), seed=seed)
                key = (_config_key(cfg), seed)
                if key not in cache:
                    cache[key] = _train_and_measure(cfg, metric, steps, noise_seed)
                    result.n_runs += 1
                    if log is not None:
                        shown = "  ".join(f"{s}:{d['swd']:.3f}" for s, d in cache[key][0].items())
                        log(
                            f"seed {seed}  {group:>16s} = {variant:<16s} "
                            f"{cache[key][1]:5.1f} s   {result.metric} {shown}"
                        )
                dist, seconds = cache[key]
                result.train_seconds[(group, variant, seed)] = seconds
                result.records += [
                    {"group": group, "variant": variant, "seed": seed, "steps": s, **dist[s]}
                    for s in steps
                ]
    result.wall_seconds = time.perf_counter() - t_start
    return result


def run_switch_ablation(
    base: TrainConfig,
    seeds: Sequence[int] = (0, 1, 2),
    steps: Sequence[int] = (1, 4, 128),
    n_eval: int = 4096,
    *,
    variants: Sequence[str] | None = None,
    **kwargs,
) -> AblationResult:
    """:func:`run_ablation` of the group ``"switch"``: the variants of :data:`~shortcut_mini.method_settings.SHORTCUT_SWITCHES`
    (``variants`` keeps some of them, by name, "plain" always first) over ``base``, a plain
    shortcut config of a 2D toy; ``kwargs`` go to :func:`run_ablation`."""
    if base.method != "shortcut":
        raise ValueError(f"the switches belong to the shortcut objective, not {base.method!r}")
    names = list(SHORTCUT_SWITCHES) if variants is None else list(variants)
    unknown = sorted(set(names) - set(SHORTCUT_SWITCHES))
    if unknown:
        raise ValueError(f"unknown switch variant(s) {unknown}; known: {list(SHORTCUT_SWITCHES)}")
    names = ["plain"] + [n for n in names if n != "plain"]
    group = {n: SHORTCUT_SWITCHES[n] for n in names}
    return run_ablation(base, {"switch": group}, seeds=seeds, steps=steps, n_eval=n_eval, **kwargs)


def plot_ablation(
    result: AblationResult,
    steps: Sequence[int] | None = None,
    ncols: int | None = None,
    sharey: bool = False,
):
    """One panel per group: bars of the mean distance (error bars: std over seeds) per budget.

    Each training seed is a black dot on its bar; ``ncols`` panels per row (default: all in
    one row); each panel has its own y scale unless ``sharey``. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    steps = list(result.steps if steps is None else steps)
    names = list(result.groups)
    ncols = len(names) if ncols is None else max(1, min(ncols, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig, grid = plt.subplots(
        nrows, ncols, figsize=(3.4 * ncols, 3.3 * nrows), sharey=sharey, squeeze=False
    )
    axes = list(grid.flat)
    for ax in axes[len(names) :]:
        ax.axis("off")
    width = 0.8 / len(steps)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, group in zip(axes, names):
        variants = result.groups[group]
        for j, s in enumerate(steps):
            xs = np.arange(len(variants)) + (j - (len(steps) - 1) / 2) * width
            ms = [result.mean_std(group, v, s) for v in variants]
            ax.bar(
                xs,
                [m for m, _ in ms],
                width,
                yerr=[0 if not math.isfinite(sd) else sd for _, sd in ms],
                color=colors[j % len(colors)],
                alpha=0.75,
                capsize=2,
                label=f"{s} step{'s' * (s > 1)}",
            )
            for x, v in zip(xs, variants):
                vals = result.values(group, v, s)
                ax.plot([x] * len(vals), vals, "k.", ms=3)
        ax.set_xticks(np.arange(len(variants)))
        ax.set_xticklabels(variants, rotation=20, ha="right", fontsize=8)
        ax.set_title(group, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for row in grid:
        row[0].set_ylabel(f"{result.metric} (lower is better)")
        for ax in row:
            ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def ablation_records(folder: str | Path) -> list[dict]:
    """Ablations among the reproduction records (``*.json``, searched recursively) of ``folder``.

    Records are grouped by ``(preset, method)``; a group whose configs differ in one or more of
    :data:`ABLATION_FIELDS` and in nothing else that it trained
    (:func:`~shortcut_mini.config.trained_settings`: not seeds or folders) is an ablation; a group that
    also differs elsewhere (``method_args``, say) would credit those changes to the fields shown,
    and is left out. Each returned dict has ``preset``, ``method``, ``fields`` (the varying
    fields) and ``rows``: one per record, ``{"run", "seed", **varying values, "steps": {budget:
    value}, "distance", "device"}``, ``run`` being the record's row name in its preset.
    Files that are not records (no ``schema_version``/``config``/``evaluation``) are skipped. An
    empty list means there is no ablation to show.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    by_key: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(folder.rglob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(rec, dict) or not {"schema_version", "config", "evaluation"} <= set(rec):
            continue
        key = (str(rec.get("preset", "?")), str(rec.get("config", {}).get("method", "?")))
        by_key.setdefault(key, []).append(rec)
    out = []
    for (preset, method), recs in sorted(by_key.items()):
        settings = [trained_settings(r["config"]) for r in recs]
        varying = {
            f
            for f in set().union(*settings)
            if len({json.dumps(c.get(f), default=str, sort_keys=True) for c in settings}) > 1
        }
        fields = [f for f in ABLATION_FIELDS if f in varying]
        if not fields or not varying <= set(ABLATION_FIELDS):
            continue
        rows = []
        for r, trained in zip(recs, settings):
            ev = r.get("evaluation", [])
            rows.append(
                {
                    "run": r.get("method", "?"),
                    "seed": r.get("seed"),
                    **{f: trained.get(f) for f in fields},  # defaults filled in
                    "steps": {int(e["steps"]): float(e["value"]) for e in ev},
                    "distance": ev[0].get("distance", "?") if ev else "?",
                    "device": (r.get("device") or {}).get("name", "?"),
                }
            )
        out.append({"preset": preset, "method": method, "fields": fields, "rows": rows})
    return out
