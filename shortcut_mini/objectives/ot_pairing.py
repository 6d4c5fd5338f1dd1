"""Minibatch optimal-transport pairing of noise and data (Pooladian et al., 2023; Tong et al.,
2024; iSM's "scaling optimal transport", Nguyen et al., 2025).

Flow matching pairs each data point ``x1`` with noise ``x0`` drawn independently, so the straight
paths ``x_t = (1 - t) x0 + t x1`` of a batch cross one another, and the velocity a network can
learn at a crossing is the average of the paths through it: curved. Re-pairing the batch's noise
with its data by the permutation that minimises the total squared distance,

    pi* = argmin_pi  sum_i || x0_pi(i) - x1_i ||^2,

(an exact assignment problem, solved by ``scipy.optimize.linear_sum_assignment``) makes the
paths of a batch cross less. The noise of the batch is the same set of draws, only reordered, so
its distribution stays ``N(0, I)`` and the data's stays the data's: the coupling changes, not the
two marginals. With class labels the pairing is made within each class: the noise given to a
class is then still a set of independent standard normal draws, as at sampling time, where the
noise does not depend on the label.

The assignment runs on the CPU (the ``n x n`` cost matrix is built on the batch's device and
copied over): one host synchronisation per step.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = ["ot_permutation", "ot_pair_noise", "pairing_cost"]


def pairing_cost(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """``C[i, j] = || x1_i - x0_j ||^2``: the squared distance of data row ``i`` to noise row
    ``j`` (float64 on the CPU), rows flattened."""
    a = x1.detach().flatten(1).double()
    b = x0.detach().flatten(1).double()
    # the direct (not the matrix-product) form: exact squared distances, no cancellation
    d = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
    return d.pow(2).cpu()


def ot_permutation(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """The permutation ``p`` (a long tensor on ``x0``'s device) that minimises
    ``sum_i || x0[p[i]] - x1[i] ||^2``: data row ``i`` is paired with noise row ``p[i]``."""
    if x0.shape != x1.shape:
        raise ValueError(
            f"noise and data must have one shape, got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    n = x1.shape[0]
    if n <= 1:
        return torch.arange(n, device=x0.device)
    rows, cols = linear_sum_assignment(pairing_cost(x0, x1).numpy())
    perm = np.empty(n, dtype=np.int64)
    perm[rows] = cols
    return torch.from_numpy(perm).to(x0.device)


def ot_pair_noise(
    x0: torch.Tensor, x1: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor:
    """``x0`` reordered so that row ``i`` is the noise paired with ``x1[i]`` by the exact
    minibatch optimal-transport assignment; with labels ``y``, within each class (noise rows
    move only between rows of one label)."""
    if y is None:
        return x0[ot_permutation(x0, x1)]
    out = x0.clone()
    for label in torch.unique(y).tolist():
        rows = (y == label).nonzero(as_tuple=True)[0]
        out[rows] = x0[rows][ot_permutation(x0[rows], x1[rows])]
    return out
