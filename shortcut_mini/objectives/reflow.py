"""Reflow (Liu et al., 2023, "rectified flow"): flow matching on pairs coupled by a teacher.

A finished flow-matching run (the teacher) maps noise ``x0`` to a sample ``x1_T`` with ``M``
Euler steps; the pairs ``(x0, x1_T)`` are generated once and cached in the run folder
(:mod:`.reflow_pairs`). The student, started from the teacher's weights, is then trained with
the flow-matching loss on straight lines between the paired points,

    x_t = (1 - t) x0 + t x1_T,   || s(x_t, t, 0) - (x1_T - x0) ||^2,

so that its paths straighten and few Euler steps suffice. The official code holds only this
consumer (``baselines/targets_naive.py`` on stored pairs); its defaults generate the pairs
with 128 Euler steps of the teacher. The student samples with the Euler sampler.
"""

from __future__ import annotations

import torch
from torch import nn

from ..levels import check_base_steps
from ..method_settings import ReflowSettings
from .base import Objective, ObjectiveOutput, regression_loss
from .flow_matching import T_SAMPLINGS, FlowMatching
from .lifecycle import ObjectiveContext
from .reflow_pairs import PAIRS_DIR, ReflowPairs, generate_pairs
from .teacher import setup_teacher

__all__ = ["Reflow"]


class Reflow(Objective):
    """Flow matching on ``reflow_pairs`` (noise, teacher sample) pairs.

    Args:
        M: the teacher's Euler steps for each pair (official: 128) and the flow grid.
        teacher: the teacher's run folder (a finished flow-matching run).
        reflow_pairs: how many pairs (None: as many as the training set has examples).
        t_sampling, class_dropout, num_classes: as :class:`FlowMatching`.

    Each batch draws its pairs uniformly (with replacement) with the step's generator; a
    class-conditional teacher generates pair ``i`` with the label of training example
    ``i mod N``.
    """

    name = "reflow"
    needs_teacher = True
    sampler = "flow"  # every query uses the d = 0 token, as the official code
    settings = ReflowSettings

    def __init__(
        self,
        M: int = 128,
        teacher: str | None = None,
        reflow_pairs: int | None = None,
        t_sampling: str = "grid",
        class_dropout: float = 0.0,
        num_classes: int = 0,
    ):
        check_base_steps(M)
        if t_sampling not in T_SAMPLINGS:
            raise ValueError(f"t_sampling must be one of {T_SAMPLINGS}, got {t_sampling!r}")
        if reflow_pairs is not None and reflow_pairs < 1:
            raise ValueError(f"reflow_pairs must be a positive integer, got {reflow_pairs!r}")
        self.M, self.teacher_path, self.n_pairs = M, teacher, reflow_pairs
        self.flow = FlowMatching(M, t_sampling, class_dropout, num_classes)
        self.pairs: ReflowPairs | None = None

    def setup(self, context: ObjectiveContext) -> None:
        """Load the teacher, start a fresh student from it, and generate (or read) the pairs."""
        teacher = setup_teacher(self.name, self.teacher_path, context)
        n = self.n_pairs or len(context.data)
        labels = None
        if context.data_info["num_classes"]:
            labels = context.data.y[torch.arange(n) % len(context.data)].cpu()
        folder = None if context.run_dir is None else context.run_dir / PAIRS_DIR
        self.pairs = generate_pairs(
            teacher.ema,
            n,
            tuple(context.data_info["shape"]),
            seed=context.seed,
            steps=self.M,
            labels=labels,
            device=context.device,
            folder=folder,
            fingerprint=teacher.fingerprint(),
            rank=context.rank,
            world_size=context.world_size,
            barrier=context.barrier,
            autocast=context.autocast,
        ).to(context.device)

    def loss(self, model: nn.Module, x1, y, *, generator, **_) -> ObjectiveOutput:
        """Flow-matching rows on ``len(x1)`` pairs drawn with ``generator`` (``x1`` itself,
        the data batch, only sets the batch size)."""
        if self.pairs is None:
            raise RuntimeError("Reflow.setup() generates the pairs: call it first")
        p = self.pairs
        idx = torch.randint(0, len(p), (x1.shape[0],), generator=generator, device=p.x0.device)
        y_pairs = None if (y is None or p.y is None) else p.y[idx]
        targets = self.flow.flow_rows(p.x1[idx], p.x0[idx], y_pairs, generator)
        return regression_loss(model, targets)
