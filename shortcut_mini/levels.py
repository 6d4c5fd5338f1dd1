"""Step-size levels and dyadic step schedules.

A shortcut model is conditioned on the step size ``d`` it will take (paper Sec. 3). As in the
official code, ``d`` is restricted to powers of two: with ``M = 2**K`` base steps, *level* ``l``
(``0 <= l <= K``) means ``d = 2**-l``. Level ``K`` (``d = 1/M``) is also the token the network sees
for flow matching (``d = 0``): the two are treated as the same query, so sampling with ``M`` steps
uses the flow-matching velocity.
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = [
    "DEFAULT_BUDGETS",
    "check_base_steps",
    "num_levels",
    "flow_level",
    "level_to_d",
    "d_to_level",
    "dyadic_schedule",
]


DEFAULT_BUDGETS = (1, 2, 4, 8, 16, 32, 64, 128)
"""The step budgets every table reports, the powers of two from one step to the paper's M = 128."""


def check_base_steps(M: int) -> int:
    """Return ``K = log2(M)``; raise if ``M`` is not a power of two >= 2."""
    if not isinstance(M, int) or M < 2 or M & (M - 1):
        raise ValueError(f"M (base steps) must be a power of two >= 2, got {M!r}; try M=128.")
    return M.bit_length() - 1


def num_levels(M: int) -> int:
    """Number of distinct level tokens, ``log2(M) + 1`` (levels ``0..log2(M)``)."""
    return check_base_steps(M) + 1


def flow_level(M: int) -> int:
    """The level token used for flow-matching rows (``d = 0``), equal to ``log2(M)``."""
    return check_base_steps(M)


def level_to_d(level: int, M: int) -> float:
    """Step size ``2**-level`` of a level."""
    K = check_base_steps(M)
    if not 0 <= level <= K:
        raise ValueError(f"level must be in 0..{K} for M={M}, got {level}")
    return 2.0**-level


def d_to_level(d: float, M: int) -> int:
    """Level of a dyadic step size ``d`` in ``[1/M, 1]``; ``d = 0`` maps to the flow level."""
    K = check_base_steps(M)
    if d == 0:
        return K
    level = -math.log2(d)
    if abs(level - round(level)) > 1e-9 or not 0 <= round(level) <= K:
        raise ValueError(
            f"step size {d} is not a power of two between 1/{M} and 1: a model trained with "
            f"M={M} base steps can only take steps 1, 1/2, ..., 1/{M}."
        )
    return int(round(level))


def dyadic_schedule(steps: int | list[float] | tuple[float, ...], M: int) -> list[float]:
    """Step sizes for a sampling budget.

    ``steps`` is either an explicit list of dyadic step sizes summing to 1, or an int ``N``.
    For ``N`` a power of two the schedule is ``N`` equal steps of ``1/N`` (paper Sec. 3.3).
    For other ``N`` the largest step is halved, repeatedly, until there are ``N`` steps; the
    result is sorted from largest to smallest (big jumps from noise first, finer steps near the
    data). For example ``3 -> [1/2, 1/4, 1/4]`` and ``5 -> [1/4, 1/4, 1/4, 1/8, 1/8]``.
    """
    check_base_steps(M)
    if isinstance(steps, bool):
        raise TypeError("steps must be an int or a list of step sizes, not a bool")
    if isinstance(steps, int):
        if not 1 <= steps <= M:
            raise ValueError(
                f"steps={steps} is outside what this model can do: choose 1 <= steps <= M={M} "
                f"(the smallest step it was trained for is 1/{M})."
            )
        sizes = [Fraction(1)]
        while len(sizes) < steps:
            i = max(range(len(sizes)), key=lambda j: (sizes[j], -j))
            half = sizes[i] / 2
            sizes[i : i + 1] = [half, half]
        return [float(s) for s in sorted(sizes, reverse=True)]
    sizes = [float(s) for s in steps]
    if not sizes:
        raise ValueError("steps must not be empty")
    for d in sizes:
        d_to_level(d, M)
    if abs(sum(sizes) - 1.0) > 1e-9:
        raise ValueError(f"step sizes must sum to 1, got {sum(sizes)} for {sizes}")
    return sizes
