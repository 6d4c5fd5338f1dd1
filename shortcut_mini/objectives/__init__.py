"""Training objectives. Each turns a batch into inputs, targets and a loss; see ``base``.

============================  ===========================  =====================================
name                          class                        paper
============================  ===========================  =====================================
``flow_matching``             ``FlowMatching``             Eq. 2; the ``d = 0`` rows of Eq. 5
``shortcut``                  ``Shortcut``                 Eq. 5 (flow matching + self-consistency)
``diffusion``                 ``Diffusion``                Table 1 baseline: epsilon prediction, DDIM
``consistency_training``      ``ConsistencyTraining``      Table 1 baseline (Song et al., 2023)
``live_reflow``               ``LiveReflow``               Table 1 baseline: flow matching + live reflow
``consistency_distillation``  ``ConsistencyDistillation``  Table 1 baseline; needs a teacher
``progressive_distillation``  ``ProgressiveDistillation``  Table 1 baseline; needs a teacher
``reflow``                    ``Reflow``                   Table 1 baseline; needs a teacher
``meanflow``                  ``MeanFlow``                 Geng et al. (2025): the MeanFlow identity
============================  ===========================  =====================================

Each class inherits :class:`Objective` (the contract, in ``base``), names its sampler
(``sampler``, a key of ``shortcut_mini.samplers.SAMPLERS``) and may declare the step-size
embeddings it can train (``level_embeddings``) and the one it uses when the config names none
(``default_level_embedding``); see :func:`level_embedding_choice`. Settings that only one
method reads are fields of its ``settings`` dataclass (``shortcut_mini.method_settings``),
given as ``TrainConfig.method_args``. A method defined outside the package joins the registry
with one call, :func:`register_objective`. The
methods that need a teacher (``needs_teacher = True``) distil a finished flow-matching run named by
``TrainConfig.teacher``; the hooks the trainer calls on every objective are in ``lifecycle``.
"""

from __future__ import annotations

import inspect

from ..models.embeddings import LEVEL_EMBEDDINGS
from .base import (
    DEFAULT_LEVEL_EMBEDDING,
    Objective,
    ObjectiveOutput,
    TrainingTargets,
    group_diagnostics,
    interpolate,
    regression_loss,
)
from .consistency_distillation import ConsistencyDistillation
from .consistency_training import ConsistencyTraining, consistency_phase, consistency_target
from .diffusion import Diffusion
from .flow_matching import FlowMatching
from .lifecycle import ObjectiveContext, ObjectiveHooks
from .live_reflow import LiveReflow, live_reflow_target
from .meanflow import MEANFLOW_SETTINGS, MeanFlow, meanflow_target
from .progressive_distillation import ProgressiveDistillation
from .reflow import Reflow
from .shortcut import Shortcut, allocate_levels, self_consistency_target

__all__ = [
    "MEANFLOW_SETTINGS",
    "OBJECTIVES",
    "ConsistencyDistillation",
    "ConsistencyTraining",
    "Diffusion",
    "FlowMatching",
    "LiveReflow",
    "MeanFlow",
    "Objective",
    "ObjectiveContext",
    "ObjectiveHooks",
    "ObjectiveOutput",
    "ProgressiveDistillation",
    "Reflow",
    "Shortcut",
    "TrainingTargets",
    "allocate_levels",
    "build_objective",
    "consistency_phase",
    "consistency_target",
    "group_diagnostics",
    "interpolate",
    "level_embedding_choice",
    "live_reflow_target",
    "meanflow_target",
    "objective_arguments",
    "register_objective",
    "regression_loss",
    "self_consistency_target",
]

OBJECTIVES = {
    "flow_matching": FlowMatching,
    "shortcut": Shortcut,
    "diffusion": Diffusion,
    "consistency_training": ConsistencyTraining,
    "live_reflow": LiveReflow,
    "consistency_distillation": ConsistencyDistillation,
    "progressive_distillation": ProgressiveDistillation,
    "reflow": Reflow,
    "meanflow": MeanFlow,
}


