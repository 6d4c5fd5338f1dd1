"""Settings that belong to one method: a small dataclass per objective, given as
``TrainConfig.method_args``.

A setting that only one method reads (MeanFlow's time distribution, reflow's number of pairs)
is not a field of ``TrainConfig``: it is a field of that method's settings dataclass, a subclass
of :class:`MethodSettings` that the objective names as its ``settings`` (``Objective.settings``).
A run gives them as ``TrainConfig(method="meanflow", method_args={"meanflow_ratio": 0.5})``,
on the command line as ``--method-arg meanflow_ratio=0.5`` and in a batch as ``reproduce --set
method_args.meanflow_ratio=0.5``. :meth:`MethodSettings.read` reads each value as its field's
declared type (``shortcut_mini.fieldtypes``, the reader of every config value) and checks it
(:meth:`MethodSettings.check`).

The settings of the built-in methods live here, beside the base class, so that ``shortcut-mini
train --help`` can describe them without importing torch; a method defined elsewhere (a plug-in,
``shortcut_mini.objectives.register_objective``) declares its own subclass in its own file.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from .errors import UserError
from .fieldtypes import coerce, describe, matches

__all__ = [
    "MEANFLOW_SETTINGS",
    "SHORTCUT_SWITCHES",
    "MeanFlowSettings",
    "MethodSettings",
    "NoSettings",
    "ReflowSettings",
    "SettingError",
    "ShortcutSettings",
    "settings_help",
]


class SettingError(UserError, ValueError):
    """A method setting is unknown or invalid; ``name`` is the setting (None: the mapping)."""

    def __init__(self, name: str | None, message: str):
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class MethodSettings:
    """The settings of one method (none here); subclasses declare theirs as fields with
    defaults, documented in an ``Attributes:`` section (the command line's help), and may
    override :meth:`check` to bound them. ``method`` names the method they belong to."""

    method: ClassVar[str] = ""

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def read(cls, values: Mapping) -> MethodSettings:
        """The settings of ``values`` (names to values or text), the rest at their defaults;
        :class:`SettingError` names an unknown setting or a value that is not its field's type
        or out of its range."""
        if not isinstance(values, Mapping):
            raise SettingError(
                None, f"must be a mapping of setting names to values, not {values!r}"
            )
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise SettingError(
                unknown[0], f"unknown setting(s) {unknown}; valid: {cls.names() or 'none'}"
            )
        hints = typing.get_type_hints(cls)
        out = {}
        for name, value in values.items():
            try:
                out[name] = coerce(value, hints[name])
            except ValueError:
                default = cls.__dataclass_fields__[name].default
                raise SettingError(
                    name, f"{value!r} is not {describe(hints[name])}; give one such as {default}"
                ) from None
        settings = cls(**out)
        for f in dataclasses.fields(settings):
            if not matches(getattr(settings, f.name), hints[f.name]):
                raise SettingError(f.name, f"expected {describe(hints[f.name])}")
        settings.check()
        return settings

    def check(self) -> None:
        """Raise :class:`SettingError` naming the first setting out of its range."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """``{setting: description}`` from the ``Attributes:`` section of the docstring."""
        doc = inspect.cleandoc(cls.__doc__ or "")
        out, name = {}, None
        for line in doc.split("Attributes:", 1)[-1].splitlines() if "Attributes:" in doc else []:
            head, sep, text = line.strip().partition(": ")
            indent = len(line) - len(line.lstrip())
            if sep and indent == 4 and head.isidentifier():
                name = head
                out[name] = text
            elif name and line.strip():
                out[name] += " " + line.strip()
        return {k: v.replace("``", "") for k, v in out.items()}


def check_range(settings: MethodSettings, ranges: dict) -> None:
    """Check ``{name: (lo, hi, closed, words)}``: ``lo <= v < hi`` (``lo < v`` when not
    closed) and finite; :class:`SettingError` says ``must be WORDS``."""
    for name, (lo, hi, closed, words) in ranges.items():
        v = getattr(settings, name)
        if v is None:
            continue
        if not math.isfinite(v):
            raise SettingError(name, f"must be a finite number, got {v!r}")
        if not ((lo <= v if closed else lo < v) and v < hi):
            raise SettingError(name, f"must be {words}, got {v!r}")


@dataclass(frozen=True)
class NoSettings(MethodSettings):
    """A method without settings of its own."""


@dataclass(frozen=True)
class MeanFlowSettings(MethodSettings):
    """MeanFlow's settings (``shortcut_mini.objectives.MeanFlow``; Geng et al., 2025).

    Attributes:
        meanflow_ratio: MeanFlow's share of rows with a jump ``d > 0`` (paper's ImageNet: 0.25).
        meanflow_t_mean: mean of MeanFlow's logit-normal times (paper's convention, 1 = noise).
        meanflow_t_std: standard deviation of that logit-normal.
        meanflow_norm_p: power ``p`` of MeanFlow's adaptive loss weight ``1 / (L + c)^p``.
        meanflow_norm_eps: the constant ``c`` of that weight.
        meanflow_kappa: ``k`` of MeanFlow's guided velocity ``w v + k u_c + (1 - w - k) u_null``
            (the mixing scale of the paper's appendix; 0: its main-text guidance); used when
            guidance_scale > 0.
    """

    method: ClassVar[str] = "meanflow"

    meanflow_ratio: float = 0.25
    meanflow_t_mean: float = -0.4
    meanflow_t_std: float = 1.0
    meanflow_norm_p: float = 1.0
    meanflow_norm_eps: float = 0.01
    meanflow_kappa: float = 0.0

    def check(self) -> None:
        check_range(
            self,
            {
                "meanflow_ratio": (0, 1 + 1e-12, True, "in [0, 1] (paper's ImageNet: 0.25)"),
                "meanflow_t_mean": (-math.inf, math.inf, True, "a finite number"),
                "meanflow_t_std": (0, math.inf, False, "positive (paper's ImageNet: 1.0)"),
                "meanflow_norm_p": (
                    0,
                    math.inf,
                    True,
                    ">= 0 (paper's ImageNet: 1.0; 0: no weighting)",
                ),
                "meanflow_norm_eps": (0, math.inf, False, "positive (paper's ImageNet: 0.01)"),
                "meanflow_kappa": (0, 1, True, "in [0, 1) (0: the paper's main-text guidance)"),
            },
        )


@dataclass(frozen=True)
class ReflowSettings(MethodSettings):
    """Reflow's settings (``shortcut_mini.objectives.Reflow``).

    Attributes:
        reflow_pairs: how many (noise, teacher sample) pairs ``reflow`` generates and trains
            on (None: as many as the training set has examples).
    """

    method: ClassVar[str] = "reflow"

    reflow_pairs: int | None = None

    def check(self) -> None:
        if self.reflow_pairs is not None and self.reflow_pairs < 1:
            raise SettingError(
                "reflow_pairs", f"must be a positive integer (or none), got {self.reflow_pairs!r}"
            )


JUMP_SIZES = ("dyadic", "continuous")
SPLIT_POINTS = ("midpoint", "uniform")
CONTINUOUS_STEP_EMBEDDINGS = ("sin_d", "sin_d_unit")
"""The step-size embeddings that take a step size as a number (``jump_sizes="continuous"``)."""


@dataclass(frozen=True)
class ShortcutSettings(MethodSettings):
    """The shortcut model's switches beyond the paper (``shortcut_mini.objectives.Shortcut``);
    every one is off by default, and off the objective is the paper's Eq. 5 unchanged.

    Attributes:
        ot_pairing: pair each batch's noise with its data by an exact minibatch optimal
            transport assignment (least total squared distance; within each class when
            class-conditional) instead of at random.
        jump_sizes: the jumps the self-consistency rows train: "dyadic" (the paper: the step
            ``2^-l`` from a start ``t`` on its grid) or "continuous" (a step drawn log-uniformly
            in ``(2^-(l+1), 2^-l]`` from a uniform start; needs level_embedding "sin_d" or
            "sin_d_unit", which take the step size as a number).
        split_point: where a trained jump ``[t, t + d]`` is split into the two jumps its target
            is made of: "midpoint" (the paper) or "uniform" (SplitMeanFlow: at ``t + a``,
            ``a = lambda d`` with ``lambda`` uniform in (0, 1); needs jump_sizes "continuous").
        target_ema_decay: none (off), or the decay of a second EMA of the weights that computes
            the self-consistency targets (iSM's twin EMA: 0.95); the run's EMA (ema_decay)
            stays the one that samples. Needs target_weights "online".
    """

    method: ClassVar[str] = "shortcut"

    ot_pairing: bool = False
    jump_sizes: str = "dyadic"
    split_point: str = "midpoint"
    target_ema_decay: float | None = None

    def check(self) -> None:
        for name, valid in (("jump_sizes", JUMP_SIZES), ("split_point", SPLIT_POINTS)):
            if getattr(self, name) not in valid:
                raise SettingError(
                    name, f"must be one of {list(valid)}, got {getattr(self, name)!r}"
                )
        if self.split_point == "uniform" and self.jump_sizes != "continuous":
            raise SettingError(
                "split_point",
                "split_point='uniform' splits a jump into two jumps of any size, and with "
                "jump_sizes='dyadic' no row trains those sizes (only powers of two): set "
                "method_args.jump_sizes='continuous' too (with level_embedding 'sin_d'), or "
                "keep split_point='midpoint'",
            )
        check_range(
            self,
            {"target_ema_decay": (0, 1, True, "in [0, 1) (iSM: 0.95), or none for off")},
        )


_STEP_AS_NUMBER = {"level_embedding": "sin_d"}
SHORTCUT_SWITCHES: dict[str, dict] = {
    "plain": {},
    "OT pairing": {"method_args": {"ot_pairing": True}},
    "step as a number": dict(_STEP_AS_NUMBER),
    "continuous jumps": {**_STEP_AS_NUMBER, "method_args": {"jump_sizes": "continuous"}},
    "SplitMeanFlow split": {
        **_STEP_AS_NUMBER,
        "method_args": {"jump_sizes": "continuous", "split_point": "uniform"},
    },
    "twin EMA 0.95": {"method_args": {"target_ema_decay": 0.95}},
    "EMA targets 0.999": {"target_weights": "ema"},
    "all switches": {
        **_STEP_AS_NUMBER,
        "method_args": {
            "ot_pairing": True,
            "jump_sizes": "continuous",
            "split_point": "uniform",
            "target_ema_decay": 0.95,
        },
    },
}
"""The shortcut objective's switches beyond the paper (``ShortcutSettings``), each alone and
all together, as ``{variant: TrainConfig changes}`` over a plain shortcut config; the variant
group that the 2D switch benchmark and the book's "since the paper" chapter both train; the
``since_paper`` reproduction preset builds its rows from these variants."""


MEANFLOW_SETTINGS = {
    "imagenet": dict(
        meanflow_ratio=0.25,
        meanflow_t_mean=-0.4,
        meanflow_t_std=1.0,
        meanflow_norm_p=1.0,
        meanflow_norm_eps=0.01,
    ),
    "between": dict(
        meanflow_ratio=0.5,
        meanflow_t_mean=-1.2,
        meanflow_t_std=1.5,
        meanflow_norm_p=0.875,
        meanflow_norm_eps=0.003,
    ),
    "cifar10": dict(
        meanflow_ratio=0.75,
        meanflow_t_mean=-2.0,
        meanflow_t_std=2.0,
        meanflow_norm_p=0.75,
        meanflow_norm_eps=1e-3,
    ),
}
"""Named MeanFlow settings (``TrainConfig.method_args`` of a ``meanflow`` run): the paper's ImageNet run (the defaults:
t and r from LN(-0.4, 1)), its CIFAR-10 run (unconditional and small, like this project's data;
the official PyTorch code's CIFAR-10 script draws both times from LN(-2, 2)), and one between
them (the means of the two ratios, time distributions and powers, about the geometric mean of
the two constants ``c``)."""


def settings_help(classes) -> str:
    """One paragraph per settings class of ``classes`` (those with settings): ``method:
    name (default): meaning; ...``, the command line's help of ``--method-arg``."""
    parts = []
    for cls in classes:
        helps, fields = cls.field_help(), dataclasses.fields(cls)
        if not fields:
            continue
        items = [f"{f.name} ({f.default}): {helps.get(f.name, '').rstrip('.')}" for f in fields]
        parts.append(f"{cls.method}: " + "; ".join(items) + ".")
    return " ".join(parts)
