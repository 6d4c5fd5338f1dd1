"""What a device can do: the precision and the compilation a run uses on it.

One rule, used by training (``shortcut_mini.train``), sampling (``shortcut_mini.sampling``,
``shortcut_mini.api.sample``), evaluation (``shortcut_mini.evaluate``) and the speed benchmark:

* **precision** (:func:`choose_precision`). ``"auto"`` is bf16 autocast on a CUDA GPU of compute
  capability 8.0 or above (Ampere and later have bf16 tensor cores), fp16 autocast below 8.0
  (Volta 7.0, Turing 7.5: Colab's free T4 has fp16 tensor cores only), and fp32 on the CPU and
  any other device. Training in fp16 scales the loss (``torch.amp.GradScaler``,
  :func:`uses_loss_scaling`): fp16 keeps 5 exponent bits, and small gradients would underflow to
  zero without it; bf16 has fp32's exponent range and needs no scaling. The rule reads the
  capability, not ``torch.cuda.is_bf16_supported()``: that answers True on a T4 too, because bf16
  can be *emulated* there (its default ``including_emulation=True``), without tensor cores.
* **torch.compile** (:func:`compile_support`). On a CUDA GPU of capability 7.0 or above: inductor
  writes its GPU kernels in Triton, and Triton supports no older GPU. Not for bf16 below 8.0:
  Triton has no bf16 tensor-core instructions there, and compiled bf16 kernels may not build at
  all (``"auto"`` never chooses bf16 there; an explicit ``precision="bf16"`` runs eager). On the
  CPU only when a caller asks for it (inductor's C++ backend; it needs a compiler, and at the
  book's sizes compiling costs more time than it saves); never on other devices (Apple's MPS).
* **CUDA graphs** (``mode="reduce-overhead"``). Only where ``torch.compile`` is allowed and the
  capability is 8.0 or above: that is where they were measured for this package (H100, H200,
  where they replaced launch-bound small-network steps); on older, slower GPUs the launch
  overhead they remove is a smaller share of a step and their static memory pools cost memory a
  16 GB card has little of, so there a compiled run uses inductor's default mode.

A test fakes the CUDA queries (``torch.cuda.get_device_capability``) to check every choice on
the CPU. This module imports only ``torch``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import UserError

__all__ = [
    "BF16_MIN_CAPABILITY",
    "COMPILE_MIN_CAPABILITY",
    "CUDAGRAPHS_MIN_CAPABILITY",
    "PRECISIONS",
    "CompileSupport",
    "PrecisionUnavailableError",
    "autocast_dtype",
    "choose_precision",
    "compile_support",
    "cuda_capability",
    "describe",
    "uses_loss_scaling",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

BF16_MIN_CAPABILITY = (8, 0)
"""``"auto"`` chooses bf16 from this compute capability on (Ampere and later, with bf16 tensor cores)."""

COMPILE_MIN_CAPABILITY = (7, 0)
"""``torch.compile`` on a GPU from this capability on (Triton's oldest supported GPU)."""

CUDAGRAPHS_MIN_CAPABILITY = (8, 0)
"""CUDA graphs (``reduce-overhead``) from this capability on (where they were measured)."""


class PrecisionUnavailableError(UserError, ValueError):
    """A precision this device cannot run (fp16 autocast off a CUDA GPU) or an unknown name."""


def cuda_capability(device: torch.device) -> tuple[int, int] | None:
    """``(major, minor)`` compute capability of a CUDA ``device``; None for any other device."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def choose_precision(name: str, device: torch.device) -> str:
    """The precision a run on ``device`` uses: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"``: bf16 at capability >= 8.0, fp16 (with loss scaling in training) on an older CUDA
    GPU, fp32 elsewhere. An explicit name is kept, except that fp16 needs a CUDA GPU.

    Raises:
        PrecisionUnavailableError: an unknown name, or ``"fp16"`` off a CUDA GPU.
    """
    if name not in PRECISIONS:
        raise PrecisionUnavailableError(
            f"precision must be one of {list(PRECISIONS)}, got {name!r}"
        )
    device = torch.device(device)
    capability = cuda_capability(device)
    if name == "auto":
        if capability is None:
            return "fp32"
        return "bf16" if capability >= BF16_MIN_CAPABILITY else "fp16"
    if name == "fp16" and capability is None:
        raise PrecisionUnavailableError(
            f"precision 'fp16' needs a CUDA GPU, and this run is on the {device.type}; use "
            "'auto', 'fp32' or 'bf16'"
        )
    return name


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a chosen precision (None: no autocast, fp32)."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def uses_loss_scaling(precision: str) -> bool:
    """Whether training at ``precision`` scales its loss (``torch.amp.GradScaler``): fp16 only."""
    return precision == "fp16"


@dataclass(frozen=True)
class CompileSupport:
    """Whether ``torch.compile`` and CUDA graphs are used on a device, and why (one sentence)."""

    compile: bool
    cudagraphs: bool
    reason: str


def compile_support(device: torch.device, precision: str) -> CompileSupport:
    """Where ``torch.compile`` and CUDA graphs are known to work (the module's rule).

    ``precision`` is a chosen one (:func:`choose_precision`). On the CPU ``compile`` is True (a
    caller that asks for compilation gets it) but callers never compile the CPU on their own.
    """
    device = torch.device(device)
    capability = cuda_capability(device)
    if capability is None:
        if device.type == "cpu":
            return CompileSupport(True, False, "the CPU: inductor's C++ backend, when asked")
        return CompileSupport(False, False, f"no torch.compile on the {device.type} device")
    cc = f"compute capability {capability[0]}.{capability[1]}"
    if capability < COMPILE_MIN_CAPABILITY:
        return CompileSupport(False, False, f"{cc}: Triton needs 7.0 or above")
    if precision == "bf16" and capability < BF16_MIN_CAPABILITY:
        return CompileSupport(
            False, False, f"{cc}: compiled bf16 kernels need 8.0 or above (bf16 is emulated)"
        )
    if capability < CUDAGRAPHS_MIN_CAPABILITY:
        return CompileSupport(True, False, f"{cc}: compiled, without CUDA graphs (below 8.0)")
    return CompileSupport(True, True, f"{cc}: compiled, CUDA graphs allowed")


def describe(device: torch.device, precision: str) -> str:
    """One line: the device, its capability, the chosen precision and the compile rule."""
    device = torch.device(device)
    capability = cuda_capability(device)
    where = device.type if capability is None else f"{device} ({capability[0]}.{capability[1]})"
    scaling = " with loss scaling" if uses_loss_scaling(precision) else ""
    support = compile_support(device, precision)
    return f"{where}: {precision}{scaling}; {support.reason}"
