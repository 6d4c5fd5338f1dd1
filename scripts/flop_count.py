"""Count each chapter's training and sampling work per profile, on the CPU, without running it.

    python scripts/flop_count.py [--profiles small_gpu gpu cpu] [--out book/results/chapter_flops.json]
    python scripts/flop_count.py --chapters 09_since_the_paper --merge   # count one chapter

For every training run a chapter makes (its method, network, batch and data from the profile
registry, ``shortcut_mini.profiles``) the script trains the same configuration for 2 and for 4
steps (8 and 16 for progressive distillation) on the CPU under ``torch.utils.flop_counter.FlopCounterMode`` and a counter of dispatched
operators; the difference is one step's work, the rest the run's one-off setup (a teacher's
pairs, scaled to the chapter's number of pairs). For every sampling call it counts one sampler
step over a batch of 1,024 rows and multiplies by the rows and steps the chapter samples. Only
the work of ``train``, ``sample`` and ``evaluate`` is counted: plotting, metrics and the
classifier of chapter 5 are left out (they are small beside it).

Two numbers per chapter, because the chapters' networks are small:

* **FLOPs** (matrix products, convolutions, attention; what FlopCounterMode counts). The
  budget: a T4's published fp16 tensor-core peak is 65 TFLOP/s; assuming 10% of it is reached
  (the chapters' matrices are 64 to 256 wide, far too small to fill the tensor cores), a
  10-minute chapter may do ``600 s x 6.5 TFLOP/s = 3.9 PFLOP``.
* **operators** (every ATen call: in eager PyTorch, each is one or more kernel launches). At
  these sizes a step is bound by launching kernels, not by arithmetic. The budget assumes 30 us
  per operator on Colab (Python, dispatcher and launch on its 2-vCPU host), so a 10-minute
  chapter may dispatch ``600 s / 30 us = 20 million``. The one anchor measured here: chapter 1 at
  the ``gpu`` profile (14.4 million operators, this script) took at most 247 s on an H200 shared
  with six other chapters (``book/results/chapter_times_gpu.json``), at most 17 us per operator
  on a fast host.

Both budgets are assumptions stated here, not measurements: no T4 was available to this project.

The ``gpu`` profile has its own budget, in seconds on an H200, from what was measured there: the
chapters' wall times when all seven ran at once on one H200 (``CONCURRENT_H200``, from
``book/results/chapter_times_gpu.json``) divided by the operators this script counted for the
same profile (the ``gpu`` sizes of that commit). Chapters 1 and 2 (2D MLPs and an 8x8 DiT) give
17.2 and 17.5 us per operator, chapter 5 (a 16x16 DiT, its classifier and FD features
uncounted here) 25.6, chapter 7 (the reproduction runner) its own; chapter 4, which trains
nothing, took 21 s, added to every chapter. A chapter not measured there takes the largest rate
of the 2D chapters. Each is an upper bound for a chapter run alone (seven shared the GPU), and a
chapter's modelled time ``21 s + operators x rate`` must stay under 120 s, 2/3 of the aim of
3 minutes.
The record (JSON) holds the counts per chapter and profile with the settings they were counted
at, the assumptions, the command, the commit and the device; ``scripts/chapter_costs.py`` renders
it (with the H200 times measured by ``scripts/time_chapters.py``) for the setup page.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from shortcut_mini import TrainConfig, sample, train  # noqa: E402
from shortcut_mini.common import atomic_write_json, git_commit  # noqa: E402
from shortcut_mini.levels import DEFAULT_BUDGETS  # noqa: E402
from shortcut_mini.objectives import OBJECTIVES  # noqa: E402
from shortcut_mini.objectives.reflow_pairs import CHUNK as PAIRS_CHUNK  # noqa: E402
from shortcut_mini.profiles import PROFILES, settings  # noqa: E402

T4_FP16_PEAK_TFLOPS = 65.0
"""NVIDIA's published fp16 tensor-core peak of the Tesla T4 (dense), TFLOP/s."""
ASSUMED_UTILISATION = 0.10
"""The share of that peak assumed reached by the chapters' small matrices."""
ASSUMED_SECONDS_PER_OP = 30e-6
"""Assumed host time per eager operator on Colab (Python, dispatch, kernel launch)."""
CHAPTER_SECONDS = 600.0
"""The aim: a chapter finishes in about 10 minutes on a T4."""
FLOP_BUDGET = CHAPTER_SECONDS * T4_FP16_PEAK_TFLOPS * 1e12 * ASSUMED_UTILISATION
OP_BUDGET = CHAPTER_SECONDS / ASSUMED_SECONDS_PER_OP
CONCURRENT_H200 = {  # chapter: (seconds, operators counted for its gpu profile of commit f0ab0df)
    "01_flow_matching_2d": (247.3, 14_395_433),
    "02_why_few_steps_fail": (481.5, 27_558_402),
    "05_shortcut_on_images": (488.5, 19_095_666),
    "07_reproducing_the_paper": (39.3, 318_974),
}
"""Wall times of the chapters at commit f0ab0df (seven chapters at once on one H200; the record
book/results/chapter_times_gpu.json has since been replaced by one-chapter-at-a-time times) and
the operators this script counted for those profiles (commit fd26b4e, the same sizes); chapter 4
(no training) took ``H200_FIXED_SECONDS``."""
H200_FIXED_SECONDS = 21.3
H200_2D_CHAPTERS = ("01_flow_matching_2d", "02_why_few_steps_fail")
H200_AIM_SECONDS = 180.0
H200_BUDGET_SECONDS = 120.0  # 2/3 of the aim: the margin for what the count leaves out
SAMPLE_BATCH = 1024  # sample's and evaluate's default batch size
SHORT, LONG = 2, 4  # the two run lengths whose difference is one step's work (x 2)
STAGED = {"progressive_distillation": (8, 16)}  # needs a step per stage (7)
SMALL_PAIRS = 256  # reflow's pairs in the counted run (scaled to the chapter's number)


