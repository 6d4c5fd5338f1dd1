"""Reading the reproduction presets of ``shortcut_mini.profiles.PRESETS``.

A preset names the runs of one reproduction: a base :class:`~shortcut_mini.TrainConfig` (every
field but ``method`` and ``seed``), the methods and training seeds, the step-budget sweep, and the
budgets of the sample grid. One *run* is a (method, seed) pair; its files are named
:func:`run_name` (``shortcut_seed0``) inside the batch folder.
"""

from __future__ import annotations

import copy
from pathlib import Path

from ..config import ConfigError, TrainConfig
from ..profiles import PRESETS

__all__ = ["get_preset", "preset_table", "run_config", "run_name", "eval_settings"]


def get_preset(name: str) -> dict:
    """A deep copy of preset ``name`` (raises ``ValueError`` listing the known names)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def run_name(method: str, seed: int, world_size: int = 1) -> str:
    """File stem of one run inside a batch folder: ``METHOD_seedS``, or ``METHOD_seedS_xW`` for a
    run trained in ``W > 1`` processes (so one- and multi-GPU runs of a seed sit side by side)."""
    return f"{method}_seed{int(seed)}" + (f"_x{int(world_size)}" if world_size > 1 else "")


def run_config(
    preset: str, method: str, seed: int, run_dir: str | Path | None, overrides: dict | None = None
) -> TrainConfig:
    """The :class:`TrainConfig` of one run: the preset's config, ``method``, ``seed``, ``out_dir``
    (so an interrupted run resumes from its last checkpoint) and ``overrides`` (TrainConfig
    fields; unknown names raise :class:`~shortcut_mini.ConfigError`)."""
    base = get_preset(preset)["config"]
    fields = {**base, **(overrides or {}), "method": method, "seed": int(seed)}
    if run_dir is not None:
        fields["out_dir"] = str(run_dir)
    try:
        return TrainConfig.from_dict(fields)
    except TypeError as e:  # a wrongly typed override
        raise ConfigError(f"preset {preset!r}: {e}") from e


def eval_settings(preset: str, eval_overrides: dict | None = None) -> dict:
    """The preset's sweep (``metric``, ``n``, ``steps``, ``seeds``) with ``eval_overrides``."""
    ev = {**get_preset(preset)["eval"], **(eval_overrides or {})}
    unknown = sorted(set(ev) - {"metric", "n", "steps", "seeds"})
    if unknown:
        raise ValueError(f"unknown evaluation setting(s) {unknown}; use metric, n, steps, seeds")
    ev["steps"] = [int(s) for s in ev["steps"]]
    ev["seeds"] = [int(s) for s in ev["seeds"]]
    return ev


def preset_table() -> str:
    """A Markdown table of every preset (data, model, steps x batch, methods, seeds, metric, cost)."""
    lines = [
        "| preset | data | model | steps x batch | lr | methods | seeds | evaluation | cost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in PRESETS.items():
        c, ev = p["config"], p["eval"]
        model = c["model"] + (f" {c['model_overrides']}" if c.get("model_overrides") else "")
        lines.append(
            f"| `{name}` | {c['data']} | {model} | {c['steps']:,} x {c['batch_size']} | "
            f"{c['lr']:g} | {', '.join(p['methods'])} | {', '.join(map(str, p['seeds']))} | "
            f"{ev['metric']}, n={ev['n']:,} | {p['cost']} |"
        )
    return "\n".join(lines)
