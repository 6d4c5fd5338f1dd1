"""Count each chapter's training and sampling work per profile, on the CPU, without running it.

    python scripts/flop_count.py [--profiles small_gpu gpu cpu] [--out book/results/chapter_flops.json]
    python scripts/flop_count.py --chapters 09_since_the_paper --merge   # count one chapter
    python scripts/flop_count.py --refit   # new measured rates: the model, without counting

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
  chapter may dispatch ``600 s / 30 us = 20 million``. What was measured: every chapter at
  ``small_gpu``, run alone on an H200 (``book/results/chapter_times_gpu.json``), spent 10 to 23 us
  per counted operator beyond chapter 4's fixed cost, on that machine's fast host.

Both budgets are assumptions stated here, not measurements: no T4 was available to this project.

The ``gpu`` profile has its own budget, in seconds on an H200: the aim of 3 minutes a chapter. Its
model is fitted to what was measured there, every chapter at its ``gpu`` profile run alone on an
H200 (``MEASURED_H200``, from ``book/results/chapter_times_gpu.json``): chapter 4, which trains
nothing, took ``H200_FIXED_SECONDS`` (kernel start, imports, figures), added to every chapter; each
other chapter's time beyond that, over the operators this script counted for the same sizes, is
its seconds per operator (the work the count leaves out, such as chapter 5's classifier or chapter
9's assignment on the host, is in its rate). A chapter's modelled time is ``fixed + operators x
rate``: for the sizes measured it is the measured time, and a changed profile is modelled at its
chapter's measured rate (a chapter never measured takes the largest rate of the training chapters).
The model must stay under the aim. Two lent H200s differed by 15-26% on the same chapter, so a
chapter near the aim may pass it on a slower machine.
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
MEASURED_H200 = {  # chapter: (seconds alone at its gpu profile, operators counted for those sizes)
    "01_flow_matching_2d": (68.9, 5_074_433),
    "02_why_few_steps_fail": (88.9, 4_963_401),
    "03_shortcut_models": (85.4, 5_265_154),
    "05_shortcut_on_images": (101.8, 3_381_664),
    "06_design_choices": (108.3, 5_562_854),
    "07_reproducing_the_paper": (31.5, 318_974),
    "08_few_step_methods": (103.7, 5_626_594),
    "09_since_the_paper": (154.2, 5_468_986),
}
"""The ``gpu`` profile's wall times in book/results/chapter_times_gpu.json (one chapter at a time on
an H200: chapters 1-8 at commit bf3c06a, chapter 9 at 48ffbba) and the operators this script
counted for the same sizes (book/results/chapter_flops.json)."""
H200_FIXED_SECONDS = 13.5
"""Chapter 4 at its ``gpu`` profile, measured alone: it trains nothing."""
TRAINING_CHAPTERS_MIN_OPS = 1_000_000  # chapter 7's few operators are mostly its runner's set-up
H200_AIM_SECONDS = 180.0
H200_BUDGET_SECONDS = H200_AIM_SECONDS  # the rates are measured alone: the model is the time
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
    """Seconds per counted operator on an H200 for chapter ``name``: its own rate, measured alone
    beyond the fixed cost, or (a chapter never measured) the largest rate of the chapters that
    train at least ``TRAINING_CHAPTERS_MIN_OPS`` operators."""
    if name in MEASURED_H200:
        seconds, ops = MEASURED_H200[name]
        return (seconds - H200_FIXED_SECONDS) / ops
    return max(
        h200_seconds_per_op(c) for c, (_, n) in MEASURED_H200.items()
        if n >= TRAINING_CHAPTERS_MIN_OPS
    )  # fmt: skip


def modelled_h200_seconds(work: dict, name: str) -> float:
    """The ``gpu`` budget's model of a chapter's time on an H200: the fixed cost plus its
    operators at its measured rate (for the measured sizes, the measured time)."""
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


SMALL_GPU_ANCHOR = (
    "every chapter at the small_gpu profile, run alone on an H200 (a fast host; "
    "book/results/chapter_times_gpu.json), spent 10 to 23 µs per counted operator beyond "
    "chapter 4's fixed 17 s"
)
"""What was measured of the operator cost: checked against the records by the tests."""


def t4_budget() -> dict:
    """The ``small_gpu`` budget: 10 minutes on a T4, in FLOPs and in operators."""
    return {
        "t4_fp16_peak_tflops": T4_FP16_PEAK_TFLOPS,
        "assumed_utilisation": ASSUMED_UTILISATION,
        "assumed_seconds_per_op": ASSUMED_SECONDS_PER_OP,
        "chapter_seconds": CHAPTER_SECONDS,
        "flops": FLOP_BUDGET,
        "ops": OP_BUDGET,
        "anchor": SMALL_GPU_ANCHOR,
    }


def h200_budget() -> dict:
    """The ``gpu`` budget: the aim in seconds on an H200, and the model's measured rates."""
    return {
        "profile": "gpu",
        "device": "NVIDIA H200",
        "aim_seconds": H200_AIM_SECONDS,
        "chapter_seconds": H200_BUDGET_SECONDS,
        "fixed_seconds": H200_FIXED_SECONDS,
        "seconds_per_op": {name: h200_seconds_per_op(name) for name in sorted(PROFILES)},
        "source": (
            "each chapter at its gpu profile run alone on an H200 (chapters 1-8 at commit "
            "bf3c06a, chapter 9 at 48ffbba), less chapter 4's time, over the operators counted "
            "here for those sizes: "
            + ", ".join(
                f"chapter {int(name[:2])} ({t:.1f} - {H200_FIXED_SECONDS}) s / {n / 1e6:.2f} M = "
                f"{h200_seconds_per_op(name) * 1e6:.1f} µs"
                for name, (t, n) in MEASURED_H200.items()
            )
            + f"; chapter 4 (no training) {H200_FIXED_SECONDS} s, added to every chapter"
        ),
    }


def refit(path: Path, command: str) -> dict:
    """Rewrite the budgets and every chapter's modelled H200 time of the count at ``path`` from
    this script's constants, without counting again (the counts do not change)."""
    record = json.loads(path.read_text())
    record["budget"], record["gpu_budget"] = t4_budget(), h200_budget()
    for name, by_profile in record["chapters"].items():
        for work in by_profile.values():
            work["modelled_h200_s"] = round(modelled_h200_seconds(work, name), 1)
    record["refit"] = {"command": command, "commit": git_commit(ROOT)}
    atomic_write_json(path, record)
    return record


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
    p.add_argument(
        "--refit",
        action="store_true",
        help="count nothing: rewrite --out's budgets and modelled H200 times from the measured "
        "rates in this script (after new chapter times)",
    )
    args = p.parse_args(argv)
    command = "python scripts/flop_count.py " + " ".join(argv or sys.argv[1:])
    if args.refit:
        refit(Path(args.out), command)
        print(f"refitted {args.out}")
        return 0
    threads = torch.get_num_threads()  # restored at the end: a caller's setting is its own
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    try:
        return _count(args, command)
    finally:
        torch.set_num_threads(threads)


def _count(args: argparse.Namespace, command: str) -> int:
    chapters = args.chapters or sorted(PROFILES)
    start = time.time()
    record = {
        "command": command,
        "commit": git_commit(ROOT),
        "device": "cpu (counts do not depend on the device)",
        "torch": torch.__version__,
        "budget": t4_budget(),
        "gpu_budget": h200_budget(),
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
                    f"modelled {work['modelled_h200_s']:.0f} s on an H200",
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
