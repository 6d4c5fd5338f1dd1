"""MeanFlow (Geng et al., 2025, arXiv 2505.13447), in this book's convention (t = 0 noise).

The network ``u(x_t, t, d)`` is the *average* velocity over the jump ``[t, t + d]`` (the
paper's Eq. 3),

    u(x_t, t, d) = (1/d) * integral_t^{t+d} v(x_s, s) ds,

the object a shortcut model learns. Differentiating ``d * u`` in ``t`` with the end ``t + d``
fixed gives the MeanFlow identity (the paper's Eq. 6, its total derivative Eq. 8, in this
book's direction of time):

    u = v + d * du/dt,     du/dt = (d/dx u) v + d/dt u - d/dd u,

one Jacobian-vector product with tangent ``(v, 1, -1)`` for ``(x, t, d)``. The target is
``u* = stopgrad(v + d * du/dt)`` with ``v = x1 - x0`` (Eqs. 9-10); at ``d = 0`` it is flow
matching's.

**The time embedding.** The target contains the network's own derivative in ``t`` and ``d``,
so how the network sees them matters here as it does for no other method. DiT embeds
``1000 t`` (sin-cos features with frequencies up to 1,000 per unit of ``t``); through those
features ``du/dt`` carries factors up to 1,000, the target feeds on it, and the error of the
jumping rows grows without bound while the flow rows' error falls (``sin_d``, this package's
MeanFlow before: 26 -> 13,609 in the tuning sweep). MeanFlow's official networks (its DiT and
its CIFAR-10 U-Net) embed ``t`` and ``t - r`` as they are, in ``[0, 1]``; so does MeanFlow's
embedding here, ``sin_d_unit`` (:func:`shortcut_mini.models.embeddings.time_scale`), its
declared default. ``sin_d`` stays accepted, to load and compare runs made with it.
Shortcut models enforce the same object through its discrete form (two half jumps make one
whole); MeanFlow through its derivative.

**One pass per step**, as the official PyTorch code runs it: one ``torch.func.jvp`` call gives
the prediction ``u`` and ``du/dt`` together (``MeanFlowForward``). The prediction keeps its
graph for the loss; the derivative is detached into the target. The trainer compiles and wraps
``MeanFlowForward`` (the objective's ``training_network`` hook) as it compiles and wraps any
network, so the JVP runs compiled, under the run's autocast (bf16 on a GPU), and under
``DistributedDataParallel`` the backward pass of ``u`` synchronises the gradients as for any
forward pass. (A JVP of the plain ``.module`` would not: its gradients stay on each GPU.)
The JVP runs on the jumping rows only: a row with ``d = 0`` has flow matching's target
whatever its derivative, so those rows (``1 - ratio`` of the batch, a fixed count) take the
plain network's forward pass (with its fast attention) instead. Compiled, the JVP also skips
the products by the weights' tangents, which are zero (:mod:`shortcut_mini.zero_products`),
one of the three products of every linear layer.
Forward-mode AD does not pass the flash or memory-efficient attention kernels, so attention
inside the JVP runs through ``attention``: ``"math"`` or ``"matmul"``
(``shortcut_mini.models.dit.ATTENTION_KERNELS``), or ``"auto"`` (the default, ``jvp_attention``):
math where the JVP runs compiled, matmul where it runs eagerly, the kernel each mode was checked
with on a GPU (the math kernel's eager backward fails there in bf16). ``benchmarks/speed.py``
measures both kernels.

**Settings.** ``(t, d)`` come from two logit-normal draws in the paper's convention (1 = noise),
sorted, with the share ``ratio`` of rows jumping (``d > 0``, a fixed count per batch, as the
official code) and the rest ``d = 0``; the loss of
each row, its squared error ``L`` summed over the row (as the official code), is weighted by
``1 / stopgrad(L + c)^p``. :data:`~shortcut_mini.method_settings.MEANFLOW_SETTINGS` names the paper's ImageNet settings (the
defaults: ratio 0.25, LN(-0.4, 1), p = 1, c = 0.01), its CIFAR-10 ones (ratio 0.75, LN(-2, 2), p = 0.75,
c = 1e-3) and one between them. The step size enters the network as a number, so MeanFlow
trains the ``sin_d_unit`` embedding (its declared default: nothing to set).

**Guidance** (the paper's section on guidance, and the mixing scale of its appendix, as the
official JAX code implements them): a class-conditional run with ``guidance_scale = w > 0``
learns the average velocity of the guided field ``w v(x|c) + (1 - w) v(x)``. The unconditional ``v(x)`` is the network's own ``d = 0``
prediction with the null label ``u(x_t, t, 0 | null)``, so the velocity in the identity (and in
the tangent) becomes

    v~ = w (x1 - x0) + k u(x_t, t, 0 | c) + (1 - w - k) u(x_t, t, 0 | null),

``k`` (``kappa``) mixing in the network's conditional prediction (0: the main text's form). Rows
whose label is dropped (``class_dropout``) keep ``v~ = x1 - x0`` and learn the unconditional field.
One-step sampling of the guided network needs no second pass (``cfg_scale = 1``). (The official
code can also limit guidance to an interval of ``t``, by default all of it; not offered here.)
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..method_settings import MEANFLOW_SETTINGS, MeanFlowSettings
from ..models.dit import ATTENTION_KERNELS, forward_ad_attention
from .base import Objective, ObjectiveOutput, TrainingTargets, drop_labels, interpolate

__all__ = [
    "JVP_ATTENTION",
    "MEANFLOW_SETTINGS",
    "MeanFlow",
    "MeanFlowForward",
    "adaptive_loss",
    "guided_velocity",
    "jump_rows",
    "jvp_attention",
    "jvp_traces",
    "meanflow_target",
    "sample_meanflow_times",
    "unwrap_module",
]


def unwrap_module(model: nn.Module) -> nn.Module:
    """The plain module under ``DistributedDataParallel`` and ``torch.compile`` wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _load_jvp_decompositions() -> None:
    """Load torch's forward-AD decompositions now, outside any compiled code; their first use
    would warn that they call the deprecated ``torch.jit.script``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script", category=FutureWarning)
        import torch._decomp.decompositions_for_jvp  # noqa: F401


JVP_ATTENTION = ("auto", *ATTENTION_KERNELS)
"""Choices of the attention kernel inside MeanFlow's JVP (``jvp_attention``)."""