def register_objective(cls: type[Objective], *, replace: bool = False) -> type[Objective]:
    """Add the objective class ``cls`` to ``OBJECTIVES`` under ``cls.name`` (usable as a
    class decorator); then ``TrainConfig(method=cls.name)`` trains it, and the API, the command
    line and the reproduction runner train, resume, sample and evaluate it like any built-in.

    ``cls`` inherits :class:`Objective` and declares ``name`` and ``sampler`` (a key of
    ``shortcut_mini.samplers.SAMPLERS``); the fields of its ``settings`` dataclass must be
    keywords of its constructor. A name already registered is refused unless ``replace``.
    """
    if not (isinstance(cls, type) and issubclass(cls, Objective)):
        raise TypeError(f"register_objective takes an Objective subclass, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(
            f"{cls.__name__}: set the class attribute 'name' to the method's name (a Python "
            f"identifier such as 'my_method'), got {name!r}"
        )
    if not isinstance(getattr(cls, "sampler", None), str):
        raise TypeError(
            f"{cls.__name__}: set the class attribute 'sampler' (a key of "
            "shortcut_mini.samplers.SAMPLERS, e.g. 'euler')"
        )
    keywords = set(inspect.signature(cls).parameters)
    missing = [f for f in cls.settings.names() if f not in keywords]
    if missing:
        raise TypeError(
            f"{cls.__name__}: the settings {missing} of {cls.settings.__name__} are not keywords "
            "of its constructor (they would be silently ignored); add them to __init__"
        )
    if name in OBJECTIVES and OBJECTIVES[name] is not cls and not replace:
        raise ValueError(
            f"an objective named {name!r} is already registered ({OBJECTIVES[name].__name__}); "
            "give yours another name, or pass replace=True"
        )
    level_embedding_choice_of(cls)  # its declared embeddings are consistent
    OBJECTIVES[name] = cls
    return cls


def level_embedding_choice(method: str) -> tuple[tuple[str, ...], str]:
    """``(accepted, default)``: the step-size embeddings ``method`` can train and the one it
    uses when ``TrainConfig.level_embedding`` is left out.

    An objective class declares them as ``level_embeddings`` and ``default_level_embedding``
    (MeanFlow: only ``sin_d``, which takes the step size as a number); one that declares
    nothing accepts every embedding of ``shortcut_mini.models.embeddings.LEVEL_EMBEDDINGS`` and
    uses ``DEFAULT_LEVEL_EMBEDDING``.
    """
    if method not in OBJECTIVES:
        raise ValueError(f"unknown method {method!r}; valid names: {sorted(OBJECTIVES)}")
    return level_embedding_choice_of(OBJECTIVES[method])


def level_embedding_choice_of(cls: type) -> tuple[tuple[str, ...], str]:
    """:func:`level_embedding_choice` of the objective class ``cls``."""
    accepted = tuple(getattr(cls, "level_embeddings", LEVEL_EMBEDDINGS))
    default = getattr(cls, "default_level_embedding", DEFAULT_LEVEL_EMBEDDING)
    if default not in accepted:
        raise TypeError(
            f"{cls.__name__}: default_level_embedding {default!r} is not among its "
            f"level_embeddings {list(accepted)}"
        )
    return accepted, default


def objective_arguments() -> dict[str, list[str]]:
    """``{method: [argument, ...]}``: the keywords each objective's class accepts."""
    return {
        name: [p for p in inspect.signature(cls).parameters if p != "self"]
        for name, cls in OBJECTIVES.items()
    }


def build_objective(method: str, **kwargs):
    """Build an objective by name from ``kwargs``, the settings of a run.

    A keyword that belongs to another objective is dropped (the shortcut settings of a
    flow-matching run); one that no objective accepts raises ``ValueError``: it is a typo, and
    dropping it would silently train something else.
    """
    if method not in OBJECTIVES:
        raise ValueError(f"unknown method {method!r}; valid names: {sorted(OBJECTIVES)}")
    known = objective_arguments()
    every = sorted({a for args in known.values() for a in args})
    unknown = sorted(set(kwargs) - set(every))
    if unknown:
        raise ValueError(
            f"build_objective({method!r}): no objective accepts the keyword(s) {unknown}; "
            f"the objectives accept {every}"
        )
    return OBJECTIVES[method](**{k: v for k, v in kwargs.items() if k in known[method]})
