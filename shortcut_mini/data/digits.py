"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes, no download)."""

from __future__ import annotations

import numpy as np
import torch

from .resize import resize_uint8

DIGITS_SPLIT_SEED = 0
"""Seed of the fixed permutation that defines the digits train/test split."""

DIGITS_TRAIN_FRACTION = 0.8


def digits_split_indices(total: int = 1797) -> tuple[np.ndarray, np.ndarray]:
    """The fixed train/test split of the digits data.

    A permutation of ``range(total)`` drawn with ``numpy.random.RandomState(0)``; the first
    ``floor(0.8 * total)`` indices (1,437 of 1,797) are train, the remaining 360 are test.
    The split never depends on the user's ``seed``.
    """
    perm = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(total)
    cut = int(DIGITS_TRAIN_FRACTION * total)
    return perm[:cut], perm[cut:]


def load_digits_arrays(
    train: bool = True, image_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x uint8 [N, 1, S, S], y long [N])`` for one split of the sklearn digits.

    Pixel values 0..16 are mapped to 0..255 by ``round(v * 255 / 16)``. ``image_size`` (e.g. 16)
    resizes with bilinear interpolation; ``None`` keeps 8x8.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    train_idx, test_idx = digits_split_indices(len(images))
    idx = train_idx if train else test_idx
    x = torch.from_numpy(images[idx]).unsqueeze(1).contiguous()
    y = torch.from_numpy(bunch.target[idx].astype(np.int64))
    if image_size is not None:
        x = resize_uint8(x, image_size)
    return x, y
