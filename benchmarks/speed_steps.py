"""The training steps that ``speed.py`` times: this project's (the trainer's own step), the
reference DiT's (facebookresearch/DiT ``models.py``, loaded from a path, never committed: its
license is CC BY-NC), and a plain eager step that the optimised one is checked against.

Every step is the full step: the objective (for shortcut: two no-grad queries on 1/4 of the
batch; for MeanFlow: one JVP pass that gives the prediction and its derivative), forward,
backward, AdamW, EMA. Data is synthetic (a step's cost does not depend on pixel values).
MeanFlow's step before its one-pass form (an eager JVP of the plain module for the target, then a
second, compiled forward pass) is kept here as :func:`two_pass_meanflow`, to time it and to check
the new step against it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from shortcut_mini.config import TrainConfig
from shortcut_mini.data import ArrayDataset
from shortcut_mini.levels import check_base_steps
from shortcut_mini.objectives.base import ObjectiveOutput, TrainingTargets
from shortcut_mini.objectives.meanflow import MeanFlow, adaptive_loss, jvp_attention
from shortcut_mini.speed import compile_for_training, mark_step_begin
from shortcut_mini.train.components import build_components
from shortcut_mini.train.devices import autocast
from shortcut_mini.train.distributed import DistInfo
from shortcut_mini.train.metrics_log import MetricsLog
from shortcut_mini.train.trainer import _Loop, step_seed

MODEL_SPECS = {  # the project's presets, for the reference network of the same shape
    "dit-tiny": dict(hidden=64, depth=4, heads=4, patch=2),
    "dit-mini": dict(hidden=256, depth=6, heads=4, patch=2),
    "dit-s": dict(hidden=384, depth=12, heads=6, patch=2),
    "dit-b": dict(hidden=768, depth=12, heads=12, patch=2),
}


@functools.lru_cache(maxsize=4)
def synthetic_images(shape, n: int, device) -> ArrayDataset:
    """``n`` random uint8 images of ``shape`` on ``device`` (made once per shape)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)
    data = ArrayDataset(x=x, y=torch.zeros(n), num_classes=0, kind="image", name="synthetic")
    return data.to(device)


def train_config(model: str, method: str, batch: int, device, precision: str, compiled: bool):
    return TrainConfig(
        data="digits",  # recorded only: the data is synthetic
        model=model,
        method=method,
        batch_size=batch,
        device=str(device),
        precision=precision,
        compile=compiled,
        progress=False,
        log_every=0,
    )


class ProjectStep:
    """The trainer's own step (``train.trainer._Loop.step``) and its metrics bookkeeping.
    ``attention``: MeanFlow's attention kernel inside the JVP (None: the objective's default)."""

    def __init__(
        self,
        model,
        shape,
        method,
        batch,
        device,
        precision,
        compiled,
        mode,
        options,
        n,
        attention=None,
    ):
        cfg = train_config(model, method, batch, device, precision, compiled)
        self.dinfo = {"name": "synthetic", "kind": "image", "shape": list(shape), "num_classes": 0}
        self.parts = build_components(cfg, self.dinfo, device, precision)
        if attention is not None:
            self.parts.objective.attention = attention  # read when the network is built below
        data = synthetic_images(tuple(shape), n, device)
        self.loop = _Loop(cfg, DistInfo(), device, precision, data, self.dinfo, self.parts, None)
        self.loop.compile_mode, self.loop.compile_options = mode, dict(options)
        self.net = self.loop.network()
        self.log = MetricsLog(None, [], DistInfo(), batch)
        self.log.start_window(0)
        self.model = self.parts.model

    def __call__(self, step: int) -> dict:
        diagnostics, _ = self.loop.step(self.net, step)
        self.log.add(diagnostics)
        return diagnostics

    def end_window(self, step: int) -> None:
        self.log.log(step, 0.0, 0.0)  # what a log step does: one host sync, sums reset


def method_variants(methods, attentions, compiled: bool):
    """``(method, attention)`` pairs of a compiled or eager step: MeanFlow once per attention
    kernel of its JVP (``"auto"``: the kernel the trainer uses in that mode), every other method
    once with ``None``."""
    for method in methods:
        kernels = (
            [jvp_attention(a, compiled) for a in attentions] if method == "meanflow" else [None]
        )
        for attention in dict.fromkeys(kernels):
            yield method, attention


