"""The parts of ``speed.py`` after the training steps: the equality check of the optimised step
against a plain eager one, and the sampling measurement against the forward-only time.

MeanFlow's optimised step (one compiled JVP pass) is checked against its step before that change
(an eager JVP for the target, then a second forward pass: ``speed_steps.two_pass_meanflow``)."""

from __future__ import annotations

import contextlib
import copy
import time

import speed_steps
import torch

from shortcut_mini.api import sample
from shortcut_mini.config import TrainConfig
from shortcut_mini.models import build_model
from shortcut_mini.speed import compile_for_sampling, sampling_autocast
from shortcut_mini.train.trainer import Run

TOLERANCES = {  # relative errors of loss, diagnostics, update norm; least cosine of the updates
    "fp32": {
        "loss_rel": 1e-5,
        "diagnostics_rel": 1e-4,
        "update_norm_rel": 1e-4,
        "update_cosine": 0.9999,
    },
    "bf16": {
        "loss_rel": 2e-2,
        "diagnostics_rel": 5e-2,
        "update_norm_rel": 2e-2,
        "update_cosine": 0.98,
    },
}
"""In bf16 the first AdamW update is close to ``lr * sign(grad)``: a gradient entry near zero can
change sign between two correct computations, so the updates are compared by direction (cosine:
the fraction of entries that agree) and by length (norm ratio); their relative error is
reported beside them. The EMA's change is held to the same two."""


def perturb(model: torch.nn.Module, seed: int = 1, scale: float = 0.02) -> None:
    """Add seeded noise to every parameter: zero-initialised layers would hide differences."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen).to(p.device, p.dtype))


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().double().flatten() for t in tensors])


def _norm_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``| |a| / |b| - 1 |``: how much longer or shorter ``a`` is than ``b``."""
    return abs(float(a.norm()) / max(float(b.norm()), 1e-30) - 1)


def _diagnostics_error(opt: dict, plain: dict) -> float:
    value = speed_steps.diagnostic_value
    errors = [abs(value(opt[k]) - v) / max(abs(v), 1e-12) for k, v in plain.items() if k in opt]
    missing = set(plain) ^ {k for k in opt if k != "loss"}
    return float("inf") if missing else max(errors, default=0.0)


def equality_check(method: str, compiled: bool, mode, args, device, attention=None) -> dict:
    """One step of the optimised trainer step and of :func:`speed_steps.plain_step` from the
    same (perturbed) weights on the same batch and noise; their differences. MeanFlow's plain
    step is its two-pass step (``attention``: the kernel of the optimised step's JVP)."""
    step = speed_steps.make_step(
        "project", args.check_model, method, compiled, mode, args, device, None, attention
    )
    perturb(step.model)
    step.parts.ema.model.load_state_dict(step.model.state_dict())
    plain_model, plain_ema = copy.deepcopy(step.model), copy.deepcopy(step.parts.ema.model)
    before, ema_before = flat(step.model.parameters()), flat(plain_ema.parameters())
    loop, s = step.loop, 0
    x1, _ = loop.data.batch(loop.order.indices(s), device)
    diagnostics = step(s)
    loss = float(diagnostics["loss"])
    reference = (
        speed_steps.two_pass_meanflow() if method == "meanflow" else contextlib.nullcontext()
    )
    with reference:
        plain_loss, plain_diag = speed_steps.plain_step(
            plain_model,
            plain_ema,
            loop.parts.objective,
            x1,
            s,
            loop.cfg.seed,
            device,
            args.precision,
        )
    update = flat(step.model.parameters()) - before
    plain_update = flat(plain_model.parameters()) - before
    ema_change = flat(step.parts.ema.model.parameters()) - ema_before
    plain_ema_change = flat(plain_ema.parameters()) - ema_before
    tol = TOLERANCES["fp32" if args.precision == "fp32" else "bf16"]
    result = {
        "model": args.check_model,
        "method": method,
        "compiled": compiled,
        "compile_mode": (mode or "default") if compiled else None,
        "attention": attention,
        "against": "two-pass step" if method == "meanflow" else "plain eager step",
        "precision": args.precision,
        "loss": loss,
        "plain_loss": plain_loss,
        "loss_rel_err": abs(loss - plain_loss) / max(abs(plain_loss), 1e-12),
        "update_rel_err": speed_steps.relative_error(update, plain_update),
        "update_cosine": speed_steps.cosine(update, plain_update),
        "update_norm_rel_err": _norm_error(update, plain_update),
        "ema_change_cosine": speed_steps.cosine(ema_change, plain_ema_change),
        "ema_change_norm_rel_err": _norm_error(ema_change, plain_ema_change),
        "ema_change_rel_err": speed_steps.relative_error(ema_change, plain_ema_change),
        "diagnostics_rel_err": _diagnostics_error(diagnostics, plain_diag),
        "tolerance": tol,
    }
    result["passed"] = bool(
        result["loss_rel_err"] <= tol["loss_rel"]
        and result["diagnostics_rel_err"] <= tol["diagnostics_rel"]
        and min(result["update_cosine"], result["ema_change_cosine"]) >= tol["update_cosine"]
        and max(result["update_norm_rel_err"], result["ema_change_norm_rel_err"])
        <= tol["update_norm_rel"]
    )
    return result


