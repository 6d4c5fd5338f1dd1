"""Choosing the device and the mixed-precision mode."""

from __future__ import annotations

import contextlib

import torch

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
    """``auto``: bf16 on GPUs that support it, fp16 (with loss scaling) on older ones, else fp32."""
    if device.type != "cuda":
        if name in ("fp16",):
            raise DeviceUnavailableError(
                "TrainConfig.precision: 'fp16' needs a CUDA GPU, and this run is on the "
                f"{device.type}; use 'auto', 'fp32' or 'bf16'."
            )
        return "fp32" if name == "auto" else name
    if name == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return name


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