def make_step(impl, model, method, compiled, mode, args, device, reference, attention=None):
    """A :class:`ProjectStep` or :class:`ReferenceStep` for the benchmark's settings ``args``."""
    shape, batch, precision = args.shapes[model], args.batch, args.precision
    n = 4 * batch if args.smoke else 60_000  # a dataset of Fashion-MNIST's size: epochs as there
    options = {"backend": args.compile_backend} if args.compile_backend != "inductor" else {}
    how = (batch, device, precision, compiled, mode, options, n)
    if impl == "project":
        return ProjectStep(model, shape, method, *how, attention=attention)
    return ReferenceStep(reference, model, shape, method, *how)


def plain_step(model, ema, objective, x1, step: int, seed: int, device, precision, lr=1e-4):
    """One step written plainly, eagerly: non-fused AdamW, a per-parameter EMA loop, and the
    per-group diagnostics read with ``torch.unique`` (a host sync), as the package did before.
    Returns the loss diagnostic (the plain mean squared error) and the other diagnostics; updates
    ``model`` and ``ema`` in place."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, foreach=False)
    gen = torch.Generator(device).manual_seed(step_seed(seed, step, 0))
    with autocast(device, precision):
        out = objective.loss(model, x1, None, generator=gen, step=step, ema_model=ema)
    if isinstance(objective, MeanFlow):  # its own diagnostics (no per-level groups)
        diagnostics = {k: diagnostic_value(v) for k, v in out.diagnostics.items() if k != "loss"}
    else:
        diagnostics = unique_diagnostics(out.targets, model, device, precision)  # before update
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    opt.step()
    beta = min(0.999, (1 + step) / (10 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(beta).add_(p, alpha=1 - beta)
    return float(out.diagnostics["loss"]), diagnostics


def diagnostic_value(value) -> float:
    """A diagnostic as a number: a tensor, or a ``(mean, present)`` pair (MeanFlow's)."""
    return float(value[0] if isinstance(value, tuple) else value)


def unique_diagnostics(targets: TrainingTargets, model, device, precision) -> dict[str, float]:
    """Per-group mean losses as the package computed them before: ``torch.unique`` + masks."""
    with torch.no_grad(), autocast(device, precision):
        pred = model(targets.x_t, targets.t, targets.level, targets.y)
    per_row = (pred.float() - targets.target.float()).pow(2).flatten(1).mean(dim=1)
    out = {}
    for g in torch.unique(targets.group).tolist():
        out["loss_flow" if g < 0 else f"loss_l{g}"] = float(per_row[targets.group == g].mean())
    return out


@contextlib.contextmanager
def host_sync_diagnostics():
    """The per-group diagnostics as the package computed them before (``torch.unique(...)
    .tolist()`` and one boolean mask per group: host synchronisations), to time the difference."""
    from shortcut_mini.objectives import base

    def before(per_row, group, groups=None):
        per_row = per_row.detach()
        return {
            ("loss_flow" if g < 0 else f"loss_l{g}"): per_row[group == g].mean()
            for g in torch.unique(group).tolist()
        }

    original, base.group_diagnostics = base.group_diagnostics, before
    try:
        yield
    finally:
        base.group_diagnostics = original


def _two_pass_loss(self, model, x1, y, *, generator, x0=None, **_) -> ObjectiveOutput:
    """MeanFlow's step before the one-pass form: the target from an eager JVP of the plain module
    (``make_targets``), then a second forward pass of ``model`` (compiled, under DDP)."""
    targets = self.make_targets(x1, y, generator=generator, model=model, x0=x0)
    pred = model(targets.x_t, targets.t, targets.level, targets.y)
    loss, diagnostics = adaptive_loss(
        pred, targets.target, targets.level, self.norm_p, self.norm_eps
    )
    return ObjectiveOutput(loss=loss, diagnostics=diagnostics, targets=targets)


@contextlib.contextmanager
def two_pass_meanflow():
    """MeanFlow's step as it was before the one-pass form (see :func:`_two_pass_loss`): the
    trainer compiles the model itself, and each step runs the JVP eagerly, then the forward."""
    patched = {"loss": _two_pass_loss, "training_network": lambda self, model: model}
    original = {name: getattr(MeanFlow, name) for name in patched}
    for name, fn in patched.items():
        setattr(MeanFlow, name, fn)
    try:
        yield
    finally:
        for name, fn in original.items():
            setattr(MeanFlow, name, fn)


# ---- the reference network ---------------------------------------------------------------


def load_reference(path: str | Path):
    """Import facebookresearch/DiT ``models.py`` from ``path`` (it needs ``timm``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--reference {path}: no such file; give a copy of facebookresearch/DiT models.py"
        )
    spec = importlib.util.spec_from_file_location("dit_reference_models", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile re-imports the module of the code it traces
    spec.loader.exec_module(module)
    return module


class ReferenceDiT(nn.Module):
    """The reference ``DiT`` behind this project's call ``(x, t, level, y)``: ``t`` and the
    step size ``d = 2**-level`` are each embedded by the reference's ``TimestepEmbedder``
    (scaled by 1000, as its diffusion timesteps) and added; no labels (unconditional)."""

    def __init__(self, module, shape, *, hidden, depth, heads, patch, M: int = 128):
        super().__init__()
        channels, size, _ = shape
        self.net = module.DiT(
            input_size=size,
            patch_size=patch,
            in_channels=channels,
            hidden_size=hidden,
            depth=depth,
            num_heads=heads,
            class_dropout_prob=0.0,
            num_classes=1,
            learn_sigma=False,
        )
        del self.net.y_embedder  # unconditional: the label table would get no gradient
        self.d_embedder = module.TimestepEmbedder(hidden)
        self.M, self.num_classes = M, 0

    def forward(self, x, t, level, y=None):
        n = self.net
        h = n.x_embedder(x) + n.pos_embed
        c = n.t_embedder(t * 1000) + self.d_embedder(torch.exp2(-level.float()) * 1000)
        for block in n.blocks:
            h = block(h, c)
        return n.unpatchify(n.final_layer(h, c))


class ReferenceStep:
    """The reference network in a step written as its users would write it: the same shortcut
    work (two no-grad queries on 1/4 of the batch, then forward and backward on the whole
    batch), fused AdamW on a GPU, a foreach EMA; no diagnostics."""

    def __init__(
        self, module, model, shape, method, batch, device, precision, compiled, mode, options, n
    ):
        torch.manual_seed(0)
        self.model = ReferenceDiT(module, shape, **MODEL_SPECS[model]).to(device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        fused = {"fused": True} if device.type == "cuda" else {}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.1, **fused)
        self.net = self.model
        if compiled:
            self.net = compile_for_training(self.model, mode, **options)
        self.mode, self.compiled = mode, compiled
        self.data = synthetic_images(tuple(shape), n, device)
        self.batch, self.device, self.precision = batch, device, precision
        self.K = check_base_steps(self.model.M)
        self.n_sc = round(0.25 * batch) if method == "shortcut" else 0

    def targets(self, x1):
        B, n, K, M, dev = self.batch, self.n_sc, self.K, self.model.M, self.device
        x0 = torch.randn_like(x1)
        t = torch.randint(0, M, (B,), device=dev).float() / M
        level = torch.full((B,), K, device=dev)
        target = x1 - x0
        if n:
            lev = torch.randint(0, K, (n,), device=dev)
            starts = torch.exp2(lev.float())
            t = torch.cat([torch.floor(torch.rand(n, device=dev) * starts) / starts, t[n:]])
            level = torch.cat([lev, level[n:]])
        x_t = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * x1
        if n:
            d = torch.exp2(-(lev + 1).float())
            with torch.no_grad():
                b1 = self.net(x_t[:n], t[:n], lev + 1).float()
                x_mid = (x_t[:n] + d.view(-1, 1, 1, 1) * b1).clamp(-4, 4)
                b2 = self.net(x_mid, t[:n] + d, lev + 1).float()
            target = torch.cat([((b1 + b2) / 2).clamp(-4, 4), target[n:]])
        return x_t, t, level, target

    def __call__(self, step: int) -> None:
        if self.compiled:
            mark_step_begin(self.mode)
        idx = torch.randint(0, len(self.data), (self.batch,), device=self.data.x.device)
        x1, _ = self.data.batch(idx, self.device)
        with autocast(self.device, self.precision):
            x_t, t, level, target = self.targets(x1)
            pred = self.net(x_t, t, level)
            loss = (pred.float() - target).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        beta = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(
                list(self.ema.parameters()), list(self.model.parameters()), 1 - beta
            )

    def end_window(self, step: int) -> None:
        pass


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|`` (L2 norms), 0 when both are zero."""
    den = float(b.norm())
    return float((a - b).norm()) / den if den > 0 else float((a - b).norm())


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of the angle between ``a`` and ``b`` (1 when both are zero)."""
    den = float(a.norm()) * float(b.norm())
    return float((a * b).sum()) / den if den > 0 else float(torch.equal(a, b))