def needs_teacher(method: str) -> bool:
    return bool(getattr(OBJECTIVES[method], "needs_teacher", False))


class OpCounter(TorchDispatchMode):
    """Counts every ATen operator dispatched inside it."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def counted(fn):
    """``(result, flops, ops)`` of ``fn()``."""
    flops = FlopCounterMode(display=False)
    ops = OpCounter()
    with flops, ops:
        out = fn()
    return out, flops.get_total_flops(), ops.ops


@dataclass
class Work:
    """A chapter's work at one profile: training runs and sampling calls, counted."""

    flops_train: float = 0.0
    flops_sample: float = 0.0
    ops: float = 0.0
    train_steps: int = 0
    runs: int = 0
    items: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "flops_train": round(self.flops_train),
            "flops_sample": round(self.flops_sample),
            "flops": round(self.flops_train + self.flops_sample),
            "ops": round(self.ops),
            "train_runs": self.runs,
            "train_steps": self.train_steps,
            "items": self.items,
        }


def h200_seconds_per_op(name: str) -> float:
    """Seconds per counted operator on an H200 for chapter ``name``: its own measured rate, or
    the largest of the 2D chapters' (an upper bound: seven chapters shared the GPU)."""
    if name in CONCURRENT_H200:
        seconds, ops = CONCURRENT_H200[name]
        return seconds / ops
    return max(CONCURRENT_H200[c][0] / CONCURRENT_H200[c][1] for c in H200_2D_CHAPTERS)


def modelled_h200_seconds(work: dict, name: str) -> float:
    """The ``gpu`` budget's model of a chapter's time on an H200 (an upper bound from measured
    rates, not a measurement)."""
    return H200_FIXED_SECONDS + work["ops"] * h200_seconds_per_op(name)


def modelled_seconds(work: dict, budget: dict) -> float:
    """The budget's model of a chapter's time on a T4: its FLOPs at the assumed share of the
    peak plus its operators at the assumed cost each (an assumption, not a measurement)."""
    rate = budget["t4_fp16_peak_tflops"] * 1e12 * budget["assumed_utilisation"]
    return work["flops"] / rate + work["ops"] * budget["assumed_seconds_per_op"]


