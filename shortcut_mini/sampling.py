"""Sampling: Euler steps along the learned shortcuts, for any dyadic step budget (paper Sec. 3.3).

With a schedule of step sizes ``d_0, d_1, ...`` summing to 1 (``N`` equal steps ``1/N`` for a
budget ``N`` that is a power of two), starting from noise at ``t = 0``::

    x <- x + d_i * s(x, t_i, d_i),   t_{i+1} = t_i + d_i.

A shortcut model is queried with the level of each step; a flow-matching model always with its
``d = 0`` token (it was never trained on any other). Classifier-free guidance combines the
conditional and unconditional velocities as ``v_u + w (v_c - v_u)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .levels import d_to_level, dyadic_schedule, flow_level

__all__ = ["euler_sample", "SampleResult"]


@dataclass
class SampleResult:
    samples: torch.Tensor
    trajectory: list[torch.Tensor] | None
    schedule: list[float]


@torch.no_grad()
def euler_sample(
    model: nn.Module,
    noise: torch.Tensor,
    steps: int | list[float],
    *,
    y: torch.Tensor | None = None,
    cfg_scale: float = 1.0,
    use_step_size: bool = True,
    return_trajectory: bool = False,
    clip: float | None = None,
) -> SampleResult:
    """Integrate from ``noise`` (t = 0) to data (t = 1) with a dyadic schedule.

    Args:
        model: ``s(x, t, level, y)`` with attributes ``M`` and ``num_classes``.
        steps: an int budget or an explicit list of dyadic step sizes (see ``dyadic_schedule``).
        y: class labels (None: the null label for conditional models).
        cfg_scale: guidance weight ``w``; 1 is plain conditional sampling, 0 unconditional.
        use_step_size: True for shortcut models; False queries every step with the ``d = 0``
            token (flow matching).
        return_trajectory: also return ``x`` after every step (``len(schedule) + 1`` tensors).
        clip: clamp each intermediate ``x`` to ``[-clip, clip]`` (None: no clamp).
    """
    M = model.M
    schedule = dyadic_schedule(steps, M)
    guided = cfg_scale != 1.0 and y is not None and getattr(model, "num_classes", 0) > 0
    x = noise
    t = torch.zeros(x.shape[0], device=x.device)
    trajectory = [x.clone()] if return_trajectory else None
    for d in schedule:
        level_id = d_to_level(d, M) if use_step_size else flow_level(M)
        level = torch.full((x.shape[0],), level_id, device=x.device, dtype=torch.long)
        v = model(x, t, level, y)
        if guided:
            v_u = model(x, t, level, torch.full_like(y, model.num_classes))
            v = v_u + cfg_scale * (v - v_u)
        x = x + d * v.to(x.dtype)
        if clip is not None:
            x = x.clamp(-clip, clip)
        t = t + d
        if return_trajectory:
            trajectory.append(x.clone())
    return SampleResult(samples=x, trajectory=trajectory, schedule=schedule)