def run_checks(args, device, results, budget) -> None:
    compiled = args.compiled != "no"
    modes = [args.compile_mode if compiled else None]
    if compiled and args.check_model in args.cudagraphs_on:
        modes.append("reduce-overhead")
    for mode in modes:
        for method, attention in speed_steps.method_variants(
            args.methods, args.meanflow_attention, compiled
        ):
            kernel = f" attention {attention}" if attention else ""
            what = f"check {args.check_model} {method}{kernel} {mode or 'default'}"
            key = dict(method=method, attention=attention)
            if results.has("checks", compile_mode=(mode or "default") if compiled else None, **key):
                continue
            if not budget.fits(0 if args.smoke else 20):
                results.skip(what, f"the time budget has {budget.left():.0f} s left")
                continue
            try:
                entry = equality_check(method, compiled, mode, args, device, attention)
            except Exception as exc:  # recorded; the sampling measurement still runs
                results.error(what, exc)
                continue
            print(f"{what}: {'passed' if entry['passed'] else 'FAILED'} {entry}", flush=True)
            results.add("checks", entry)


# ---- sampling ----------------------------------------------------------------------------


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_only_seconds(model, noise, batch: int, compiled: bool, precision: str) -> float:
    """Seconds of one forward pass over every row of ``noise`` (on the device), ``batch`` rows
    at a time, after a warm-up pass; the best of three."""
    device = noise.device
    net = compile_for_sampling(model) if compiled else model
    t = torch.zeros(batch, device=device)
    level = torch.zeros(batch, device=device, dtype=torch.long)
    best = float("inf")
    with torch.no_grad(), sampling_autocast(precision, device):
        for attempt in range(4):
            _sync(device)
            t0 = time.perf_counter()
            for i in range(0, noise.shape[0] - batch + 1, batch):
                net(noise[i : i + batch], t, level)
            _sync(device)
            if attempt:  # the first pass compiles
                best = min(best, time.perf_counter() - t0)
    return best


def sampling_run(model_name: str, shape, device) -> Run:
    model = build_model(model_name, sample_shape=tuple(shape)).to(device).eval()
    perturb(model)
    cfg = TrainConfig(data="digits", model=model_name, method="shortcut", progress=False)
    info = {"name": "synthetic", "kind": "image", "shape": list(shape), "num_classes": 0}
    return Run(model=model, ema=model, config=cfg, data_info=info)


def run_sampling(args, device, results, budget) -> None:
    """Forward-only at each batch size; then ``sample()`` at each budget with the best one."""
    try:
        _run_sampling(args, device, results, budget)
    except Exception as exc:  # recorded; the other models' training steps still run
        results.error(f"sampling {args.sample_model}", exc)


def _run_sampling(args, device, results, budget) -> None:
    name, n = args.sample_model, args.sample_n
    if results.has("sampling", model=name, n=n):
        return
    if not budget.fits(0 if args.smoke else 60 + 3 * len(args.sample_batches) * 10):
        results.skip(f"sampling {name}", f"the time budget has {budget.left():.0f} s left")
        return
    shape = args.shapes[name]
    run = sampling_run(name, shape, device)
    noise = torch.randn((n, *shape), device=device)
    compiled = device.type == "cuda" and args.compile_backend == "inductor"
    precision = "auto"
    forward = {
        b: forward_only_seconds(run.ema, noise, b, compiled, precision)
        for b in args.sample_batches
        if n % b == 0
    }
    best_batch = min(forward, key=forward.get)
    for steps in args.sample_steps:
        t0 = time.perf_counter()
        sample(run, best_batch, steps, batch_size=best_batch, compile=compiled, precision=precision)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        sample(run, n, steps, seed=1, batch_size=best_batch, compile=compiled, precision=precision)
        seconds = time.perf_counter() - t0
        entry = {
            "model": name,
            "steps": steps,
            "n": n,
            "seconds": round(seconds, 4),
            "forward_only_seconds": round(forward[best_batch], 4),
            "batch_size": best_batch,
            "compiled": compiled,
            "first_call_seconds": round(first, 3),
            "forward_only_by_batch": {str(b): round(s, 4) for b, s in forward.items()},
            "ratio_to_forward": round(seconds / (steps * forward[best_batch]), 3),
            "path": "optimised",
        }
        print(f"sampling {name} {steps} steps x {n}: {seconds:.3f} s", flush=True)
        results.add("sampling", entry)
    for steps in args.before_sample_steps:  # the path before this work: eager, fp32
        t0 = time.perf_counter()
        sample(run, n, steps, seed=1, batch_size=1024, compile=False, precision="fp32")
        seconds = time.perf_counter() - t0
        entry = {
            "model": name,
            "steps": steps,
            "n": n,
            "seconds": round(seconds, 4),
            "forward_only_seconds": round(forward[best_batch], 4),
            "batch_size": 1024,
            "compiled": False,
            "path": "before: eager fp32",
            "ratio_to_forward": round(seconds / (steps * forward[best_batch]), 3),
        }
        print(f"sampling {name} {steps} steps x {n}, eager fp32: {seconds:.3f} s", flush=True)
        results.add("sampling", entry)
