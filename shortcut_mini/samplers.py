"""The sampler of each method, for any dyadic step schedule (``levels.dyadic_schedule``).

- ``euler``: ``x <- x + d s(x, t, d)`` (shortcut, live_reflow, meanflow);
- ``flow``: ``x <- x + d s(x, t, 0)``, every step with the ``d = 0`` token (flow_matching);
- ``ddim``: deterministic DDIM for an epsilon model (diffusion);
- ``consistency``: jump to the data ``x + (1 - t) v``, re-noised to ``t + d`` with fresh noise
  (consistency_training).

Each objective class names its sampler in its ``sampler`` attribute. Every sampler is called as
``sampler(model, noise, steps, y=, cfg_scale=, return_trajectory=, generator=)`` and returns a :class:`~shortcut_mini.sampling.SampleResult`; ``generator`` (on
the CPU) draws the fresh noise of the consistency sampler and is ignored by the others.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from .levels import dyadic_schedule, flow_level
from .noise_schedule import vp_alpha_sigma
from .objectives import OBJECTIVES
from .sampling import SampleResult, euler_sample

__all__ = [
    "DDIM_CLIP",
    "SAMPLERS",
    "consistency_sample",
    "ddim_sample",
    "euler_step_size",
    "sampler_for",
    "sampler_name",
]

DDIM_CLIP = 4.0
"""DDIM clamps its data estimate to ``[-DDIM_CLIP, DDIM_CLIP]`` (see :func:`ddim_sample`)."""


def _guided(model: nn.Module, x, t, level, y, cfg_scale: float) -> torch.Tensor:
    """The model's output, guided ``o_u + w (o_c - o_u)`` when ``w != 1`` and labels are given."""
    out = model(x, t, level, y)
    if cfg_scale != 1.0 and y is not None and getattr(model, "num_classes", 0) > 0:
        out_u = model(x, t, level, torch.full_like(y, model.num_classes))
        out = out_u + cfg_scale * (out - out_u)
    return out.to(x.dtype)


def _column(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    noise: torch.Tensor,
    steps: int | list[float],
    *,
    y: torch.Tensor | None = None,
    cfg_scale: float = 1.0,
    return_trajectory: bool = False,
    generator: torch.Generator | None = None,
    clip: float | None = DDIM_CLIP,
) -> SampleResult:
    """Deterministic DDIM (Song et al., 2021, Eq. 12 with sigma = 0) for an epsilon model.

    With ``eps = model(x, t)``: ``x1_hat = clip((x - sigma(t) eps) / alpha(t))``, then
    ``x <- alpha(t + d) x1_hat + sigma(t + d) eps``; the last step (``t + d = 1``) returns
    ``x1_hat``. The schedule is ``noise_schedule.vp_alpha_sigma``. Near the noise end
    ``1 / alpha`` is about 150, so a small error of ``eps`` makes a far-off ``x1_hat``; as DDPM's
    own sampler does (it clips to the image range), the data estimate is clamped to
    ``[-clip, clip]`` (default 4, the official code's bound for its targets: wide enough for
    images in [-1, 1], the 2D toys and standardised latents; None: no clamp).
    """
    schedule = dyadic_schedule(steps, model.M)
    x, t = noise, torch.zeros(noise.shape[0], device=noise.device)
    level = torch.full((x.shape[0],), flow_level(model.M), device=x.device, dtype=torch.long)
    trajectory = [x.clone()] if return_trajectory else None
    for d in schedule:
        eps = _guided(model, x, t, level, y, cfg_scale)
        alpha, sigma = vp_alpha_sigma(t)
        alpha_next, sigma_next = vp_alpha_sigma((t + d).clamp(max=1.0))
        x1_hat = (x - _column(sigma, x) * eps) / _column(alpha, x)
        if clip is not None:
            x1_hat = x1_hat.clamp(-clip, clip)
        x = _column(alpha_next, x) * x1_hat + _column(sigma_next, x) * eps
        t = t + d
        if return_trajectory:
            trajectory.append(x.clone())
    return SampleResult(samples=x, trajectory=trajectory, schedule=schedule)


@torch.no_grad()
def consistency_sample(
    model: nn.Module,
    noise: torch.Tensor,
    steps: int | list[float],
    *,
    y: torch.Tensor | None = None,
    cfg_scale: float = 1.0,
    return_trajectory: bool = False,
    generator: torch.Generator | None = None,
) -> SampleResult:
    """The multistep consistency sampler (Song et al., 2023, Algorithm 1; official code).

    Each step jumps to the data, ``x1_hat = x + (1 - t) v(x, t)``, and, unless it is the last,
    puts it back on a path at ``t + d`` with fresh noise: ``x <- (t + d) x1_hat + (1 - t - d) e``.
    One step is the plain consistency jump. ``generator`` (CPU) draws ``e`` (default: seed 0).
    """
    schedule = dyadic_schedule(steps, model.M)
    gen = torch.Generator().manual_seed(0) if generator is None else generator
    x, t = noise, torch.zeros(noise.shape[0], device=noise.device)
    level = torch.full((x.shape[0],), flow_level(model.M), device=x.device, dtype=torch.long)
    trajectory = [x.clone()] if return_trajectory else None
    for i, d in enumerate(schedule):
        v = _guided(model, x, t, level, y, cfg_scale)
        x = x + _column(1 - t, x) * v
        t = t + d
        if i < len(schedule) - 1:
            fresh = torch.randn(x.shape, generator=gen).to(device=x.device, dtype=x.dtype)
            x = _column(t, x) * x + _column(1 - t, x) * fresh
        if return_trajectory:
            trajectory.append(x.clone())
    return SampleResult(samples=x, trajectory=trajectory, schedule=schedule)


def _euler(use_step_size: bool) -> Callable[..., SampleResult]:
    @functools.wraps(euler_sample)
    def sample(model, noise, steps, *, generator=None, **kwargs) -> SampleResult:
        return euler_sample(model, noise, steps, use_step_size=use_step_size, **kwargs)

    return sample


SAMPLERS: dict[str, Callable[..., SampleResult]] = {
    "euler": _euler(True),
    "flow": _euler(False),
    "ddim": ddim_sample,
    "consistency": consistency_sample,
}
"""Samplers by name; an objective class names its own in its ``sampler`` attribute."""


def sampler_name(method: str) -> str:
    """The key of :data:`SAMPLERS` that ``method``'s objective names (its ``sampler``)."""
    if method not in OBJECTIVES:
        raise ValueError(f"unknown method {method!r}; valid names: {sorted(OBJECTIVES)}")
    name = getattr(OBJECTIVES[method], "sampler", None)
    if name not in SAMPLERS:
        raise ValueError(
            f"objective {OBJECTIVES[method].__name__} (method {method!r}) names the sampler "
            f"{name!r}; set its class attribute 'sampler' to one of {sorted(SAMPLERS)}"
        )
    return name


def sampler_for(method: str) -> Callable[..., SampleResult]:
    """The sampler of ``method``: the entry of :data:`SAMPLERS` its objective names."""
    return SAMPLERS[sampler_name(method)]


def euler_step_size(method: str) -> bool | None:
    """Whether ``method``'s Euler sampler passes the step size (``"euler"``: True) or the
    ``d = 0`` token (``"flow"``: False); None for a sampler of its own (DDIM, consistency)."""
    return {"euler": True, "flow": False}.get(sampler_name(method))
