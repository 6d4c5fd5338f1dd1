"""toy2d_on_board: the fraction of 2D samples on the checkerboard's filled squares."""

import pytest
import torch

from shortcut_mini.data import toy2d
from shortcut_mini.data.toy2d import CHECKERBOARD_CELL
from shortcut_mini.metrics import toy2d_on_board
from shortcut_mini.metrics.on_board import on_board_mask

C = CHECKERBOARD_CELL  # 0.9: the board is 4x4 squares on [-1.8, 1.8]^2


def centre(i, j):
    """Centre of square (i, j), i = column from the left, j = row from the bottom."""
    return [(i - 2 + 0.5) * C, (j - 2 + 0.5) * C]


def test_hand_cases_filled_and_empty_squares():
    # filled: i + j even; empty: i + j odd
    filled = [centre(0, 0), centre(1, 1), centre(3, 3), centre(2, 0), centre(0, 2)]
    empty = [centre(1, 0), centre(0, 1), centre(3, 2), centre(2, 3)]
    pts = torch.tensor(filled + empty)
    assert on_board_mask(pts).tolist() == [True] * 5 + [False] * 4
    assert toy2d_on_board(pts) == pytest.approx(5 / 9)


def test_off_the_board_and_edges():
    pts = torch.tensor(
        [
            [-1.8, -1.8],  # the board's lower-left corner: square (0, 0), filled
            [1.8, 0.0],  # the right edge belongs to the square outside the board
            [0.0, 0.0],  # the origin: lower-left corner of square (2, 2), filled
            [-0.01, 0.0],  # square (1, 2): empty
            [5.0, 5.0],  # far outside
            [-2.0, 0.45],  # left of the board, in a filled row's height
            [float("nan"), 0.0],  # non-finite: off the board
            [float("inf"), 0.0],
        ]
    )
    assert on_board_mask(pts).tolist() == [True, False, True, False, False, False, False, False]


def test_data_is_on_the_board_and_noise_about_half():
    assert toy2d_on_board(toy2d("checkerboard", 5000, seed=3)) == 1.0
    noise = torch.randn(20000, 2, generator=torch.Generator().manual_seed(0))
    # P(on a filled square) for N(0, I): about 0.45 (the board holds ~91% of the mass)
    assert 0.42 < toy2d_on_board(noise) < 0.48


def test_a_point_mass_at_the_mean_scores_its_square():
    # chapter 2's collapse: every sample on the data mean (about the origin)
    assert toy2d_on_board(torch.zeros(10, 2) + 0.1) == 1.0
    assert toy2d_on_board(torch.full((10, 2), -0.1) * torch.tensor([1.0, -1.0])) == 0.0


@pytest.mark.parametrize("shape", [(5,), (5, 3), (2, 5, 2)])
def test_bad_shapes_name_the_problem(shape):
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        toy2d_on_board(torch.zeros(shape))


def test_empty_set_is_refused():
    with pytest.raises(ValueError, match="at least one sample"):
        toy2d_on_board(torch.zeros(0, 2))
