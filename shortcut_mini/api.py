"""The public entry points: ``train``, ``sample`` and ``load_run``."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import torch

from .budget_runs import budget_weights
from .capability import choose_precision, compile_support
from .common import available_memory
from .levels import dyadic_schedule
from .objectives import OBJECTIVES
from .samplers import euler_step_size, sampler_for
from .sampling import sample_in_batches
from .speed import (
    COMPILE_MIN_IMAGE_STEPS,
    SAMPLING_COMPILE_MODE,
    compile_for_sampling,
    sampling_autocast,
    sampling_dtype,
)
from .train.loading import as_run, load_run
from .train.trainer import Run, train

__all__ = ["train", "sample", "load_run", "as_run", "check_memory", "misaligned_steps", "Run"]


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""  # pragma: no cover


def check_memory(n: int, shape, copies: float = 2.0, what: str = "n") -> None:
    """Refuse (``ValueError``) ``n`` samples of ``shape`` whose ``copies`` float32 arrays
    (noise and samples: 2) would not fit in the memory left, with a sentence saying how many
    do; nothing is allocated. Unknown free memory: no check."""
    free = available_memory()
    per_sample = 4 * math.prod(shape) * copies
    if free is None or n * per_sample <= free:
        return
    fits = max(1, int(free * 0.8 // per_sample))
    raise ValueError(
        f"{what}={n:,} samples of shape {tuple(shape)} need {_size(n * per_sample)} of memory "
        f"(float32 noise and samples) but {_size(free)} is free: ask for at most about "
        f"{fits:,} at a time (several calls with different seeds give more)"
    )


def _check_sample_args(run: Run, n, steps, cfg_scale, batch_size) -> None:
    """Refuse arguments of :func:`sample` that would fail deep inside (or sample nonsense)."""
    for name, value in (("n (the number of samples)", n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(cfg_scale, (int, float)) or not math.isfinite(cfg_scale):
        raise ValueError(f"cfg_scale must be a finite number (1: no guidance), got {cfg_scale!r}")
    is_list = isinstance(steps, (list, tuple)) and all(
        isinstance(d, (int, float)) and not isinstance(d, bool) for d in steps
    )
    if not (is_list or (isinstance(steps, int) and not isinstance(steps, bool))):
        raise ValueError(
            f"steps must be an int budget (e.g. 4) or a list of step sizes summing to 1 "
            f"(e.g. [0.5, 0.25, 0.25]), got {steps!r}"
        )
    schedule = dyadic_schedule(steps, run.config.M)
    objective = OBJECTIVES.get(run.config.method)
    if objective is not None and objective.trains_aligned_steps(run.config):
        warn_misaligned(schedule)


def misaligned_steps(schedule: list[float]) -> list[tuple[float, float]]:
    """``(t, d)`` of every step of ``schedule`` whose start ``t`` is not a multiple of its size
    ``d``. Self-consistency rows train a step of size ``d`` only from multiples of ``d`` (the
    official code's ``t = randint(0, 2^l) / 2^l``), so such a step is off trained ground."""
    out, t = [], Fraction(0)
    for d in map(Fraction, schedule):
        if t % d:
            out.append((float(t), float(d)))
        t += d
    return out


def warn_misaligned(schedule: list[float]) -> None:
    """Warn (``UserWarning``) when a step of ``schedule`` starts off a multiple of its size."""
    bad = misaligned_steps(schedule)
    if bad:
        where = ", ".join(f"the step {d:g} starts at t={t:g}" for t, d in bad)
        warnings.warn(
            f"step schedule {list(schedule)}: {where}, not a multiple of its size; a shortcut "
            "model is trained on a step of size d only from multiples of d, so this step was "
            "never trained. Put larger steps first (e.g. "
            f"{sorted(schedule, reverse=True)}).",
            UserWarning,
            stacklevel=3,
        )


def _labels(y, n: int, num_classes: int) -> torch.Tensor | None:
    """``y`` (None, an int or a tensor of ``n`` labels) checked against the run's classes."""
    if y is None:
        return None
    if num_classes == 0:
        raise ValueError(
            "a label was given but this run is not class-conditional: leave the label out "
            "(y=None; on the command line, no --label)"
        )
    if isinstance(y, bool) or not isinstance(y, (int, torch.Tensor)):
        raise ValueError(f"y must be an int label or a tensor of labels, got {y!r}")
    y = torch.full((n,), y, dtype=torch.long) if isinstance(y, int) else y.long()
    if tuple(y.shape) != (n,):
        raise ValueError(f"y must hold one label per sample, shape ({n},), got {tuple(y.shape)}")
    bad = y[(y < 0) | (y >= num_classes)]
    if len(bad):
        raise ValueError(
            f"label {int(bad[0])} is out of range: this run has {num_classes} classes, labels "
            f"0..{num_classes - 1} ({num_classes} is the null label, used only inside "
            "classifier-free guidance: give a label and a guidance weight, cfg_scale / "
            "--cfg-scale, above 1)"
        )
    return y


def _sampling_network(run: Run, model, compile: bool | None, image_steps: int, precision: str):
    """``model``, or its compiled forward pass (kept in ``run.compiled``) when ``compile`` is
    True, or None on a GPU and the work (``image_steps`` = samples x steps) is large enough to
    pay for compiling (``speed.COMPILE_MIN_IMAGE_STEPS``) or it is compiled already; never where
    the device cannot compile at this precision (``capability.compile_support``: a warning when
    ``compile`` is True)."""
    device = next(model.parameters()).device
    key = (id(model), SAMPLING_COMPILE_MODE)
    support = compile_support(device, choose_precision(precision, device))
    if compile is None:
        big = image_steps >= COMPILE_MIN_IMAGE_STEPS
        compile = device.type == "cuda" and support.compile and (big or key in run.compiled)
    elif compile and not support.compile:
        warnings.warn(f"sample(compile=True): not compiling ({support.reason})", stacklevel=3)
        compile = False
    if not compile:
        return model
    if key not in run.compiled:
        run.compiled[key] = compile_for_sampling(model, SAMPLING_COMPILE_MODE)
    return run.compiled[key]


def _in_batches(
    sampler, model, noise, steps, y, cfg_scale, batch_size, device, precision, trajectory, gen
):
    """Samples (and trajectories ``[steps + 1, n, ...]``), batch by batch, on the CPU: the path
    of samplers with fresh noise or a trajectory (the Euler samplers' fast path is
    :func:`~shortcut_mini.sampling.sample_in_batches`)."""
    outs, trajs = [], []
    with sampling_autocast(precision, device):
        for i in range(0, noise.shape[0], batch_size):
            yb = None if y is None else y[i : i + batch_size].to(device)
            res = sampler(
                model,
                noise[i : i + batch_size].to(device),
                steps,
                y=yb,
                cfg_scale=cfg_scale,
                return_trajectory=trajectory,
                generator=gen,
            )
            outs.append(res.samples.float().cpu())
            if trajectory:
                trajs.append(torch.stack([x.float().cpu() for x in res.trajectory]))
    return torch.cat(outs), (torch.cat(trajs, dim=1) if trajectory else None)


def sample(
    run: Run,
    n: int,
    steps: int | list[float] = 1,
    *,
    seed: int = 0,
    cfg_scale: float = 1.0,
    y: torch.Tensor | int | None = None,
    use_ema: bool = True,
    batch_size: int = 1024,
    noise: torch.Tensor | None = None,
    return_trajectory: bool = False,
    precision: str = "auto",
    compile: bool | None = None,
):
    """Draw ``n`` samples of ``run`` (a :class:`Run`, or the path of a run folder) with a
    budget of ``steps``.

    A progressive-distillation run samples a budget with the student of the stage that trained
    it (:func:`~shortcut_mini.budget_runs.budget_weights`, the rule of every entry point), and
    only the budgets its stages trained.

    Args:
        steps: an int (a power of two gives equal steps; another int a dyadic schedule, e.g.
            ``3 -> [1/2, 1/4, 1/4]``) or an explicit list of dyadic step sizes summing to 1.
        seed: seeds the noise (same seed, same noise, whatever the budget and the device) and
            then the fresh noise of samplers that draw it (consistency training's multistep
            sampler).
        cfg_scale: classifier-free guidance weight (class-conditional runs; 1 = no guidance).
        y: labels, an int for all samples, or None (null label / unconditional); labels are
            ``0..num_classes-1`` (``ValueError`` otherwise).
        use_ema: sample with the EMA weights (default) or the online weights.
        noise: start from this noise instead of drawing it.
        return_trajectory: also return the list of intermediate states.
        precision: autocast of the network: ``"auto"`` (bf16 on GPUs of compute capability 8.0
            or above, fp16 on older GPUs, full precision on the CPU: the rule of training,
            ``shortcut_mini.capability``), ``"fp32"``, ``"bf16"``, ``"fp16"``.
        compile: run a compiled forward pass (``shortcut_mini.speed``; every batch padded to
            ``batch_size`` rows); None: on a GPU, when the call is large enough to pay for the
            compilation or the model is compiled already.

    Raises ``ValueError`` on an argument it cannot use (naming it and the fix; also ``n``
    samples that would not fit in the memory left, see :func:`check_memory`), and warns
    (``UserWarning``) on an explicit schedule with a step that starts off a multiple of its own
    size (:func:`misaligned_steps`).

    Returns float32 samples on the CPU in the data's range (images clamped to ``[-1, 1]``),
    and the trajectory ``[steps + 1, n, ...]`` if asked.
    """
    run = as_run(run)
    _check_sample_args(run, n, steps, cfg_scale, batch_size)
    run = budget_weights(run, steps)  # progressive distillation: the budget's own student
    model = run.ema if use_ema else run.model
    device = next(model.parameters()).device
    shape = tuple(run.data_info["shape"])
    sampling_dtype(precision, device)  # a bad precision is refused before any work
    copies = 2 + (len(dyadic_schedule(steps, run.config.M)) + 1 if return_trajectory else 0)
    check_memory(n, shape, copies=copies if noise is None else copies - 1)
    gen = torch.Generator().manual_seed(seed)  # the noise, then any fresh noise of the sampler
    if noise is None:
        pinned = device.type == "cuda"  # the same values, in memory the GPU copies from async
        noise = torch.empty((n, *shape), pin_memory=pinned).normal_(generator=gen)
    elif tuple(noise.shape) != (n, *shape):
        raise ValueError(f"noise must have shape {(n, *shape)}, got {tuple(noise.shape)}")
    y = _labels(y, n, run.data_info["num_classes"])
    step_size = euler_step_size(run.config.method)  # None: a sampler of its own (DDIM, ...)
    was_training = model.training
    model.eval()
    try:
        if step_size is None or return_trajectory:
            sampler = sampler_for(run.config.method)
            args = (noise, steps, y, cfg_scale, batch_size, device, precision)
            samples, trajectory = _in_batches(sampler, model, *args, return_trajectory, gen)
        else:
            work = n * len(dyadic_schedule(steps, run.config.M))
            net = _sampling_network(run, model, compile, work, precision)
            opts = dict(y=y, cfg_scale=cfg_scale, use_step_size=step_size, batch_size=batch_size)
            samples = sample_in_batches(
                net, noise, steps, precision=precision, pad_batches=net is not model, **opts
            )
    finally:
        model.train(was_training)
    if run.data_info["kind"] == "image":
        samples = samples.clamp(-1, 1)
    if return_trajectory:
        return samples, trajectory
    return samples
