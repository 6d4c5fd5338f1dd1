"""Choosing the device and the mixed-precision mode."""

from __future__ import annotations

import contextlib

import torch

from ..capability import PrecisionUnavailableError, autocast_dtype, choose_precision
from ..config import ConfigError

__all__ = ["DeviceUnavailableError", "resolve_device", "resolve_precision", "autocast"]


class DeviceUnavailableError(ConfigError, RuntimeError):
    """The device (or precision) asked for does not exist on this machine; the message says
    which ones do. (A ``RuntimeError`` as before, and a ``ConfigError``: a setting to change.)"""


def _no_gpu(name: str, setting: str) -> DeviceUnavailableError:
    return DeviceUnavailableError(
        f"{setting}: {name!r} was asked for but CUDA is not available on this machine; use "
        "'auto' (a GPU when there is one, else the CPU) or 'cpu'."
    )


def resolve_device(name: str = "auto", setting: str = "TrainConfig.device") -> torch.device:
    """The ``torch.device`` of ``name`` (``auto``: CUDA if available, else the CPU);
    :class:`DeviceUnavailableError` for a device this machine does not have (``setting`` names
    the setting in the message)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceUnavailableError(
            f"{setting}: {name!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise _no_gpu(name, setting)
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceUnavailableError(
                f"{setting}: {name!r} was asked for but this machine has {count} CUDA "
                f"device(s), cuda:0..cuda:{count - 1}."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailableError(
            f"{setting}: 'mps' was asked for but Apple's MPS is not available here; use "
            "'auto' or 'cpu'."
        )
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """The precision of a run on ``device`` (``fp32``, ``bf16`` or ``fp16``), by the rule of
    :func:`shortcut_mini.capability.choose_precision` (``auto``: bf16 at compute capability 8.0
    or above, fp16 with loss scaling on older GPUs, fp32 on the CPU), the one rule of training,
    sampling and evaluation. :class:`DeviceUnavailableError` for fp16 off a CUDA GPU."""
    try:
        return choose_precision(name, device)
    except PrecisionUnavailableError:
        if name != "fp16":
            raise
        raise DeviceUnavailableError(
            "TrainConfig.precision: 'fp16' needs a CUDA GPU, and this run is on the "
            f"{device.type}; use 'auto', 'fp32' or 'bf16'."
        ) from None


def autocast(device: torch.device, precision: str):
    """The autocast context of a chosen ``precision`` on ``device`` (none for fp32)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
