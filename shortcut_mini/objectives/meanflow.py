"""MeanFlow (Geng et al., 2025, arXiv 2505.13447), in this book's convention (t = 0 noise).

The network ``u(x_t, t, d)`` is the *average* velocity over the jump ``[t, t + d]``,

    u(x_t, t, d) = (1/d) * integral_t^{t+d} v(x_s, s) ds,

the object a shortcut model learns. Differentiating ``d * u`` in ``t`` with the end ``t + d``
fixed gives the MeanFlow identity (the paper's Eq. 6, with ``t`` for its ``r`` side flipped):

    u = v + d * du/dt,     du/dt = (d/dx u) v + d/dt u - d/dd u,

one Jacobian-vector product with tangent ``(v, 1, -1)`` for ``(x, t, d)``. The target is
``u* = stopgrad(v + d * du/dt)`` with ``v = x1 - x0``; at ``d = 0`` it is flow matching's.
Shortcut models enforce the same object through its discrete form (two half jumps make one
whole); MeanFlow through its derivative.

How the JVP runs: ``torch.func.jvp`` of the plain module, under ``torch.no_grad`` (the target
needs no gradient), with the math attention kernel forced (``sdpa_kernel(SDPBackend.MATH)``:
forward-mode AD does not pass through the flash or memory-efficient kernels). The plain module is
the one under ``DistributedDataParallel`` (``.module``) and ``torch.compile`` (``._orig_mod``),
so the JVP runs eagerly; the prediction ``u(x_t, t, d)`` that the loss differentiates is a
second, ordinary forward pass through the wrapped network, so DDP synchronises its gradients
and the compiled graph is used. Under bf16 autocast the JVP runs in bf16 too.

Settings (official): ``(t, d)`` from two logit-normal draws in the paper's convention (1 = noise),
sorted, with the share ``ratio`` of rows jumping (``d > 0``) and the rest ``d = 0``; adaptive
weight ``1 / stopgrad(L + c)^p`` of each row's squared error ``L`` (summed over the row, as the
official code). Defaults are the paper's ImageNet ones (ratio 0.25, LN(-0.4, 1), p = 1,
c = 0.01); its CIFAR-10 run used ratio 0.75, p = 0.75, c = 1e-3. The step size enters the
network as a number (``level_embedding="sin_d"``). Labels are dropped with ``class_dropout``;
MeanFlow's guided training target is not implemented.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .base import ObjectiveOutput, TrainingTargets, drop_labels, interpolate

__all__ = ["MeanFlow", "meanflow_target", "sample_meanflow_times", "unwrap_module"]


def unwrap_module(model: nn.Module) -> nn.Module:
    """The plain module under ``DistributedDataParallel`` and ``torch.compile`` wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def sample_meanflow_times(
    n: int, ratio: float, t_mean: float, t_std: float, generator: torch.Generator, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t, d)``: the paper's ``(t, r)`` (1 = noise) drawn from LN(t_mean, t_std) twice and
    sorted, ``r = t`` for a share ``1 - ratio``; here ``t = 1 - t_paper``, ``d = t_paper - r``."""
    a = torch.sigmoid(torch.randn(n, generator=generator, device=device) * t_std + t_mean)
    b = torch.sigmoid(torch.randn(n, generator=generator, device=device) * t_std + t_mean)
    hi, lo = torch.maximum(a, b), torch.minimum(a, b)
    same = torch.rand(n, generator=generator, device=device) >= ratio
    lo = torch.where(same, hi, lo)
    return 1 - hi, hi - lo


def meanflow_target(
    model: nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    d: torch.Tensor,
    v: torch.Tensor,
    y: torch.Tensor | None,
) -> torch.Tensor:
    """``u* = v + d * (d/dx u . v + d/dt u - d/dd u)`` at ``(x_t, t, d)``, without gradients.

    ``model(x, t, d, y)`` takes the step size ``d`` as a float tensor; ``v`` is the velocity the
    identity uses (in training, ``x1 - x0``).
    """
    net = unwrap_module(model)

    def u(x, tq, dq):
        return net(x, tq, dq, y)

    tangents = (v, torch.ones_like(t), -torch.ones_like(d))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), warnings.catch_warnings():
        # torch's own decompositions for forward AD call the deprecated torch.jit.script
        warnings.filterwarnings("ignore", message=".*torch.jit.script", category=FutureWarning)
        _, dudt = torch.func.jvp(u, (x_t, t, d), tangents)
    shape = (-1,) + (1,) * (x_t.dim() - 1)
    return v + d.view(shape).to(v.dtype) * dudt.to(v.dtype)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean over the rows of mask, whether there are any)``, with no host sync."""
    count = mask.sum()
    return (values * mask).sum() / count.clamp(min=1), count > 0