class Counter:
    """Counts runs and sampling calls, caching what a configuration costs."""

    def __init__(self, tmp: Path):
        self.tmp, self.cache, self.teachers = tmp, {}, {}

    def _teacher(self, cfg: TrainConfig) -> str:
        key = (cfg.data, cfg.model, cfg.image_size, cfg.class_conditional)
        if key not in self.teachers:
            out = self.tmp / f"teacher{len(self.teachers)}"
            train(cfg.replace(method="flow_matching", steps=SHORT, out_dir=str(out), teacher=None))
            self.teachers[key] = str(out)
        return self.teachers[key]

    def measure(self, cfg: TrainConfig) -> dict:
        """Per-step and setup FLOPs and operators of ``cfg``, and per sampler step of a batch."""
        no_pairs = {**cfg.method_args, **({"reflow_pairs": None} if cfg.method == "reflow" else {})}
        key = cfg.replace(steps=LONG * 8, seed=0, n_data=None, method_args=no_pairs).to_dict()
        key = repr(sorted(key.items()))
        if key in self.cache:
            return self.cache[key]
        base = cfg.replace(log_every=0, ckpt_every=0, progress=False, device="cpu")
        if needs_teacher(cfg.method):  # a flow-matching run of the same network, trained here
            base = base.replace(teacher=self._teacher(base))
        if cfg.method == "reflow":
            base = base.replace(method_args={"reflow_pairs": SMALL_PAIRS})
        short, long = STAGED.get(cfg.method, (SHORT, LONG))
        n = {}
        for steps in (short, long):
            cfg_n = base.replace(
                steps=steps, out_dir=str(self.tmp / f"run{len(self.cache)}_{steps}")
            )
            run, flops, ops = counted(functools.partial(train, cfg_n))
            n[steps] = (flops, ops)
        step_flops = (n[long][0] - n[short][0]) / (long - short)
        step_ops = (n[long][1] - n[short][1]) / (long - short)
        s1 = counted(lambda: sample(run, SAMPLE_BATCH, 1, seed=0))
        s2 = counted(lambda: sample(run, SAMPLE_BATCH, 2, seed=0))
        self.cache[key] = {
            "step_flops": step_flops,
            "step_ops": step_ops,
            "setup_flops": max(0.0, n[short][0] - short * step_flops),
            "setup_ops": max(0.0, n[short][1] - short * step_ops),
            "sample_step_flops": s2[1] - s1[1],
            "sample_step_ops": s2[2] - s1[2],
            "pairs_counted": SMALL_PAIRS if cfg.method == "reflow" else None,
        }
        return self.cache[key]

    def run(self, work: Work, cfg: TrainConfig, samples: list[tuple[int, int]], label: str):
        """Add one training run of ``cfg`` and its sampling calls ``[(n, steps), ...]`` (steps:
        the network evaluations per sample, summed over the budgets a call sweeps)."""
        m = self.measure(cfg)
        flops_scale = ops_scale = 1.0
        if m["pairs_counted"]:  # the teacher's pairs: FLOPs by pairs, operators by chunks
            pairs = cfg.method_args.get("reflow_pairs") or cfg.n_data or 0
            flops_scale = pairs / m["pairs_counted"]
            ops_scale = math.ceil(pairs / PAIRS_CHUNK) / math.ceil(m["pairs_counted"] / PAIRS_CHUNK)
        work.flops_train += m["step_flops"] * cfg.steps + m["setup_flops"] * flops_scale
        work.ops += m["step_ops"] * cfg.steps + m["setup_ops"] * ops_scale
        work.train_steps += cfg.steps
        work.runs += 1
        for n, evals in samples:
            work.flops_sample += m["sample_step_flops"] * (n / SAMPLE_BATCH) * evals
            work.ops += m["sample_step_ops"] * math.ceil(n / SAMPLE_BATCH) * evals
        work.items.append(f"{label}: {cfg.method}, {cfg.model}, {cfg.steps} x {cfg.batch_size}")


ALL = sum(DEFAULT_BUDGETS)  # the evaluations of one sample over 1, 2, 4, ..., 128 steps


def _toy(s, **kw) -> TrainConfig:
    base = dict(data=s.data, model=s.model, steps=s.steps, batch_size=s.batch_size, lr=s.lr)
    return TrainConfig(**{**base, "n_data": s.n_data, **kw})


