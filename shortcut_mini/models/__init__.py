"""Velocity networks ``s_theta(x, t, level, y)`` and their named presets.

=============  =======  ======  =====  =====  =====  ==============================================
preset         network  hidden  depth  heads  patch  meant for
=============  =======  ======  =====  =====  =====  ==============================================
``mlp``        MLP      256     4                    2D toys (CPU, seconds)
``mlp-small``  MLP      128     3                    2D toys in the tests' tiny setting
``dit-tiny``   DiT      64      4      4      2      8x8 / 16x16 digits on a laptop CPU
``dit-mini``   DiT      256     6      4      2      28x28 (Fashion-)MNIST on one GPU, minutes
``dit-s``      DiT      384     12     6      2      the paper's DiT-S shape
``dit-b``      DiT      768     12     12     2      the paper's DiT-B shape (CelebA-HQ, ImageNet)
``dit-xl``     DiT      1152    28     16     2      the paper's DiT-XL shape
=============  =======  ======  =====  =====  =====  ==============================================
"""

from __future__ import annotations

from torch import nn

from .dit import DiT
from .mlp import MLPVelocity

__all__ = ["DiT", "MLPVelocity", "MODEL_PRESETS", "build_model", "count_parameters"]

MODEL_PRESETS: dict[str, dict] = {
    "mlp": dict(kind="mlp", width=256, depth=4),
    "mlp-small": dict(kind="mlp", width=128, depth=3),
    "dit-tiny": dict(kind="dit", hidden=64, depth=4, heads=4, patch=2),
    "dit-mini": dict(kind="dit", hidden=256, depth=6, heads=4, patch=2),
    "dit-s": dict(kind="dit", hidden=384, depth=12, heads=6, patch=2),
    "dit-b": dict(kind="dit", hidden=768, depth=12, heads=12, patch=2),
    "dit-xl": dict(kind="dit", hidden=1152, depth=28, heads=16, patch=2),
}


def build_model(
    name: str,
    *,
    sample_shape: tuple[int, ...],
    num_classes: int = 0,
    M: int = 128,
    level_embedding: str = "learned",
    **overrides,
) -> nn.Module:
    """Build a preset for data whose examples have shape ``sample_shape`` (``(2,)`` or ``(C,H,W)``).

    ``overrides`` replace preset fields (e.g. ``depth=2``).
    """
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model {name!r}; valid names: {sorted(MODEL_PRESETS)}")
    spec = {**MODEL_PRESETS[name], **overrides}
    kind = spec.pop("kind")
    common = dict(num_classes=num_classes, M=M, level_embedding=level_embedding)
    if kind == "mlp":
        if len(sample_shape) != 1:
            raise ValueError(
                f"model {name!r} is for points (shape (dim,)), but the data has examples of shape "
                f"{tuple(sample_shape)}: use a DiT preset such as 'dit-tiny' for images."
            )
        return MLPVelocity(dim=sample_shape[0], **spec, **common)
    if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
        raise ValueError(
            f"model {name!r} is a DiT for square images [C, H, W], but the data has examples of "
            f"shape {tuple(sample_shape)}: use model='mlp' for 2D points."
        )
    return DiT(image_size=sample_shape[1], channels=sample_shape[0], **spec, **common)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
