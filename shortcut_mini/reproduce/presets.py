"""Reading the reproduction presets (``PRESETS``, defined in ``preset_specs``).

A preset names the runs of one reproduction: a base :class:`~shortcut_mini.TrainConfig` (every
field but ``method`` and ``seed``), the methods and training seeds, the step-budget sweep, and the
budgets of the sample grid; optionally, per method, its own seeds (``method_seeds``,
:func:`method_seeds`) and its own config fields (``method_config``; the settings of its method
under ``method_args``). One *run* is a (method, seed)
pair; its files are named :func:`run_name` (``shortcut_seed0``) inside the batch folder.

A preset may also list a *row* of its own under a label that is not a method's name (for example
``shortcut_16k``: the shortcut model trained twice as long): its ``method_config`` entry names the
objective with ``method`` (:func:`objective_of`) and the fields in which the row differs. Its runs,
records and table rows go by the label.
"""

from __future__ import annotations

import copy
from pathlib import Path

from ..config import ConfigError, TrainConfig
from ..fieldtypes import coerce
from ..tables import markdown_table
from . import preset_specs

__all__ = [
    "EVAL_KEYS",
    "get_preset",
    "metric_names",
    "method_settings_overrides",
    "method_seeds",
    "objective_of",
    "preset_runs",
    "preset_table",
    "run_config",
    "run_name",
    "eval_settings",
]


def get_preset(name: str) -> dict:
    """A deep copy of preset ``name`` (raises :class:`~shortcut_mini.ConfigError`, a
    ``ValueError``, listing the known names)."""
    presets = preset_specs.PRESETS
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}; known presets: {sorted(presets)}")
    return copy.deepcopy(presets[name])


def method_seeds(preset: str | dict, method: str) -> list[int]:
    """The training seeds of ``method`` in ``preset`` (a name or a preset dict): its entry of
    ``method_seeds``, else the preset's ``seeds``."""
    spec = get_preset(preset) if isinstance(preset, str) else preset
    return [int(s) for s in spec.get("method_seeds", {}).get(method, spec["seeds"])]


def objective_of(preset: str | dict, label: str) -> str:
    """The objective a preset's row ``label`` trains: its ``method_config`` entry's ``method``,
    else the label itself (a method's name)."""
    spec = get_preset(preset) if isinstance(preset, str) else preset
    return str(spec.get("method_config", {}).get(label, {}).get("method", label))


def preset_runs(preset: str | dict) -> list[tuple[str, int]]:
    """Every ``(method, seed)`` run of ``preset`` (each method with its own seeds)."""
    spec = get_preset(preset) if isinstance(preset, str) else preset
    return [(m, s) for m in spec["methods"] for s in method_seeds(spec, m)]


def run_name(method: str, seed: int, world_size: int = 1) -> str:
    """File stem of one run inside a batch folder: ``METHOD_seedS``, or ``METHOD_seedS_xW`` for a
    run trained in ``W > 1`` processes (so one- and multi-GPU runs of a seed sit side by side)."""
    return f"{method}_seed{int(seed)}" + (f"_x{int(world_size)}" if world_size > 1 else "")


def run_config(
    preset: str, method: str, seed: int, run_dir: str | Path | None, overrides: dict | None = None
) -> TrainConfig:
    """The :class:`TrainConfig` of one run: the preset's config, the preset's ``method_config``
    of ``method`` (a method or a row's label), the objective (:func:`objective_of`), ``seed``, ``out_dir`` (so an interrupted run resumes from its last
    checkpoint) and ``overrides`` (TrainConfig fields, values or text as ``--set`` gives them,
    read as each field's type; unknown names and bad values raise
    :class:`~shortcut_mini.ConfigError`).

    Method settings (``method_args``) merge setting by setting: the preset's, the row's, then
    those of ``overrides`` (``method_args.NAME`` keys, or a ``method_args`` mapping) that the
    run's method has; a batch's ``--set method_args.meanflow_ratio=0.5`` reaches its MeanFlow
    runs and leaves its shortcut runs alone (``method_settings_overrides``)."""
    from ..objectives import OBJECTIVES

    spec = get_preset(preset)
    own = {k: v for k, v in spec.get("method_config", {}).get(method, {}).items() if k != "method"}
    objective = objective_of(spec, method)
    try:
        seed = coerce(seed, int)
    except ValueError:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r} (e.g. -p seed 0)") from None
    plain, given = method_settings_overrides(overrides or {})
    # a batch's setting reaches the runs whose method has it (the batch checks that one has)
    mine = OBJECTIVES[objective].settings.names() if objective in OBJECTIVES else []
    given = {k: v for k, v in given.items() if k in mine}
    method_args = {**spec["config"].get("method_args", {}), **own.get("method_args", {}), **given}
    fields = {**spec["config"], **own, **plain, "method": objective, "seed": seed}
    if method_args:
        fields["method_args"] = method_args
    if run_dir is not None:
        fields["out_dir"] = str(run_dir)
    return TrainConfig.from_dict(fields)