def count_chapter(name: str, profile: str, c: Counter) -> Work:
    """The runs and sampling calls of chapter ``name`` (as its notebook makes them)."""
    s, w = settings(name, profile), Work()
    if name == "01_flow_matching_2d":
        c.run(w, _toy(s, method="flow_matching"), [(s.n_eval, 128 + 32 + 8)], "the run")
    elif name == "02_why_few_steps_fail":
        c.run(w, _toy(s, method="flow_matching"), [(s.n_eval, 2 * ALL)], "2D")
        img = TrainConfig(
            data="digits", model=s.img_model, method="flow_matching", steps=s.img_steps,
            batch_size=s.img_batch, lr=s.img_lr,
        )  # fmt: skip
        c.run(w, img, [(min(s.n_img, 360), 1 + 2 + 4 + 8 + 32 + 128)], "digits")
    elif name == "03_shortcut_models":
        for method in ("flow_matching", "shortcut"):
            extra = [(s.n_eval, 3 * 3 + 3)] if method == "shortcut" else []
            c.run(w, _toy(s, method=method), [(s.n_eval, 2 * ALL), *extra], method)
    elif name == "05_shortcut_on_images":
        n_eval, grid = min(s.n_eval, 360), 10 * s.grid_rows
        cfg = TrainConfig(
            data="digits", model="dit-tiny", class_conditional=True, image_size=s.image_size,
            steps=s.steps, batch_size=s.batch_size, lr=s.lr,
        )  # fmt: skip
        for method in ("flow_matching", "shortcut"):
            calls = [(n_eval, sum(s.budgets) + 1), (grid, sum(s.budgets))]
            if method == "shortcut":  # guidance: two passes per step
                calls.append((10 * s.cfg_per_class * len(s.cfg_scales), 2 * s.cfg_steps))
            c.run(w, cfg.replace(method=method), calls, method)
    elif name == "06_design_choices":
        variants = [  # the notebook's GROUPS, each distinct configuration once per seed
            dict(method="flow_matching"),
            dict(bootstrap_fraction=1 / 8),
            dict(),
            dict(bootstrap_fraction=1 / 2),
            dict(target_weights="ema"),
            dict(level_embedding="sin_level"),
            dict(level_embedding="sin_d"),
            dict(t_sampling="uniform"),
            dict(weight_decay=0.0),
        ]
        for seed in s.seeds:
            for v in variants:
                cfg = _toy(s, method="shortcut", seed=seed).replace(**v)
                c.run(w, cfg, [(s.n_eval, sum(s.budgets))], f"seed {seed}")
    elif name == "07_reproducing_the_paper":
        from shortcut_mini.reproduce import PRESETS

        preset = PRESETS[s.preset]
        cfg = TrainConfig(**{**preset["config"], **s.overrides, "device": "cpu"})
        for method in preset["methods"]:
            calls = [(preset["eval"]["n"], sum(preset["eval"]["steps"]))]
            calls.append((preset["grid"]["n"], sum(preset["grid"]["steps"])))
            c.run(w, cfg.replace(method=method), calls, method)
    elif name == "08_few_step_methods":
        for method in s.methods:
            teacher = "the chapter's flow-matching run" if needs_teacher(method) else None
            own = {"method_args": {"reflow_pairs": s.reflow_pairs}} if method == "reflow" else {}
            cfg = _toy(s, method=method, teacher=teacher, **own)  # the notebook's method_settings
            c.run(w, cfg, [(s.n_eval, ALL)], method)
        if "meanflow" in s.methods:  # the ratio it tries: a short run, two budgets
            c.run(w, _toy(s, method="meanflow", steps=min(s.steps, 400)), [(s.n_eval, 129)], "try")
    elif name == "09_since_the_paper":
        from shortcut_mini.ablation import SHORTCUT_SWITCHES

        for seed in s.seeds:  # the notebook's run_switch_ablation: every variant at each seed
            for changes in SHORTCUT_SWITCHES.values():
                cfg = _toy(s, method="shortcut", seed=seed).replace(**changes)
                c.run(w, cfg, [(s.n_eval, sum(s.budgets))], f"seed {seed}")
        mine = {"method_args": {"ot_pairing": True, "target_ema_decay": 0.95}}  # its 'Try it'
        for label, changes in (("try: plain", {}), ("try: mine", mine)):
            c.run(w, _toy(s, method="shortcut").replace(**changes), [(s.n_eval, 129)], label)
    return w  # chapter 4 trains and samples nothing


