"""Speed of training and sampling on one GPU, against the reference DiT, in one run (issue 12).

It measures the bf16 matmul peak; times the full training step (objective, forward, backward,
AdamW, EMA) of this project for each model shape and method, eager and compiled, and the same
step with the facebookresearch/DiT network (``--reference PATH`` to a copy of its ``models.py``;
never committed, its license is CC BY-NC); checks that the optimised step's loss, parameter
update, EMA and diagnostics equal a plain eager step's on the same batch; and times sampling at 1
and 128 steps through ``shortcut_mini.sample`` against the forward-only time of the same model
over the same images at its fastest (compiled, bf16, best batch size).

MeanFlow's rows are timed once per attention kernel of its JVP (``--meanflow-attention``: "math",
"matmul", or by default "auto", the kernel the trainer uses in each mode); its "before" row is
its step before the one-pass form (an eager JVP, then a compiled forward pass), and its equality
check compares the one-pass step with that two-pass step. The table ends with each MeanFlow
step's cost in flow-matching steps of the same model and compilation (the target: at most 1.6).

    PYTHONPATH=$PWD python benchmarks/speed.py --reference .carry/dit_models.py --budget-s 480
    PYTHONPATH=$PWD python benchmarks/speed.py --smoke      # a tiny CPU version, seconds

Results go to ``--out`` (default ``benchmarks/results/speed.json``), rewritten atomically after
every measurement, so a run cut short keeps what it measured; ``--budget-s`` skips the work that
no longer fits and lists it under ``skipped``; ``--append`` keeps the entries of an earlier run
in ``--out`` and measures only the missing ones. A markdown table is printed at the end
(``speed_table.py`` renders the same from the file).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from shortcut_mini.capability import choose_precision
from shortcut_mini.common import atomic_write_json, device_name, git_commit
from shortcut_mini.objectives import OBJECTIVES
from shortcut_mini.objectives.meanflow import JVP_ATTENTION
from shortcut_mini.speed import drops_zero_products

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules below
import speed_checks  # noqa: E402
import speed_steps  # noqa: E402
from speed_table import render  # noqa: E402

SHAPES = {"dit-mini": (1, 28, 28), "dit-s": (3, 32, 32), "dit-b": (4, 32, 32)}
SMOKE_SHAPES = {"dit-tiny": (1, 8, 8)}
REFERENCE_METHODS = ("flow_matching", "shortcut")
SCHEMA_KEYS = ("device", "torch", "commit", "bf16_peak_tflops", "train", "sampling")
TRAIN_KEYS = (
    "model",
    "shape",
    "method",
    "impl",
    "compiled",
    "img_per_s",
    "tflops",
    "peak_mem_gb",
    "attention",
)
SAMPLING_KEYS = ("model", "steps", "n", "seconds", "forward_only_seconds")


class Budget:
    """Wall-clock budget of the whole run; work that would not fit is skipped and listed."""

    def __init__(self, seconds: float | None):
        self.t0, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        if self.seconds is None:
            return float("inf")
        return self.seconds - (time.perf_counter() - self.t0)

    def fits(self, estimate_s: float) -> bool:
        return self.left() >= estimate_s


class Results:
    """The JSON document, saved atomically after every entry."""

    def __init__(self, path: Path, append: bool, settings: dict):
        self.path = path
        old = json.loads(path.read_text()) if append and path.exists() else {}
        self.doc = {
            "device": old.get("device"),
            "torch": str(torch.__version__),
            "commit": git_commit(),
            "bf16_peak_tflops": old.get("bf16_peak_tflops"),
            "train": old.get("train", []),
            "sampling": old.get("sampling", []),
            "checks": old.get("checks", []),
            "skipped": [],
            "settings": settings,
        }

    def has(self, kind: str, **key) -> bool:
        return any(all(e.get(k) == v for k, v in key.items()) for e in self.doc[kind])

    def add(self, kind: str, entry: dict) -> None:
        self.doc[kind].append(entry)
        self.save()

    def error(self, what: str, exc: BaseException) -> None:
        """A measurement that raised: recorded, and the run goes on with the next one."""
        self.doc.setdefault("errors", []).append({"what": what, "error": repr(exc)[:2000]})
        print(f"FAILED {what}: {exc!r}", file=sys.stderr, flush=True)
        self.save()

    def skip(self, what: str, why: str) -> None:
        self.doc["skipped"].append({"what": what, "why": why})
        print(f"skipped {what}: {why}", file=sys.stderr, flush=True)
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.doc)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_peak_tflops(device, sizes, repeats: int) -> float:
    """The best TFLOP/s of square bf16 matmuls (``n**3 * 2`` FLOPs each) over ``sizes``."""
    best = 0.0
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync(device)
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e12)
    return best


def host_syncs(step, i: int, device) -> int | None:
    """How many times one step waits for the GPU (CUDA's sync debug mode); None on the CPU."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(i)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def time_step(step, batch: int, device, args) -> dict:
    """Warm up (compilation included), then the median img/s of ``args.windows`` windows."""
    t0 = time.perf_counter()
    for i in range(args.warmup):
        step(i)
    sync(device)
    warmup_s = time.perf_counter() - t0
    i = args.warmup
    t0 = time.perf_counter()
    step(i)
    sync(device)
    per_step = max(time.perf_counter() - t0, 1e-4)
    iters = max(2, min(200, round(args.window_s / per_step)))
    rates = []
    for _ in range(args.windows):
        i += 1
        t0 = time.perf_counter()
        for j in range(iters):
            step(i + j)
        sync(device)
        rates.append(iters * batch / (time.perf_counter() - t0))
        i += iters
        step.end_window(i)
    return {"img_per_s": statistics.median(rates), "warmup_s": warmup_s, "last": i, "iters": iters}


def count_flops(step, i: int) -> float:
    """FLOPs of one step (forward and backward; the optimizer's are not counted), less the
    products by the weights' zero tangents in a JVP, which the compiled step does not compute
    (``shortcut_mini.zero_products``; an eager MeanFlow step does them)."""
    from torch.utils.flop_counter import FlopCounterMode

    from shortcut_mini.zero_products import SkipMadeZeroProducts

    with FlopCounterMode(display=False) as counter, SkipMadeZeroProducts():
        step(i)
    return float(counter.get_total_flops())


def train_entry(
    impl, model, method, compiled, mode, args, device, reference, flops, attention=None
) -> dict:
    """Time one configuration; FLOPs are counted once per (impl, model, method, attention),
    eagerly."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    how = (args, device, reference, attention)
    step = speed_steps.make_step(impl, model, method, compiled, mode, *how)
    key = (impl, model, method, attention)
    if key not in flops:
        eager = step
        if compiled:
            eager = speed_steps.make_step(impl, model, method, False, None, *how)
        flops[key] = count_flops(eager, 0)
        del eager
    timing = time_step(step, args.batch, device, args)
    syncs = host_syncs(step, timing["last"] + 1, device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    rate = timing["img_per_s"]
    return {
        "model": model,
        "shape": list(args.shapes[model]),
        "method": method,
        "impl": impl,
        "compiled": compiled,
        "compile_mode": (mode or "default") if compiled else None,
        "img_per_s": round(rate, 1),
        "tflops": round(flops[key] * rate / args.batch / 1e12, 3),
        "peak_mem_gb": None if peak is None else round(peak, 3),
        "batch": args.batch,
        "gflop_per_step": round(flops[key] / 1e9, 3),
        "warmup_s": round(timing["warmup_s"], 2),
        "steps_per_window": timing["iters"],
        "host_syncs_per_step": syncs,
        "variant": None,
        "attention": attention,
    }


def train_configs(args, models, has_reference: bool):
    """(impl, model, method, compiled, mode, attention) in the order they are measured
    (``attention``: MeanFlow's kernel inside the JVP, None for the other methods)."""
    compiled = {"both": (False, True), "yes": (True,), "no": (False,)}[args.compiled]
    for model in models:
        impls = ["project"] + ["reference"] * has_reference
        for impl in impls:
            methods = [m for m in args.methods if impl == "project" or m in REFERENCE_METHODS]
            for c in compiled:
                modes = [args.compile_mode] if c else [None]
                if c and model in args.cudagraphs_on:
                    modes.append("reduce-overhead")
                variants = list(speed_steps.method_variants(methods, args.meanflow_attention, c))
                for mode in modes:
                    for method, attention in variants:
                        yield impl, model, method, c, mode, attention


def estimate_s(model: str, compiled: bool, first_compile: bool, args) -> float:
    if args.smoke:
        return 0.0
    scale = {"dit-mini": 1.0, "dit-s": 1.5, "dit-b": 2.0}.get(model, 1.0)
    run = scale * (args.warmup + 2) * 0.1 + args.windows * args.window_s + 2
    return run + (45 * scale if first_compile else 0)


def run_train(args, models, device, results: Results, budget: Budget, reference) -> None:
    flops: dict = {}
    compiled_once: set = set()
    for impl, model, method, compiled, mode, attention in train_configs(
        args, models, reference is not None
    ):
        how = f"compiled ({mode or 'default'})" if compiled else "eager"
        kernel = f" attention {attention}" if attention else ""
        what = f"train {impl} {model} {method}{kernel} {how}"
        key = dict(model=model, method=method, impl=impl, compiled=compiled, attention=attention)
        key["compile_mode"] = (mode or "default") if compiled else None
        if results.has("train", variant=None, **key):
            continue
        first = compiled and (impl, model, mode) not in compiled_once
        if not budget.fits(estimate_s(model, compiled, first, args)):
            results.skip(what, f"the time budget has {budget.left():.0f} s left")
            continue
        try:
            entry = train_entry(
                impl, model, method, compiled, mode, args, device, reference, flops, attention
            )
        except Exception as exc:  # one failed configuration must not cost the others
            results.error(what, exc)
            continue
        compiled_once.add((impl, model, mode))
        print(f"{what}: {entry['img_per_s']:,.0f} img/s, {entry['tflops']:.1f} TFLOP/s", flush=True)
        results.add("train", entry)


BEFORE = "before: host-synchronising diagnostics"
BEFORE_MEANFLOW = "before: two-pass step (eager JVP, then the forward pass)"


def run_before(args, device, results: Results, budget: Budget) -> None:
    """The project's step on the first model as it was before this work, measured in the same
    run: with host-synchronising diagnostics (every step waits for the GPU), and MeanFlow's
    two-pass step (also with CUDA graphs where the model is timed with them)."""
    model, compiled = args.models[0], args.compiled != "no"
    for method in args.methods:
        before = BEFORE_MEANFLOW if method == "meanflow" else BEFORE
        modes = [args.compile_mode if compiled else None]
        if method == "meanflow" and compiled and model in args.cudagraphs_on:
            modes.append("reduce-overhead")
        for mode in modes:
            how = f"compiled ({mode or 'default'})" if compiled else "eager"
            what = f"train project {model} {method} {how} ({before})"
            key = dict(model=model, method=method, impl="project", variant=before)
            if results.has("train", compile_mode=(mode or "default") if compiled else None, **key):
                continue
            if not budget.fits(estimate_s(model, compiled, False, args)):
                results.skip(what, f"the time budget has {budget.left():.0f} s left")
                continue
            context = (
                speed_steps.two_pass_meanflow()
                if method == "meanflow"
                else speed_steps.host_sync_diagnostics()
            )
            try:
                with context:
                    entry = train_entry(
                        "project", model, method, compiled, mode, args, device, None, {}
                    )
            except Exception as exc:
                results.error(what, exc)
                continue
            entry["variant"] = before
            print(f"{what}: {entry['img_per_s']:,.0f} img/s", flush=True)
            results.add("train", entry)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/speed.json"))
    p.add_argument("--reference", type=Path, help="a copy of facebookresearch/DiT models.py")
    p.add_argument("--models", nargs="+", default=["dit-mini", "dit-b", "dit-s"])
    p.add_argument("--methods", nargs="+", default=["flow_matching", "shortcut", "meanflow"])
    p.add_argument(
        "--meanflow-attention",
        nargs="+",
        default=["auto"],
        help="attention kernels of MeanFlow's JVP, each timed (shortcut_mini.models.dit); auto: "
        "the trainer's (math compiled, matmul eager; the math kernel fails eagerly in bf16)",
    )
    p.add_argument("--batch", type=int, default=256)
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast of every step; auto: the package's rule (shortcut_mini.capability)",
    )
    p.add_argument("--compiled", choices=["both", "yes", "no"], default="both")
    p.add_argument("--compile-mode", default="default", help="mode of every compiled step")
    p.add_argument("--compile-backend", default="inductor", help="'eager' tests tracing only")
    p.add_argument(
        "--cudagraphs-on",
        nargs="*",
        default=["dit-mini"],
        help="models whose steps (project and reference) are also timed with mode reduce-overhead",
    )
    p.add_argument("--check-model", default=None, help="model of the equality check")
    p.add_argument("--sample-model", default="dit-mini")
    p.add_argument("--sample-n", type=int, default=10_000)
    p.add_argument("--sample-batches", type=int, nargs="+", default=[2500, 10_000])
    p.add_argument("--sample-steps", type=int, nargs="+", default=[1, 128])
    p.add_argument(
        "--before-sample-steps",
        type=int,
        nargs="*",
        default=[1],
        help="budgets also sampled as before this work (eager fp32, batch 1024)",
    )
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--window-s", type=float, default=1.0, help="seconds per timed window")
    p.add_argument("--budget-s", type=float, default=None, help="total wall-clock budget")
    p.add_argument("--append", action="store_true", help="keep --out's entries, add the rest")
    p.add_argument(
        "--skip", nargs="*", default=[], choices=["train", "before", "check", "sampling"]
    )
    p.add_argument("--smoke", action="store_true", help="a tiny version on the CPU, seconds")
    args = p.parse_args(argv)
    unknown = sorted(set(args.methods) - set(OBJECTIVES))
    if unknown:
        p.error(f"--methods: unknown {unknown}; registered: {sorted(OBJECTIVES)}")
    bad_kernels = sorted(set(args.meanflow_attention) - set(JVP_ATTENTION))
    if bad_kernels:
        p.error(f"--meanflow-attention: unknown {bad_kernels}; kernels: {list(JVP_ATTENTION)}")
    if args.smoke:
        args.models, args.batch, args.precision = list(SMOKE_SHAPES), 8, "fp32"
        args.compiled = "no" if args.compile_backend == "inductor" else args.compiled
        args.sample_model, args.sample_n, args.sample_batches = "dit-tiny", 16, [8, 16]
        args.warmup, args.windows, args.window_s = 1, 2, 0.0
    args.shapes = {**SHAPES, **SMOKE_SHAPES}
    bad = sorted(set(args.models + [args.sample_model]) - set(args.shapes))
    if bad:
        p.error(f"unknown model(s) {bad}; this benchmark knows {sorted(args.shapes)}")
    args.check_model = args.check_model or args.models[0]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    # every model shape, batch size and grad mode is one graph of the same forward: allow many
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    # bf16 at compute capability >= 8.0, fp16 below, fp32 on the CPU: what training would use
    args.precision = choose_precision(args.precision, device)
    budget = Budget(args.budget_s)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    settings["shapes"] = {k: list(v) for k, v in args.shapes.items()}
    results = Results(args.out, args.append, settings)
    results.doc["device"] = device_name() if device.type == "cuda" else "cpu"
    results.doc["zero_product_pass"] = drops_zero_products()  # in every compiled step
    reference = speed_steps.load_reference(args.reference) if args.reference else None
    if results.doc["bf16_peak_tflops"] is None:
        sizes, repeats = ([64], 3) if args.smoke else ([4096, 8192, 16384], 20)
        results.doc["bf16_peak_tflops"] = round(bf16_peak_tflops(device, sizes, repeats), 2)
        results.save()
    # the first model, its check and sampling come first: a budget cut drops the other models
    if "train" not in args.skip:
        run_train(args, args.models[:1], device, results, budget, reference)
    if "before" not in args.skip:
        run_before(args, device, results, budget)
    if "check" not in args.skip:
        speed_checks.run_checks(args, device, results, budget)
    if "sampling" not in args.skip:
        speed_checks.run_sampling(args, device, results, budget)
    if "train" not in args.skip:
        run_train(args, args.models[1:], device, results, budget, reference)
    results.doc["wall_s"] = round(time.perf_counter() - budget.t0, 1)
    results.save()
    print(render(results.doc))
    return results.doc


if __name__ == "__main__":
    main()
