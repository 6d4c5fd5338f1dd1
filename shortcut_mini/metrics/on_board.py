""" "On the board": the fraction of 2D samples that land on the checkerboard toy's filled squares.

The sliced Wasserstein distance summarises a whole distribution in one number, and it can stay
small while the structure a reader sees is gone (a blurred square board is close to a sharp one in
SWD). The checkerboard toy (``shortcut_mini.data.toy2d``) has a second, readable check: the data
lie only on the 8 filled squares of a 4x4 board, so the fraction of samples that do is 1 for the
data, about 0.43 for ``N(0, I)`` noise, and falls as a sampler blurs the squares together.
"""

from __future__ import annotations

import torch

from ..data.toy2d import CHECKERBOARD_CELL, CHECKERBOARD_SIZE

__all__ = ["on_board_mask", "toy2d_on_board"]


def on_board_mask(samples: torch.Tensor) -> torch.Tensor:
    """Boolean ``[N]``: which rows of ``samples [N, 2]`` lie on a filled square of the board.

    A point's square is ``(i, j) = floor(x / CHECKERBOARD_CELL + CHECKERBOARD_SIZE / 2)``; it is
    on the board when both indices are in ``0 .. CHECKERBOARD_SIZE - 1`` and ``i + j`` is even
    (the squares the toy's sampler fills). Each square includes its lower and left edges.

    Raises:
        ValueError: if ``samples`` is not a 2D point set of shape ``[N, 2]``.
    """
    x = torch.as_tensor(samples)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(
            f"toy2d_on_board needs 2D points of shape [N, 2], got {tuple(x.shape)}; "
            "pass the samples of a 2D run (e.g. sample(run, 4096, steps=1))"
        )
    ij = torch.floor(x.detach().double().cpu() / CHECKERBOARD_CELL + CHECKERBOARD_SIZE / 2)
    inside = ((ij >= 0) & (ij <= CHECKERBOARD_SIZE - 1)).all(dim=1)
    return inside & (ij.sum(dim=1) % 2 == 0)


def toy2d_on_board(samples: torch.Tensor) -> float:
    """Fraction of ``samples [N, 2]`` on the checkerboard's filled squares, in ``[0, 1]``.

    1 for the checkerboard data itself, about 0.43 for ``N(0, I)`` noise (0.431 for four million
    draws). Meaningful only for the ``"checkerboard"`` toy. Non-finite points count as off the board.

    Raises:
        ValueError: if ``samples`` is not ``[N, 2]`` or is empty.
    """
    mask = on_board_mask(samples)
    if mask.numel() == 0:
        raise ValueError("toy2d_on_board needs at least one sample, got an empty set")
    return float(mask.double().mean())
