"""Inception-v3 pool features (2048-d) for the standard FID, through torch-fidelity.

Why torch-fidelity: it is the maintained library that holds the pytorch-fid-compatible
Inception-v3 (the TensorFlow FID graph of 2015-12-05, ported to PyTorch, including the
TensorFlow-1.x-style bilinear resize to 299x299), which is what the paper's numbers use.
torchmetrics' FID wraps this very class (and needs torch-fidelity installed for FID anyway), so
depending on torch-fidelity directly is the smaller, more direct choice; pytorch-fid and clean-fid
ship their own copies but are less actively maintained. Install with ``pip install torch-fidelity``
(the package's ``fid`` extra).

The weights (about 91 MB) are downloaded at run time by ``torch.hub.load_state_dict_from_url`` into
``$TORCH_HOME/hub/checkpoints/`` and reused from there afterwards. Without a network and without
that file, :class:`FeatureWeightsUnavailableError` says what to do. For tests, any network with the
same interface (``uint8 [B, 3, H, W] -> [B, D]`` or a tuple whose first item is that) can be
injected with ``InceptionFeatures(model=...)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import UserError

__all__ = [
    "INCEPTION_FEATURE_DIM",
    "FeatureWeightsUnavailableError",
    "InceptionFeatures",
    "inception_weights_url",
    "to_uint8_rgb",
]

INCEPTION_FEATURE_DIM = 2048
_FALLBACK_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)


class FeatureWeightsUnavailableError(UserError, RuntimeError):
    """The pretrained weights of a feature network could not be loaded (e.g. no network)."""


def inception_weights_url() -> str:
    """Where torch-fidelity downloads the Inception-v3 FID weights from."""
    try:
        from torch_fidelity import feature_extractor_inceptionv3 as fe
    except ImportError:
        return _FALLBACK_URL
    return fe.URL_INCEPTION_V3


def _weights_cache_path() -> Path:
    """The file ``torch.hub`` looks for before downloading."""
    name = os.path.basename(inception_weights_url())
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _unavailable_message(cause: BaseException) -> str:
    return (
        "Could not load the Inception-v3 FID weights: the download from "
        f"{inception_weights_url()} failed ({type(cause).__name__}: {cause}). "
        "To fix: run once on a machine with network access (torch.hub caches the file), or copy "
        f"the file to {_weights_cache_path()} (set TORCH_HOME to a folder that holds "
        f"hub/checkpoints/{_weights_cache_path().name}), or pass weights_path=... to "
        "InceptionFeatures. Without it, use the classifier features ('FD (classifier)')."
    )


def _load_torch_fidelity_inception(weights_path: str | os.PathLike | None) -> torch.nn.Module:
    """torch-fidelity's Inception-v3 returning the 2048-d pool features; clear errors if not."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as err:
        raise ImportError(
            "Inception features need torch-fidelity: pip install torch-fidelity "
            "(or the package's 'fid' extra)"
        ) from err
    if weights_path is not None and not Path(weights_path).is_file():
        raise FeatureWeightsUnavailableError(f"Inception-v3 weights file not found: {weights_path}")
    try:
        return FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048"],
            feature_extractor_weights_path=None if weights_path is None else str(weights_path),
        )
    except (OSError, RuntimeError, ValueError) as err:  # URLError/HTTPError are OSErrors
        if weights_path is not None:
            raise
        raise FeatureWeightsUnavailableError(_unavailable_message(err)) from err


def to_uint8_rgb(x: torch.Tensor) -> torch.Tensor:
    """Images in ``[-1, 1]`` (float) or uint8, ``[B, 1|3, H, W]`` -> uint8 ``[B, 3, H, W]``.

    Floats are quantised as an image file would be: ``round((x + 1) * 127.5)`` clipped to
    ``[0, 255]``; grayscale is repeated to three channels.
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images [B, 1 or 3, H, W], got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        x = ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class InceptionFeatures:
    """Standard FID features: Inception-v3 2048-d pool activations of images in ``[-1, 1]``.

    Args:
        model: a network to use instead of torch-fidelity's pretrained Inception-v3 (tests);
            it takes uint8 ``[B, 3, H, W]`` and returns ``[B, D]`` or a tuple starting with it.
            Resizing to 299x299 happens inside torch-fidelity's network.
        weights_path: a local copy of the weights file (skips the download).
        device: where to run (default CUDA if available).
        batch_size: images per forward pass.
    """

    name = "inception"

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        *,
        weights_path: str | os.PathLike | None = None,
        device: torch.device | str | None = None,
        batch_size: int = 200,
    ):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model if model is not None else _load_torch_fidelity_inception(weights_path)
        self.model = self.model.to(self.device).eval().requires_grad_(False)
        self.batch_size = batch_size
        self.dim = INCEPTION_FEATURE_DIM

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[B, 2048]`` (float32, on ``x``'s device) of images ``[B, 1|3, H, W]``."""
        x8 = to_uint8_rgb(x)
        out = []
        for i in range(0, x8.shape[0], self.batch_size):
            f = self.model(x8[i : i + self.batch_size].to(self.device))
            if isinstance(f, (tuple, list)):
                f = f[0]
            out.append(f.reshape(f.shape[0], -1).float().to(x.device))
        if not out:
            return torch.empty(0, self.dim, device=x.device)
        return torch.cat(out)

    __call__ = features