def method_settings_overrides(overrides: dict) -> tuple[dict, dict]:
    """``(fields, settings)``: ``overrides`` split into TrainConfig fields and method settings,
    given as ``method_args.NAME`` (``--set method_args.meanflow_ratio=0.5``) or as a
    ``method_args`` mapping (or its JSON text)."""
    fields, settings = {}, {}
    for key, value in overrides.items():
        if key == "method_args":
            try:
                settings.update(coerce(value, dict))
            except ValueError:
                raise ConfigError(
                    f"TrainConfig.method_args: {value!r} is not a JSON object; give one such as "
                    '{"meanflow_ratio": 0.5}, or one setting as method_args.meanflow_ratio=0.5'
                ) from None
        elif key.startswith("method_args."):
            settings[key.removeprefix("method_args.")] = value
        else:
            fields[key] = value
    return fields, settings


EVAL_KEYS = ("metric", "n", "steps", "seeds")


def metric_names() -> tuple[str, ...]:
    """The evaluation metrics a preset may name: ``auto`` and every feature kind with its
    aliases (``shortcut_mini.metrics.features.FEATURE_KINDS``)."""
    from ..metrics.features import FEATURE_KINDS

    return ("auto", *(n for k, e in FEATURE_KINDS.items() for n in (k, *e.aliases)))


def eval_settings(preset: str, eval_overrides: dict | None = None, *, M: int | None = None) -> dict:
    """The preset's sweep (``metric``, ``n``, ``steps``, ``seeds``) with ``eval_overrides``
    (values or text such as ``"1,4,128"``), checked: a :class:`~shortcut_mini.ConfigError` names
    the bad setting (``steps`` above ``M``, the run's base steps, included)."""
    ev = {**get_preset(preset)["eval"], **(eval_overrides or {})}
    unknown = sorted(set(ev) - set(EVAL_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown evaluation setting(s) {unknown}; use {', '.join(EVAL_KEYS)} "
            "(e.g. --eval-set n=1000)"
        )
    out = {
        "metric": ev["metric"],
        "n": _eval_ints("n", ev["n"], single=True)[0],
        "steps": _eval_ints("steps", ev["steps"]),
        "seeds": _eval_ints("seeds", ev["seeds"], minimum=0),
    }
    if out["metric"] not in metric_names():
        raise ConfigError(
            f"evaluation setting metric={out['metric']!r} is unknown; use one of {list(metric_names())}"
        )
    if M is not None and max(out["steps"]) > M:
        raise ConfigError(
            f"evaluation setting steps={out['steps']} goes above M={M}, the run's base steps; "
            f"use budgets from 1 to {M}"
        )
    return out


def _eval_ints(key: str, value, *, single: bool = False, minimum: int = 1) -> list[int]:
    """``value`` (an int, a list, or text ``"1,4,128"`` / ``"[1, 4]"``) as a list of ints."""
    items = value
    if isinstance(value, str):
        items = [v for v in value.strip("[]() ").split(",") if v.strip()]
    elif not isinstance(value, (list, tuple)):
        items = [value]
    try:
        ints = [coerce(v, int) for v in items]
    except ValueError:
        ints = []
    if not ints or (single and len(ints) != 1) or min(ints) < minimum:
        what = "an integer" if single else "a list of integers"
        example = {"n": "n=1000", "steps": "steps=1,4,128", "seeds": "seeds=0,1"}[key]
        raise ConfigError(
            f"evaluation setting {key}={value} must be {what} >= {minimum} (e.g. --eval-set "
            f"{example})"
        )
    return ints


def preset_table(cost: bool = True) -> str:
    """A Markdown table of every preset (data, model, steps x batch, methods, seeds, metric, cost).

    ``cost=False`` leaves out the cost column, whose notes run to several sentences (a page that
    shows the costs in a table of its own uses it).
    """
    head = ["preset", "data", "model", "steps x batch", "lr", "methods", "seeds", "evaluation"]
    rows = []
    for name, p in preset_specs.PRESETS.items():
        c, ev = p["config"], p["eval"]
        changed = c.get("model_overrides") or {}
        model = c["model"] + (
            f" ({', '.join(f'{k} {v}' for k, v in changed.items())})" if changed else ""
        )
        rows.append(
            [f"`{name}`", c["data"], model, f"{c['steps']:,} x {c['batch_size']}", f"{c['lr']:g}"]
            + [_methods_text(p["methods"]), _seeds_text(p), f"{ev['metric']}, n={ev['n']:,}"]
            + ([p["cost"]] if cost else [])
        )
    return markdown_table(head + (["cost"] if cost else []), rows)


def _methods_text(methods) -> str:
    """The methods of a preset; every built-in method in a few words (``table1``: all 10 methods
    and shortcut_16k), so that its row stays a line or two tall."""
    every = preset_specs.TABLE1_METHODS
    if set(every) <= set(methods):
        extra = [m for m in methods if m not in every]
        return f"all {len(every)} methods" + (f" and {', '.join(extra)}" if extra else "")
    return ", ".join(methods)


def _seeds_text(spec: dict) -> str:
    """``0, 1`` or, with per-method seeds, ``0, 1 (flow_matching, shortcut); 0 (the others)``."""
    groups: dict[tuple, list[str]] = {}
    for method in spec["methods"]:
        groups.setdefault(tuple(method_seeds(spec, method)), []).append(method)
    if len(groups) == 1:
        return ", ".join(map(str, next(iter(groups))))
    *named, (last, _) = sorted(groups.items(), key=lambda g: len(g[1]))
    parts = [f"{', '.join(map(str, s))} ({', '.join(ms)})" for s, ms in named]
    return "; ".join([*parts, f"{', '.join(map(str, last))} (the others)"])
