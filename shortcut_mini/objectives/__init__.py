"""Training objectives. Each turns a batch into inputs, targets and a loss; see ``base``.

=================  ================  ========================================
name               class             paper
=================  ================  ========================================
``flow_matching``  ``FlowMatching``  Eq. 2; the ``d = 0`` rows of Eq. 5
``shortcut``       ``Shortcut``      Eq. 5 (flow matching + self-consistency)
=================  ================  ========================================
"""

from __future__ import annotations

from .base import ObjectiveOutput, TrainingTargets, interpolate, regression_loss
from .flow_matching import FlowMatching
from .shortcut import Shortcut, allocate_levels, self_consistency_target

__all__ = [
    "OBJECTIVES",
    "FlowMatching",
    "ObjectiveOutput",
    "Shortcut",
    "TrainingTargets",
    "allocate_levels",
    "build_objective",
    "interpolate",
    "regression_loss",
    "self_consistency_target",
]

OBJECTIVES = {"flow_matching": FlowMatching, "shortcut": Shortcut}


def build_objective(method: str, **kwargs):
    """Build an objective by name; ``kwargs`` the class's arguments (unknown ones are dropped)."""
    if method not in OBJECTIVES:
        raise ValueError(f"unknown method {method!r}; valid names: {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[method]
    import inspect

    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})
