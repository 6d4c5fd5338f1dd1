"""Choosing the device and the mixed-precision mode."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["resolve_device", "resolve_precision", "autocast"]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"TrainConfig.device: {name!r} was asked for but CUDA is not available; "
            "use device='auto' or 'cpu'."
        )
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto``: bf16 on GPUs that support it, fp16 (with loss scaling) on older ones, else fp32."""
    if device.type != "cuda":
        if name in ("fp16",):
            raise RuntimeError("precision='fp16' needs a CUDA GPU; use 'fp32' or 'bf16' on CPU")
        return "fp32" if name == "auto" else name
    if name == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return name


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