def jvp_attention(choice: str, compiled: bool | None = None) -> str:
    """The kernel of ``choice`` (one of ``JVP_ATTENTION``) in a JVP that runs compiled or not
    (``compiled``; None: whether ``torch.compile`` traces it now): ``"auto"`` is ``"math"``
    compiled (equal speed, and it passed every equality check on the GPU), ``"matmul"`` eagerly
    (PyTorch's math kernel fails an eager backward on a GPU in bf16)."""
    if choice != "auto":
        return choice
    if compiled is None:
        compiled = torch.compiler.is_compiling()
    return "math" if compiled else "matmul"


def check_attention(choice: str) -> None:
    if choice not in JVP_ATTENTION:
        raise ValueError(f"attention must be one of {JVP_ATTENTION}, got {choice!r}")


def jvp_traces(net: nn.Module) -> bool:
    """Whether ``torch.compile`` can trace a JVP of ``net``: torch (2.14) cannot trace
    forward-mode AD through a LayerNorm with affine weights (it stops at an internal assertion,
    the family of pytorch/pytorch#197090), which the 2D MLP has and the DiT has not."""
    return not any(isinstance(m, nn.LayerNorm) and m.elementwise_affine for m in net.modules())


class MeanFlowForward(nn.Module):
    """``(u, du/dt)`` of ``net`` at ``(x, t, d)`` from one ``torch.func.jvp`` call with tangent
    ``(w, 1, -1)`` for ``(x, t, d)``: the network and its total derivative along the path.

    ``u`` keeps its graph (the loss differentiates it); ``du/dt`` is returned detached (it only
    enters the target), so a compiled backward keeps nothing for it. Attention inside the JVP
    runs through ``attention`` (one of ``JVP_ATTENTION``). Called with ``w=None`` it is the
    plain network, ``net(x, t, d, y)``, with its usual attention (the guidance queries).
    This is the module the trainer compiles and wraps in DDP for MeanFlow; it shares ``net``'s
    parameters and has none of its own. Where ``torch.compile`` cannot trace the JVP
    (:func:`jvp_traces`), the JVP runs eagerly inside the compiled module.
    """

    def __init__(self, net: nn.Module, attention: str = "auto"):
        super().__init__()
        check_attention(attention)
        self.net, self.attention = net, attention
        self.M, self.num_classes = getattr(net, "M", None), getattr(net, "num_classes", 0)
        self.traced = jvp_traces(net)
        _load_jvp_decompositions()

    def forward(self, x, t, d, y=None, w=None, jumps=None):
        """``(u, du/dt)``; with ``jumps``, the JVP runs on the first ``jumps`` rows only (the
        rows with ``d > 0``: :func:`sample_meanflow_times` puts them first) and the rest run the
        plain network, their ``du/dt`` returned as zeros (a row with ``d = 0`` has the target
        ``v`` whatever its derivative). ``jumps`` is a fixed count, so shapes stay static."""
        if w is None:
            return self.net(x, t, d, y)
        jvp = self._jvp if self.traced else self._eager_jvp
        if jumps is None or jumps == x.shape[0]:
            return jvp(x, t, d, y, w)
        rows = [slice(0, jumps), slice(jumps, None)]
        jump, flow = [(x[r], t[r], d[r], None if y is None else y[r]) for r in rows]
        u_flow = self.net(*flow)
        if jumps == 0:
            return u_flow, u_flow.new_zeros(u_flow.shape)
        u_jump, dudt = jvp(*jump, w[rows[0]])
        return torch.cat([u_jump, u_flow]), torch.cat([dudt, dudt.new_zeros(u_flow.shape)])

    def _jvp(self, x, t, d, y, w):
        def u(x, t, d):
            return self.net(x, t, d, y)

        ones = torch.ones_like(t)
        with forward_ad_attention(jvp_attention(self.attention)):
            u_value, dudt = torch.func.jvp(u, (x, t, d), (w, ones, -ones))
        return u_value, dudt.detach()

    @torch.compiler.disable
    def _eager_jvp(self, x, t, d, y, w):
        return self._jvp(x, t, d, y, w)


