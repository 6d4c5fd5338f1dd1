"""Sampling: Euler steps along the learned shortcuts, for any dyadic step budget (paper Sec. 3.3).

With a schedule of step sizes ``d_0, d_1, ...`` summing to 1 (``N`` equal steps ``1/N`` for a
budget ``N`` that is a power of two), starting from noise at ``t = 0``::

    x <- x + d_i * s(x, t_i, d_i),   t_{i+1} = t_i + d_i.

A shortcut model is queried with the level of each step; a flow-matching model always with its
``d = 0`` token (it was never trained on any other). Classifier-free guidance combines the
conditional and unconditional velocities as ``v_u + w (v_c - v_u)``.

:func:`sample_in_batches` runs :func:`euler_sample` over many samples at the device's speed: on a
GPU in bf16 autocast, with a compiled forward pass when given one (every batch then has the same
shape), and with no host synchronisation between steps or batches: noise goes up and samples come
down through pinned memory, asynchronously, and the host waits once, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .levels import d_to_level, dyadic_schedule, flow_level
from .speed import sampling_autocast

__all__ = ["euler_sample", "sample_in_batches", "SampleResult"]


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
    ids = [d_to_level(d, M) if use_step_size else flow_level(M) for d in schedule]
    levels = {  # one level tensor per distinct step size, made before the first step
        i: torch.full((x.shape[0],), i, device=x.device, dtype=torch.long) for i in set(ids)
    }
    for d, level_id in zip(schedule, ids):
        level = levels[level_id]
        if x.is_cuda:  # a compiled model with CUDA graphs may reuse the last step's outputs
            torch.compiler.cudagraph_mark_step_begin()
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


def _padded(chunk: torch.Tensor, rows: int, device: torch.device) -> torch.Tensor:
    """``chunk`` on ``device`` (asynchronously from pinned memory), padded with zeros to ``rows``."""
    chunk = chunk.to(device, non_blocking=True)
    if chunk.shape[0] == rows:
        return chunk
    return torch.cat([chunk, chunk.new_zeros((rows - chunk.shape[0], *chunk.shape[1:]))])


@torch.no_grad()
def sample_in_batches(
    model: nn.Module,
    noise: torch.Tensor,
    steps: int | list[float],
    *,
    y: torch.Tensor | None = None,
    cfg_scale: float = 1.0,
    use_step_size: bool = True,
    batch_size: int = 1024,
    precision: str = "auto",
    pad_batches: bool = False,
    clip: float | None = None,
) -> torch.Tensor:
    """:func:`euler_sample` of every row of ``noise``, ``batch_size`` rows at a time.

    ``model`` may be compiled (``shortcut_mini.speed.compile_for_sampling``); with
    ``pad_batches`` the last batch is padded to ``batch_size`` rows (padding dropped), so that
    one compiled graph serves every batch and every call. ``precision``: autocast for the
    forward passes (``"auto"``: bf16 on GPUs, full precision on the CPU; see
    ``shortcut_mini.speed.sampling_dtype``); the state ``x`` stays float32.

    Returns the samples, float32 on the CPU, in the order of ``noise``. On a GPU, noise on the
    CPU should be in pinned memory (``torch.Tensor.pin_memory``) for the copies to overlap.
    """
    device = next(model.parameters()).device
    n = noise.shape[0]
    cuda = device.type == "cuda"
    out = torch.empty(noise.shape, dtype=torch.float32, pin_memory=cuda)
    with sampling_autocast(precision, device):
        for i in range(0, n, batch_size):
            rows = min(batch_size, n - i)
            width = batch_size if pad_batches else rows
            xb = _padded(noise[i : i + batch_size], width, device)
            yb = None if y is None else _padded(y[i : i + batch_size], width, device)
            res = euler_sample(
                model, xb, steps, y=yb, cfg_scale=cfg_scale, use_step_size=use_step_size, clip=clip
            )
            out[i : i + rows].copy_(res.samples[:rows], non_blocking=cuda)
    if cuda:
        torch.cuda.current_stream(device).synchronize()  # the one wait, for the last copy
    return out