def jsonable(settings_dict: dict) -> dict:
    """A profile's settings as JSON keeps them (tuples as lists)."""
    return json.loads(json.dumps(settings_dict))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", nargs="+", default=["cpu", "small_gpu", "gpu"])
    p.add_argument("--chapters", nargs="*", default=None, help="chapter stems (default: all)")
    p.add_argument("--out", default=str(ROOT / "book" / "results" / "chapter_flops.json"))
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other chapters of --out as counted; the ones counted now are listed "
        "under 'merged' with their command and commit",
    )
    args = p.parse_args(argv)
    threads = torch.get_num_threads()  # restored at the end: a caller's setting is its own
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    try:
        return _count(args, argv)
    finally:
        torch.set_num_threads(threads)


def _count(args: argparse.Namespace, argv: list[str] | None) -> int:
    chapters = args.chapters or sorted(PROFILES)
    start = time.time()
    record = {
        "command": "python scripts/flop_count.py " + " ".join(argv or sys.argv[1:]),
        "commit": git_commit(ROOT),
        "device": "cpu (counts do not depend on the device)",
        "torch": torch.__version__,
        "budget": {
            "t4_fp16_peak_tflops": T4_FP16_PEAK_TFLOPS,
            "assumed_utilisation": ASSUMED_UTILISATION,
            "assumed_seconds_per_op": ASSUMED_SECONDS_PER_OP,
            "chapter_seconds": CHAPTER_SECONDS,
            "flops": FLOP_BUDGET,
            "ops": OP_BUDGET,
            "anchor": (
                "chapter 1 at the gpu profile: 14.4 million operators in at most 247 s on an "
                "H200 shared by seven chapters (the chapter times of commit f0ab0df)"
            ),
        },
        "gpu_budget": {
            "profile": "gpu",
            "device": "NVIDIA H200",
            "aim_seconds": H200_AIM_SECONDS,
            "chapter_seconds": H200_BUDGET_SECONDS,
            "fixed_seconds": H200_FIXED_SECONDS,
            "seconds_per_op": {name: h200_seconds_per_op(name) for name in sorted(PROFILES)},
            "source": (
                "the chapter times of commit f0ab0df (seven chapters at once on one H200: "
                "upper bounds; the times measured since, one chapter at a time, are below) over "
                "the operators counted here for those sizes: "
                + ", ".join(
                    f"chapter {int(name[:2])} {t:.1f} s / {n / 1e6:.2f} M = {t / n * 1e6:.1f} µs"
                    for name, (t, n) in CONCURRENT_H200.items()
                )
                + f"; chapter 4 (no training) {H200_FIXED_SECONDS} s, added to every chapter"
            ),
        },
        "chapters": {},
    }
    if args.merge and Path(args.out).exists():
        kept = json.loads(Path(args.out).read_text())
        merged = {
            "chapters": chapters,
            "command": record["command"],
            "commit": record["commit"],
            "profiles": args.profiles,
        }
        record["chapters"] = {k: v for k, v in kept["chapters"].items() if k not in chapters}
        for key in ("command", "commit", "wall_time_s"):  # of the count of the other chapters
            record[key] = kept[key]
        record["merged"] = [*kept.get("merged", []), merged]
    with tempfile.TemporaryDirectory() as tmp:
        counter = Counter(Path(tmp))
        for name in chapters:
            record["chapters"][name] = {}
            for profile in args.profiles:
                work = count_chapter(name, profile, counter).as_dict()
                work["settings"] = jsonable(vars(settings(name, profile)))
                work["modelled_h200_s"] = round(modelled_h200_seconds(work, name), 1)
                record["chapters"][name][profile] = work
                print(
                    f"{name} [{profile}]: {work['flops'] / 1e12:,.2f} TFLOP "
                    f"({work['flops'] / FLOP_BUDGET:.1%} of the budget), "
                    f"{work['ops'] / 1e6:,.2f} M ops ({work['ops'] / OP_BUDGET:.0%}), "
                    f"modelled {modelled_seconds(work, record['budget']):.0f} s on a T4, "
                    f"at most {work['modelled_h200_s']:.0f} s on an H200",
                    flush=True,
                )
            wall = round(time.time() - start, 1)
            if args.merge and "merged" in record:
                record["merged"][-1]["wall_time_s"] = wall
            else:
                record["wall_time_s"] = wall
            record["chapters"] = dict(sorted(record["chapters"].items()))
            atomic_write_json(args.out, record)  # after each chapter: a killed count keeps them
    print(f"wrote {args.out} in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
