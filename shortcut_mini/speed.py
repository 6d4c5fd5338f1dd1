"""Running the network at hardware speed: ``torch.compile`` with static shapes, CUDA graphs and
mixed precision for sampling.

The paper's selling point is generation speed (one network evaluation instead of 128); this
module holds the few switches that decide how fast one evaluation is. The trainer compiles with
:func:`compile_for_training` when ``TrainConfig.compile`` is on; sampling
(:func:`shortcut_mini.sampling.sample_in_batches`) with :func:`compile_for_sampling`. Both compile
with ``dynamic=False``: every call of a shape gets kernels specialised to it, and the callers keep
the shapes few (the sampler pads its last batch to the full batch size).

Compile modes (``torch.compile(mode=...)``): ``None`` (inductor's default), ``"reduce-overhead"``
(CUDA graphs: one launch replays every kernel of a call, for models so small that launching the
kernels costs more than running them), ``"max-autotune-no-cudagraphs"`` (searches matmul
kernels; compiles much longer). ``benchmarks/speed.py`` measures them against each other.

Which devices compile at all, and where CUDA graphs are used, is
:func:`shortcut_mini.capability.compile_support`'s rule. This module imports only ``torch`` and
``capability``; it sits at the bottom of the package with ``common``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .capability import autocast_dtype, choose_precision

__all__ = [
    "COMPILE_MODES",
    "SAMPLING_COMPILE_MODE",
    "TRAINING_COMPILE_MODE",
    "COMPILE_MIN_IMAGE_STEPS",
    "check_compile_mode",
    "compile_for_sampling",
    "compile_for_training",
    "drops_zero_products",
    "mark_step_begin",
    "sampling_autocast",
    "sampling_dtype",
    "uses_cudagraphs",
]

COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")

TRAINING_COMPILE_MODE: str | None = None
"""The mode the trainer compiles with when ``TrainConfig.compile`` is on (``None``: inductor's
default). ``benchmarks/speed.py --compile-modes`` measures the alternatives."""

SAMPLING_COMPILE_MODE: str | None = None
"""The mode sampling compiles with; sampling batches are large, so launch overhead is small."""

COMPILE_MIN_IMAGE_STEPS = 1_000_000
"""``sample(compile=None)`` compiles the forward pass (on a GPU) when a call evaluates the network
on at least this many images in all (samples x steps): below it, compiling costs more time than
it saves. A model compiled once stays compiled for every later call."""


def check_compile_mode(mode: str | None) -> str | None:
    """``mode`` if ``torch.compile`` knows it (``"default"`` is read as ``None``); else raise."""
    if mode not in COMPILE_MODES:
        raise ValueError(
            f"compile mode must be one of {list(COMPILE_MODES)}, got {mode!r} "
            "(None is inductor's default)"
        )
    return None if mode == "default" else mode


def uses_cudagraphs(mode: str | None) -> bool:
    """Whether ``mode`` replays CUDA graphs (then each step must call :func:`mark_step_begin`)."""
    return check_compile_mode(mode) in ("reduce-overhead", "max-autotune")


def drops_zero_products() -> bool:
    """Whether :func:`compile_for_training` (with inductor) drops the products by a constant
    zero: it needs inductor's custom graph passes (torch 2.6 and later)."""
    try:
        from .zero_products import DropZeroProducts  # noqa: F401
    except ImportError:
        return False
    return True


def compile_for_training(
    model: nn.Module, mode: str | None = TRAINING_COMPILE_MODE, **options
) -> nn.Module:
    """``torch.compile(model, dynamic=False, mode=mode, **options)`` for the training step
    (``options``: other ``torch.compile`` keywords, e.g. ``backend="eager"`` to test tracing).

    With inductor (the default backend) the graph also goes through
    :class:`~shortcut_mini.zero_products.DropZeroProducts`: the matrix products by the weights'
    zero tangents that forward-mode AD leaves in a JVP (MeanFlow's step) are not computed.

    The module returned shares its parameters with ``model`` (train, checkpoint and EMA use
    ``model`` itself). With CUDA graphs (:func:`uses_cudagraphs`), call :func:`mark_step_begin`
    at the start of every step: the outputs of one step's graphs are overwritten by the next.
    """
    mode = check_compile_mode(mode)
    if (
        not drops_zero_products()
        or options.get("backend", "inductor") != "inductor"
        or "options" in options
    ):
        return torch.compile(model, dynamic=False, mode=mode, **options)
    from torch._inductor import list_mode_options

    from .zero_products import DropZeroProducts

    # torch.compile takes a mode or inductor options, not both: the mode as its options
    inductor = {} if mode is None else dict(list_mode_options(mode, dynamic=False))
    inductor["post_grad_custom_pre_pass"] = DropZeroProducts()
    return torch.compile(model, dynamic=False, options=inductor, **options)


def compile_for_sampling(
    model: nn.Module, mode: str | None = SAMPLING_COMPILE_MODE, **options
) -> nn.Module:
    """``torch.compile(model, dynamic=False, mode=mode, **options)`` for the sampler."""
    return torch.compile(model, dynamic=False, mode=check_compile_mode(mode), **options)


def mark_step_begin(mode: str | None) -> None:
    """Tell CUDA graph trees that a new step begins (a no-op for modes without CUDA graphs)."""
    if uses_cudagraphs(mode):
        torch.compiler.cudagraph_mark_step_begin()


def sampling_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for sampling on ``device`` (None: full precision), by the rule of
    training (:func:`shortcut_mini.capability.choose_precision`): ``"auto"`` is bf16 on GPUs of
    compute capability 8.0 or above, fp16 on older GPUs and full precision on the CPU;
    ``"bf16"``, ``"fp16"`` (a CUDA GPU only), ``"fp32"``."""
    return autocast_dtype(choose_precision(precision, device))


def sampling_autocast(precision: str, device: torch.device):
    """The autocast context for sampling on ``device`` (see :func:`sampling_dtype`)."""
    dtype = sampling_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