class MeanFlow:
    """MeanFlow targets and its adaptively weighted loss.

    Args:
        meanflow_ratio: share of rows with ``d > 0`` (the rest are flow-matching rows).
        meanflow_t_mean, meanflow_t_std: the logit-normal of the paper's times.
        meanflow_norm_p, meanflow_norm_eps: adaptive weight ``1 / (L + c)^p`` (p = 0: plain).
        class_dropout: probability of the null label (for classifier-free guidance).

    Diagnostics: ``loss`` is the plain mean squared error per element (comparable with the
    other methods'), ``loss_adaptive`` the weighted loss being minimised, ``loss_flow`` and
    ``loss_mean`` the plain error of the ``d = 0`` and ``d > 0`` rows.
    """

    name = "meanflow"
    sampler = "euler"
    level_embeddings = ("sin_d",)
    """The step size is a continuous input, so only an embedding of its value can take it."""

    def __init__(
        self,
        meanflow_ratio: float = 0.25,
        meanflow_t_mean: float = -0.4,
        meanflow_t_std: float = 1.0,
        meanflow_norm_p: float = 1.0,
        meanflow_norm_eps: float = 0.01,
        class_dropout: float = 0.0,
        num_classes: int = 0,
    ):
        if not 0.0 <= meanflow_ratio <= 1.0:
            raise ValueError(f"meanflow_ratio must be in [0, 1], got {meanflow_ratio}")
        if not meanflow_t_std > 0 or meanflow_norm_p < 0 or not meanflow_norm_eps > 0:
            raise ValueError(
                "meanflow_t_std and meanflow_norm_eps must be positive and meanflow_norm_p >= 0"
            )
        self.ratio, self.t_mean, self.t_std = meanflow_ratio, meanflow_t_mean, meanflow_t_std
        self.norm_p, self.norm_eps = meanflow_norm_p, meanflow_norm_eps
        self.class_dropout, self.num_classes = class_dropout, num_classes

    def make_targets(self, x1, y, *, generator, model: nn.Module, x0=None, **_) -> TrainingTargets:
        """Inputs and targets; ``level`` holds the float step sizes ``d``."""
        n = x1.shape[0]
        if x0 is None:
            x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        t, d = sample_meanflow_times(n, self.ratio, self.t_mean, self.t_std, generator, x1.device)
        x_t = interpolate(x0, x1, t)
        y = drop_labels(y, self.class_dropout, self.num_classes, generator)
        target = meanflow_target(model, x_t, t, d, x1 - x0, y)
        return TrainingTargets(
            x_t=x_t,
            t=t,
            level=d,
            y=y,
            target=target,
            group=(d > 0).long() - 1,
        )

    def loss(self, model: nn.Module, x1, y, *, generator, **_) -> ObjectiveOutput:
        targets = self.make_targets(x1, y, generator=generator, model=model)
        pred = model(targets.x_t, targets.t, targets.level, targets.y)
        sq = (pred.float() - targets.target.float()).pow(2).flatten(1)
        per_row = sq.sum(dim=1)
        weight = (per_row.detach() + self.norm_eps).pow(-self.norm_p)
        loss = (weight * per_row).mean()
        mse = sq.mean(dim=1).detach()
        jumping = (targets.level > 0).float()
        diagnostics = {
            "loss": mse.mean(),
            "loss_adaptive": loss.detach(),
            "loss_flow": _masked_mean(mse, 1 - jumping),
            "loss_mean": _masked_mean(mse, jumping),
        }
        return ObjectiveOutput(loss=loss, diagnostics=diagnostics, targets=targets)