def sample_meanflow_times(
    n: int, ratio: float, t_mean: float, t_std: float, generator: torch.Generator, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t, d)``: the paper's ``(t, r)`` (1 = noise) drawn from LN(t_mean, t_std) twice and
    sorted, ``r = t`` on all but the first :func:`jump_rows` rows; here ``t = 1 - t_paper``,
    ``d = t_paper - r``. A fixed count in fixed places, as the official code draws it: the rows
    of a batch come in random order (the trainer draws a permutation per epoch), so each row still
    jumps with probability ``ratio``."""
    a = torch.sigmoid(torch.randn(n, generator=generator, device=device) * t_std + t_mean)
    b = torch.sigmoid(torch.randn(n, generator=generator, device=device) * t_std + t_mean)
    hi, lo = torch.maximum(a, b), torch.minimum(a, b)
    same = torch.arange(n, device=device) >= jump_rows(n, ratio)
    lo = torch.where(same, hi, lo)
    return 1 - hi, hi - lo


def jump_rows(n: int, ratio: float) -> int:
    """How many of ``n`` rows jump (``d > 0``): all but the official code's
    ``int(n * (1 - ratio))`` rows with ``r = t``."""
    return n - int(n * (1 - ratio))


def _rows(d: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``d`` shaped to broadcast over the rows of ``like``, in its dtype."""
    return d.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def meanflow_target(
    model: nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    d: torch.Tensor,
    v: torch.Tensor,
    y: torch.Tensor | None,
    attention: str = "auto",
) -> torch.Tensor:
    """``u* = v + d * (d/dx u . v + d/dt u - d/dd u)`` at ``(x_t, t, d)``, without gradients.

    ``model(x, t, d, y)`` takes the step size ``d`` as a float tensor; ``v`` is the velocity the
    identity uses (in training, ``x1 - x0``, or the guided ``v~``). The JVP runs on the plain
    module under any wrappers; training gets the same target from ``MeanFlowForward``
    together with the prediction.
    """
    forward = MeanFlowForward(unwrap_module(model), attention)
    with torch.no_grad():
        _, dudt = forward(x_t, t, d, y, v)
    return v + _rows(d, v) * dudt.to(v.dtype)


def guided_velocity(
    model: nn.Module,
    x_t: torch.Tensor,
    t: torch.Tensor,
    v: torch.Tensor,
    y: torch.Tensor,
    guided: torch.Tensor,
    scale: float,
    kappa: float = 0.0,
) -> torch.Tensor:
    """``v~ = w v + k u(x_t, t, 0 | y) + (1 - w - k) u(x_t, t, 0 | null)`` on the rows where
    ``guided`` is true, ``v`` elsewhere (the paper's guided velocity, with its appendix's ``k``;
    ``w = scale``, ``k = kappa``); without gradients.

    ``model(x, t, d, y)`` is queried at ``d = 0`` (its instantaneous velocity), with the null
    label ``model.num_classes`` and, when ``kappa != 0``, with ``y``.
    """
    with torch.no_grad():
        zero = torch.zeros_like(t)
        null = torch.full_like(y, model.num_classes)
        u_null = model(x_t, t, zero, null).to(v.dtype)
        out = scale * v + (1 - scale - kappa) * u_null
        if kappa:
            out = out + kappa * model(x_t, t, zero, y).to(v.dtype)
    return torch.where(_rows(guided, v).bool(), out, v)


def adaptive_loss(
    pred: torch.Tensor, target: torch.Tensor, d: torch.Tensor, norm_p: float, norm_eps: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MeanFlow's loss ``mean(L / stopgrad(L + c)^p)``, ``L`` a row's squared error summed over
    the row (the paper's adaptive loss weight), and its diagnostics: ``loss`` the plain
    mean squared error per element (comparable with the other methods'), ``loss_adaptive`` the
    weighted loss, ``loss_flow`` and ``loss_mean`` the plain error of the ``d = 0`` and ``d > 0``
    rows."""
    sq = (pred.float() - target.float()).pow(2).flatten(1)
    per_row = sq.sum(dim=1)
    weight = (per_row.detach() + norm_eps).pow(-norm_p)
    loss = (weight * per_row).mean()
    mse = sq.mean(dim=1).detach()
    jumping = (d > 0).float()
    diagnostics = {
        "loss": mse.mean(),
        "loss_adaptive": loss.detach(),
        "loss_flow": _masked_mean(mse, 1 - jumping),
        "loss_mean": _masked_mean(mse, jumping),
    }
    return loss, diagnostics


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean over the rows of mask, whether there are any)``, with no host sync."""
    count = mask.sum()
    return (values * mask).sum() / count.clamp(min=1), count > 0


class MeanFlow(Objective):
    """MeanFlow targets and its adaptively weighted loss, from one JVP pass per step.

    Args:
        meanflow_ratio: share of rows with ``d > 0`` (the rest are flow-matching rows).
        meanflow_t_mean, meanflow_t_std: the logit-normal of the paper's times.
        meanflow_norm_p, meanflow_norm_eps: adaptive weight ``1 / (L + c)^p`` (p = 0: plain).
        class_dropout: probability of the null label (for classifier-free guidance).
        num_classes: classes of a class-conditional run (0: unconditional).
        guidance_scale: ``w`` of the guided target (class-conditional runs; 0: no guidance,
            1: none either, the plain conditional target).
        meanflow_kappa: ``k`` of the guided target (0: the paper's main-text guidance).
        attention: the attention kernel inside the JVP (``JVP_ATTENTION``; ``"auto"``).

    Diagnostics: see ``adaptive_loss``.
    """

    name = "meanflow"
    sampler = "euler"
    level_embeddings = ("sin_d_unit", "sin_d")
    """The step size is a continuous input, so only an embedding of its value can take it; the
    default ``sin_d_unit`` sees ``t`` and ``d`` unscaled (see the module docstring). ``sin_d``
    (DiT's ``1000 t``, ``1000 d``) is accepted to load and compare runs made with it: the
    target's derivative through those features grows without bound."""
    default_level_embedding = "sin_d_unit"
    settings = MeanFlowSettings

    def __init__(
        self,
        meanflow_ratio: float = 0.25,
        meanflow_t_mean: float = -0.4,
        meanflow_t_std: float = 1.0,
        meanflow_norm_p: float = 1.0,
        meanflow_norm_eps: float = 0.01,
        class_dropout: float = 0.0,
        num_classes: int = 0,
        guidance_scale: float = 0.0,
        meanflow_kappa: float = 0.0,
        attention: str = "auto",
    ):
        if not 0.0 <= meanflow_ratio <= 1.0:
            raise ValueError(f"meanflow_ratio must be in [0, 1], got {meanflow_ratio}")
        if not meanflow_t_std > 0 or meanflow_norm_p < 0 or not meanflow_norm_eps > 0:
            raise ValueError(
                "meanflow_t_std and meanflow_norm_eps must be positive and meanflow_norm_p >= 0"
            )
        if guidance_scale < 0 or not 0 <= meanflow_kappa < 1:
            raise ValueError(
                f"guidance_scale must be >= 0 and meanflow_kappa in [0, 1), got "
                f"{guidance_scale} and {meanflow_kappa}"
            )
        check_attention(attention)
        self.ratio, self.t_mean, self.t_std = meanflow_ratio, meanflow_t_mean, meanflow_t_std
        self.norm_p, self.norm_eps = meanflow_norm_p, meanflow_norm_eps
        self.class_dropout, self.num_classes = class_dropout, num_classes
        self.guidance_scale, self.kappa, self.attention = guidance_scale, meanflow_kappa, attention

    @property
    def guided(self) -> bool:
        """True when the targets are guided (a class-conditional run with a guidance that
        changes them, ``w > 0`` and not the plain ``w = 1, k = 0``)."""
        plain = self.guidance_scale == 1 and self.kappa == 0
        return self.num_classes > 0 and self.guidance_scale > 0 and not plain

    def training_network(self, model: nn.Module) -> nn.Module:
        """The module the trainer compiles and wraps in DDP: ``MeanFlowForward``."""
        return MeanFlowForward(model, self.attention)

    def _inputs(self, x1, y, generator, query, x0=None):
        """``(x_t, t, d, y, v)``: the path point, times, labels after dropout and the velocity of
        the identity (guided on the rows that keep their label). ``query(x, t, d, y)`` is the
        plain network (the guidance queries)."""
        n = x1.shape[0]
        if x0 is None:
            x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        t, d = sample_meanflow_times(n, self.ratio, self.t_mean, self.t_std, generator, x1.device)
        x_t = interpolate(x0, x1, t)
        v = x1 - x0
        y_in = drop_labels(y, self.class_dropout, self.num_classes, generator)
        if self.guided and y is not None:
            kept = y_in != self.num_classes
            v = guided_velocity(query, x_t, t, v, y, kept, self.guidance_scale, self.kappa)
        return x_t, t, d, y_in, v

    def _targets(self, x_t, t, d, y, target) -> TrainingTargets:
        return TrainingTargets(x_t=x_t, t=t, level=d, y=y, target=target, group=(d > 0).long() - 1)

    def make_targets(self, x1, y, *, generator, model: nn.Module, x0=None, **_) -> TrainingTargets:
        """Inputs and targets alone (no prediction; ``level`` holds the float step sizes ``d``),
        the same draws as :meth:`loss`: the target from a separate JVP of the plain module."""
        plain = unwrap_module(model)
        plain = plain.net if isinstance(plain, MeanFlowForward) else plain
        x_t, t, d, y_in, v = self._inputs(x1, y, generator, plain, x0)
        target = meanflow_target(plain, x_t, t, d, v, y_in, self.attention)
        return self._targets(x_t, t, d, y_in, target)

    def loss(self, model: nn.Module, x1, y, *, generator, x0=None, **_) -> ObjectiveOutput:
        """One pass: ``u`` and ``du/dt`` from ``model`` (the trainer's compiled and wrapped
        ``MeanFlowForward``, or a plain network, wrapped here; the JVP on the jumping rows, a
        plain forward pass on the others), the target
        ``stopgrad(v + d du/dt)`` and the adaptively weighted loss of ``u``."""
        if not isinstance(unwrap_module(model), MeanFlowForward):
            model = MeanFlowForward(model, self.attention)
        query = getattr(model, "module", model)  # the guidance queries skip DDP: no gradient
        x_t, t, d, y_in, v = self._inputs(x1, y, generator, query, x0)
        u, dudt = model(x_t, t, d, y_in, v, jumps=jump_rows(x1.shape[0], self.ratio))
        target = v + _rows(d, v) * dudt.to(v.dtype)
        loss, diagnostics = adaptive_loss(u, target, d, self.norm_p, self.norm_eps)
        return ObjectiveOutput(
            loss=loss, diagnostics=diagnostics, targets=self._targets(x_t, t, d, y_in, target)
        )
