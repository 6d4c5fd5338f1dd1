"""One registry of sizes: the chapters' profiles and the reproduction presets.

A chapter reads its sizes with ``settings("03_shortcut_models", profile)``; ``profile`` is

* ``ci``: seconds on a CPU, for the tests (nbval) and the CI book build;
* ``cpu``: the book's default, a few minutes on a laptop CPU with the embedded data;
* ``small_gpu``: Colab's T4 and GPUs like it (about 10 minutes a chapter, by counted work);
* ``gpu``: a large GPU (an H100 or H200): under 3 minutes a chapter, by counted work.

A chapter states its settings once (its defaults, the ``cpu`` sizes) and each other profile only
what differs; :func:`settings` merges the two at lookup.

Reproduction presets (``shortcut-mini reproduce PRESET``) live in ``PRESETS`` beside them, so a
chapter's ``gpu`` profile and a preset can share one definition.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from .levels import DEFAULT_BUDGETS

__all__ = [
    "PROFILE_NAMES",
    "PROFILES",
    "PRESETS",
    "TABLE1_METHODS",
    "Chapter",
    "chapter",
    "settings",
]

PROFILE_NAMES = ("ci", "cpu", "small_gpu", "gpu")


@dataclass(frozen=True)
class Chapter:
    """One chapter's sizes: ``defaults`` and, per profile, only what differs from them.

    ``defaults`` names every setting (in the order a chapter prints them); ``overrides`` maps a
    profile to the settings it changes. Build one with :func:`chapter`.
    """

    defaults: dict[str, Any]
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resolve(self, profile: str) -> dict[str, Any]:
        """Every setting of ``profile``: the defaults with its overrides applied (a fresh copy)."""
        return copy.deepcopy({**self.defaults, **self.overrides.get(profile, {})})

    def __getitem__(self, profile: str) -> dict[str, Any]:
        return self.resolve(profile)


def chapter(defaults: dict[str, Any], **overrides: dict[str, Any]) -> Chapter:
    """A :class:`Chapter`; each keyword is a profile (``ci``, ``cpu``, ``gpu``) and its changes.

    A profile may only change settings that ``defaults`` names, so every profile has the same
    settings and a misspelt one fails here rather than in one profile's notebook run.
    """
    for profile, changes in overrides.items():
        if profile not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILE_NAMES}")
        extra = sorted(set(changes) - set(defaults))
        if extra:
            raise ValueError(
                f"profile {profile!r} sets {extra}, which the chapter's defaults do not name; "
                "add them to defaults (every profile must have the same settings)"
            )
    return Chapter(dict(defaults), {k: dict(v) for k, v in overrides.items()})


# Each chapter: its defaults are the book's ``cpu`` sizes; ``ci`` and ``gpu`` state only what
# differs. Keep ci tiny (whole chapter < 1 minute on 2 CPU cores) and cpu modest (the whole book
# < 30 minutes on 2 CPU cores).
# The ``gpu`` sizes: networks this small cost a fixed time per dispatched operator (kernel
# launches), whatever the batch, so a large GPU buys its size with the batch, not the steps. Each
# chapter's operators (counted by scripts/flop_count.py) at the seconds per operator measured on
# an H200 fit 2 minutes there, 2/3 of the aim of 3: fewer steps than ``small_gpu`` (a T4's 10
# minutes), more training examples and FLOPs. Bounds not yet checked on a GPU at a profile's
# sizes (``small_gpu``, ``gpu``) are no tighter than those of the checked profile (``ci`` in the
# tests, ``cpu`` in the book) that trains as many steps or fewer (tests/test_profiles.py).
PROFILES: dict[str, Chapter] = {
    "01_flow_matching_2d": chapter(
        # toy data, MLP preset, training steps/batch/lr, eval and plot sizes, and the bounds the
        # chapter asserts (SWD of many-step samples; fraction of samples on the board's squares)
        defaults=dict(
            data="checkerboard",
            model="mlp-small",
            steps=3000,
            batch_size=256,
            lr=1e-3,
            n_data=20000,
            n_eval=4096,
            n_traj=64,
            sample_steps=128,
            quiver_grid=21,
            swd_max=0.1,
            on_board_min=0.75,
        ),
        ci=dict(steps=400, n_eval=1024, n_traj=48, quiver_grid=15, swd_max=0.2, on_board_min=0.52),
        small_gpu=dict(model="mlp", steps=10000, batch_size=1024, n_data=100000),
        gpu=dict(model="mlp", steps=7000, batch_size=4096, n_data=100000),
    ),
    "02_why_few_steps_fail": chapter(
        # 2D part (flow matching on a toy), the exact-velocity demo (n_exact samples against
        # n_exact_ref data points) and the image part (flow-matching DiT on 8x8 digits)
        defaults=dict(
            data="checkerboard",
            model="mlp-small",
            steps=3000,
            batch_size=256,
            lr=1e-3,
            n_data=20000,
            n_eval=4096,
            n_traj=48,
            n_exact=2048,
            n_exact_ref=2000,
            img_model="dit-tiny",
            img_steps=1500,
            img_batch=64,
            img_lr=1e-3,
            n_img=256,
            collapse_max=0.35,
            img_collapse_max=0.6,
        ),
        ci=dict(
            steps=400,
            n_eval=1024,
            n_traj=32,
            n_exact=512,
            n_exact_ref=512,
            img_steps=150,
            img_batch=32,
            n_img=64,
            collapse_max=0.6,
            img_collapse_max=0.8,
        ),
        small_gpu=dict(
            model="mlp",
            steps=10000,
            batch_size=1024,
            n_data=100000,
            n_exact=4096,
            n_exact_ref=4096,
            img_steps=4000,
            img_batch=256,
            n_img=1024,
        ),
        gpu=dict(
            model="mlp",
            steps=3000,
            batch_size=4096,
            n_data=100000,
            n_exact=4096,
            n_exact_ref=4096,
            img_steps=2000,
            img_batch=1024,
            n_img=1024,
        ),
    ),
    "03_shortcut_models": chapter(
        # flow matching and shortcut trained with the same budget; bounds the chapter asserts:
        # shortcut's 1-step SWD < ratio_max * flow matching's, and its 1-step vs 128-step
        # endpoints (same noise) closer than consistency_max * flow matching's
        defaults=dict(
            data="checkerboard",
            model="mlp-small",
            steps=3000,
            batch_size=256,
            lr=1e-3,
            n_data=20000,
            n_eval=4096,
            n_show=2048,
            ratio_max=0.25,
            consistency_max=0.3,
        ),
        ci=dict(steps=600, n_eval=1024, n_show=1024, ratio_max=0.4, consistency_max=0.5),
        small_gpu=dict(
            model="mlp",
            steps=6000,
            batch_size=1024,
            n_data=100000,
            n_show=4096,
            consistency_max=0.4,
        ),
        gpu=dict(
            model="mlp",
            steps=3000,
            batch_size=4096,
            n_data=100000,
            n_show=4096,
            consistency_max=0.4,
        ),
    ),
    "04_inside_the_dit": chapter(
        # nothing is trained: the digit size that is dissected and the batch of the shape checks
        defaults=dict(image_size=16, batch=8),
        ci=dict(batch=4),
    ),
    "05_shortcut_on_images": chapter(
        # dit-tiny, class-conditional, on sklearn digits; lr 1e-3 (the paper's 1e-4 is for DiT-B
        # and 400k steps). Measured (H100, 8x8, batch 64, lr 1e-3, 1,500 steps): FD (classifier)
        # at 1 step 15.5 shortcut vs 25.1 flow matching (real digits: 3.5, noise: 139).
        defaults=dict(
            steps=1500,
            batch_size=64,
            lr=1e-3,
            image_size=None,
            clf_epochs=10,
            min_clf_accuracy=0.95,
            n_eval=360,
            budgets=(1, 2, 4, 8, 128),
            grid_rows=3,
            cfg_scales=(0.0, 1.0, 2.0, 4.0),
            cfg_steps=1,
            cfg_per_class=8,
            check_quality=True,
        ),
        ci=dict(
            steps=100,
            batch_size=32,
            clf_epochs=3,
            min_clf_accuracy=0.5,
            n_eval=64,
            grid_rows=1,
            cfg_scales=(0.0, 1.0, 3.0),
            cfg_per_class=3,
            check_quality=False,
        ),
        small_gpu=dict(
            steps=3000, batch_size=128, image_size=16, clf_epochs=30, budgets=DEFAULT_BUDGETS
        ),
        gpu=dict(steps=1000, batch_size=512, image_size=16, clf_epochs=30, budgets=DEFAULT_BUDGETS),
    ),
    "06_design_choices": chapter(
        # 2D ablations: every variant trains with the same budget (steps, batch, lr) at each
        # seed and is measured by SWD at each budget (n_eval samples vs n_eval held-out points);
        # level_batches: batch sizes of the level-allocation table; the bounds the checks use:
        # flow matching's 1-step SWD > fm_over_shortcut_1step x the default shortcut's, and
        # every variant's 128-step SWD < swd_128_max.
        defaults=dict(
            data="checkerboard",
            model="mlp-small",
            steps=800,
            batch_size=128,
            lr=1e-3,
            n_data=20000,
            seeds=(0, 1, 2),
            n_eval=4096,
            budgets=(1, 4, 128),
            log_runs=False,
            plot_cols=2,
            level_batches=(16, 32, 64, 128, 256),
            fm_over_shortcut_1step=3.0,
            swd_128_max=0.12,
        ),
        ci=dict(
            steps=100,
            batch_size=64,
            seeds=(0, 1),
            n_eval=256,
            fm_over_shortcut_1step=1.3,
            swd_128_max=0.4,
        ),
        small_gpu=dict(batch_size=256, n_data=100000, budgets=DEFAULT_BUDGETS, log_runs=True),
        gpu=dict(
            steps=300,
            batch_size=2048,
            n_data=100000,
            seeds=(0, 1),
            budgets=DEFAULT_BUDGETS,
            log_runs=True,
            fm_over_shortcut_1step=1.3,
            swd_128_max=0.4,
        ),
    ),
    "07_reproducing_the_paper": chapter(
        # the live demo runs the `smoke` preset (2 methods x 1 seed) through the batch runner;
        # engine "python": in-process (a book page would show nested Jupyter kernels' log lines);
        # the papermill engine, the command line's default, is covered by tests/test_reproduce.py
        defaults=dict(preset="smoke", overrides={"steps": 40}, engine="python"),
        ci=dict(overrides={"steps": 10}),
        small_gpu=dict(overrides={"steps": 200, "device": "auto"}),
        gpu=dict(overrides={"steps": 200, "device": "auto"}),
    ),
    "08_few_step_methods": chapter(
        # every method of ``methods`` trained with one budget on the same toy and network; the
        # two-stage methods (consistency/progressive distillation, reflow) distil the chapter's
        # flow-matching run (trained for ``steps`` too) and then train ``steps`` of their own;
        # reflow_pairs: reflow's (noise, teacher sample) pairs (None: one per training point).
        # Bounds the chapter asserts: shortcut's 1-step SWD < ratio_max * flow matching's, and
        # every method's best budget below best_max. Methods slot in by name (another
        # objective: add it to ``methods``; its config extras go in the chapter's
        # ``method_settings``).
        defaults=dict(
            data="checkerboard",
            model="mlp-small",
            steps=3000,
            batch_size=256,
            lr=1e-3,
            n_data=20000,
            n_eval=4096,
            n_show=1024,
            methods=(
                "flow_matching",
                "shortcut",
                "diffusion",
                "consistency_training",
                "live_reflow",
                "meanflow",
                "progressive_distillation",
                "consistency_distillation",
                "reflow",
            ),
            reflow_pairs=None,
            ratio_max=0.4,
            best_max=0.2,
        ),
        ci=dict(
            steps=400, n_eval=1024, n_show=512, reflow_pairs=4096, ratio_max=0.6, best_max=0.35
        ),
        # nine runs (and a teacher's pairs) at 3000 steps exceed a T4's 10 minutes: fewer steps
        # of the larger batch, and the looser bounds of ci, the profile below it in steps
        small_gpu=dict(
            model="mlp",
            steps=1500,
            batch_size=1024,
            n_data=100000,
            n_show=2048,
            reflow_pairs=20000,
            ratio_max=0.6,
            best_max=0.35,
        ),
        gpu=dict(
            model="mlp",
            steps=400,
            batch_size=4096,
            n_data=100000,
            n_show=2048,
            reflow_pairs=20000,
            ratio_max=0.6,
            best_max=0.35,
        ),
    ),
    "09_since_the_paper": chapter(
        # the shortcut switches beyond the paper on chapter 6's toy and budget (every variant of
        # shortcut_mini.ablation.SHORTCUT_SWITCHES at each seed); n_pairs: the 2D batch whose
        # paths are drawn and whose crossings are counted; bound: every variant's 128-step SWD
        # below swd_128_max. The OT pairing's exact assignment runs on the host and grows as
        # n^3 (about 1 s a batch of 1,024 on 2 CPU cores), so the GPU profiles keep small
        # batches: small_gpu trains the cpu sizes, gpu fewer steps of a batch of 576.
        defaults=dict(
            data="checkerboard",
            model="mlp-small",
            steps=800,
            batch_size=128,
            lr=1e-3,
            n_data=20000,
            seeds=(0, 1, 2),
            n_eval=4096,
            budgets=(1, 2, 4, 128),
            log_runs=False,
            n_pairs=256,
            swd_128_max=0.12,
        ),
        ci=dict(steps=100, batch_size=64, seeds=(0, 1), n_eval=256, n_pairs=64, swd_128_max=0.4),
        small_gpu=dict(n_data=100000, log_runs=True),
        gpu=dict(steps=200, batch_size=576, n_data=100000, log_runs=True, swd_128_max=0.4),
    ),
}

# Reproduction presets (``shortcut-mini reproduce PRESET``; see shortcut_mini/reproduce/presets.py).
# Each: ``config`` (TrainConfig fields shared by every run; ``method`` and ``seed`` are set per run),
# ``methods``, ``seeds``, ``eval`` (the step-budget sweep: metric, n samples, step budgets, sampling
# seeds, reference split), ``grid`` (sample-grid budgets), ``description`` and ``cost`` (what one
# run costs, quoted only from measurements, with their source). Optional: ``method_seeds``
# (``{method: seeds}`` replacing ``seeds`` for that method) and ``method_config`` (``{method:
# {field: value}}``, TrainConfig fields of that method's runs only; its own settings under
# ``method_args``, e.g. reflow's ``dict(method_args=dict(reflow_pairs=32))``). A method that
# distils a teacher gets ``teacher=`` the batch's own flow-matching run of its seed (or of seed
# 0), which the runner trains first.
_BUDGETS = DEFAULT_BUDGETS
_MINI = dict(
    model="dit-mini",  # hidden 256, depth 6, 4 heads, patch 2
    steps=8_000,
    batch_size=256,
    # 3e-4, not the paper's 1e-4: a run here is ~1/50 of the paper's 400k steps, and a 7.4M-parameter
    # DiT with adaLN-Zero trains stably at 3e-4 (lower it with --set lr=1e-4 to match the paper).
    lr=3e-4,
    class_conditional=False,  # as the paper's CelebA-HQ Table 1 (unconditional)
    target_weights="online",  # the book's design notes: EMA targets do not propagate in short runs
    compile=True,
    # CUDA graphs: 2-3x the default mode's throughput for a network this small (launch-bound);
    # checked against the default mode on one run: benchmarks/results/table1_2026-12-03/
    # compile_check.json
    compile_mode="reduce-overhead",
    ckpt_every=1_000,
    log_every=100,
    progress=False,
)
_MINI_COST = (
    "8,000 steps x 256 = 2.05M images. Measured (records in book/results/, 2026-11-26, compiled, "
    "bf16): training 1.8-3.2 min per run on one H200 and 2.1-3.8 min on one H100 (the first run "
    "on a machine includes compilation), evaluation 1.4-1.5 min; a batch of 4 runs took 16.5 min "
    "on an H200 (fashion_mnist) and 19.6 min on an H100 (mnist)."
)
# The paper's Table 1 at mini scale (issue 11): every method, the same network and the same
# training images per run; the methods that distil a teacher start from the batch's flow-matching
# run (its images are reported in their own column).
TABLE1_METHODS = (
    "flow_matching",
    "shortcut",
    "diffusion",
    "consistency_training",
    "live_reflow",
    "consistency_distillation",
    "progressive_distillation",
    "reflow",
    "meanflow",
)
_TABLE1_SEEDS = dict(flow_matching=(0, 1), shortcut=(0, 1), meanflow=(0, 1))
# The fairness row: a distilled student sees its teacher's training images and its own, so a
# shortcut model trained on both (twice the steps) is its own row, labelled by its budget.
_TABLE1_ROWS = ("flow_matching", "shortcut", "shortcut_16k", *TABLE1_METHODS[2:])
# The tuning sweep (the MeanFlow issue): MeanFlow at its paper's ImageNet and CIFAR-10 settings and
# one between them (shortcut_mini.objectives.MEANFLOW_SETTINGS; a test keeps the two equal), and,
# with the same tuning budget, shortcut models at three self-consistency fractions, each one row
# of the table1 budget, so that neither method is compared at settings chosen for the other.
_TUNING_ROWS = {
    "meanflow_imagenet": dict(
        method="meanflow",
        method_args=dict(
            meanflow_ratio=0.25,
            meanflow_t_mean=-0.4,
            meanflow_t_std=1.0,
            meanflow_norm_p=1.0,
            meanflow_norm_eps=0.01,
        ),
    ),
    "meanflow_between": dict(
        method="meanflow",
        method_args=dict(
            meanflow_ratio=0.5,
            meanflow_t_mean=-1.2,
            meanflow_t_std=1.5,
            meanflow_norm_p=0.875,
            meanflow_norm_eps=0.003,
        ),
    ),
    "meanflow_cifar10": dict(
        method="meanflow",
        method_args=dict(
            meanflow_ratio=0.75,
            meanflow_t_mean=-2.0,
            meanflow_t_std=2.0,
            meanflow_norm_p=0.75,
            meanflow_norm_eps=1e-3,
        ),
    ),
    "shortcut_k1_8": dict(method="shortcut", bootstrap_fraction=0.125),
    "shortcut_k1_4": dict(method="shortcut", bootstrap_fraction=0.25),
    "shortcut_k1_2": dict(method="shortcut", bootstrap_fraction=0.5),
}
PRESETS: dict[str, dict] = {
    "smoke": dict(
        description="tiny CPU check of the whole pipeline (digits 8x8, 1-block dit-tiny, seconds)",
        config=dict(
            data="digits",
            model="dit-tiny",
            model_overrides={"depth": 1},  # a pipeline check, not a quality one
            steps=10,
            batch_size=32,
            lr=1e-3,
            device="cpu",
            precision="fp32",
            ckpt_every=5,
            log_every=5,
            progress=False,
        ),
        methods=("flow_matching", "shortcut"),
        seeds=(0,),
        eval=dict(metric="classifier", n=64, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=8, steps=(1, 2, 4, 8)),
        cost="seconds on a laptop CPU",
    ),
    "table1_smoke": dict(
        description=(
            "tiny CPU check of the table1 pipeline: every method, teachers included (digits 8x8, "
            "1-block dit-tiny, seconds)"
        ),
        config=dict(
            data="digits",
            model="dit-tiny",
            model_overrides={"depth": 1},  # a pipeline check, not a quality one
            steps=8,  # progressive distillation needs one step per stage (7)
            batch_size=16,
            lr=1e-3,
            device="cpu",
            precision="fp32",
            ckpt_every=4,
            log_every=4,
            progress=False,
        ),
        methods=_TABLE1_ROWS,
        seeds=(0,),
        method_seeds=_TABLE1_SEEDS,
        method_config={
            "reflow": dict(method_args=dict(reflow_pairs=32)),
            "shortcut_16k": dict(method="shortcut", steps=16),
        },
        eval=dict(metric="classifier", n=32, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=4, steps=(1, 4)),
        cost=(
            "seconds: the whole batch (12 runs) took 24 s on 2 CPU cores (python engine, "
            "2026-12-02)"
        ),
    ),
    "table1": dict(
        description=(
            "the paper's Table 1 at mini scale on Fashion-MNIST 28x28: every method, dit-mini, "
            "the same training images per run, FD (classifier), one GPU"
        ),
        config=dict(data="fashion_mnist", **_MINI),
        methods=_TABLE1_ROWS,
        seeds=(0,),
        method_seeds=_TABLE1_SEEDS,
        # MeanFlow trains with TrainConfig's defaults (the paper's ImageNet settings): the tuning
        # preset's sweep chose them by a rule stated before it ran (lowest 1-step FD), see
        # benchmarks/results/tuning_2026-12-03b/meanflow_choice.json
        method_config={  # reflow makes 60,000 pairs (the training set's size)
            "shortcut_16k": dict(method="shortcut", steps=16_000),  # teacher's + student's images
        },
        eval=dict(metric="classifier", n=5_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost=(
            "13 runs (flow matching, shortcut and MeanFlow on seeds 0 and 1, the others on seed "
            "0), each 8,000 steps x 256 = 2.05M training images (shortcut_16k: 16,000 steps); "
            "the distilled students start from flow_matching seed 0; reflow first generates "
            "60,000 pairs with 128 teacher steps each. Measured on one H200, one run at a time, "
            "training and evaluation (2026-12-03): flow matching 84-102 s, shortcut 97 s, "
            "diffusion 125 s, consistency training 165 s, live reflow 167 s, consistency "
            "distillation 170 s, progressive distillation 199 s, reflow 250 s (its pairs "
            "included); the part of flow matching seeds 0 and 1 with the three students 23 min "
            "with the classifier; MeanFlow 149-170 s. Not measured yet: shortcut_16k."
        ),
    ),
    "tuning": dict(
        description=(
            "the tuning sweep at the table1 budget: MeanFlow at three published settings, "
            "shortcut at self-consistency fractions 1/8, 1/4, 1/2 (Fashion-MNIST, dit-mini, one GPU)"
        ),
        config=dict(data="fashion_mnist", **_MINI),
        methods=tuple(_TUNING_ROWS),
        seeds=(0,),
        method_config=_TUNING_ROWS,
        eval=dict(metric="classifier", n=5_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost=(
            "6 runs of 8,000 steps x 256 = 2.05M images each. Measured on one H200, one run at a "
            "time (2026-12-03): each MeanFlow row 149-189 s with evaluation, the three 8.6 min "
            "with the classifier. Not measured yet: the shortcut rows."
        ),
    ),
    "fashion_mnist": dict(
        description="mini-scale reproduction on Fashion-MNIST 28x28, FD (classifier), one GPU",
        config=dict(data="fashion_mnist", **_MINI),
        methods=("flow_matching", "shortcut"),
        seeds=(0, 1),
        eval=dict(metric="classifier", n=5_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost=_MINI_COST,
    ),
    "mnist": dict(
        description="mini-scale reproduction on MNIST 28x28, FD (classifier), one GPU",
        config=dict(data="mnist", **_MINI),
        methods=("flow_matching", "shortcut"),
        seeds=(0, 1),
        eval=dict(metric="classifier", n=5_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost=_MINI_COST,
    ),
    "cifar10": dict(
        description="pixel-space CIFAR-10 32x32, DiT-S/2, Inception FID-10k (needs internet)",
        config=dict(
            data="cifar10",
            model="dit-s",
            steps=100_000,
            batch_size=256,
            lr=1e-4,
            class_conditional=False,
            target_weights="online",
            compile=True,
            ckpt_every=5_000,
            log_every=500,
            progress=False,
        ),
        methods=("flow_matching", "shortcut"),
        seeds=(0, 1),
        eval=dict(metric="inception", n=10_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost=(
            "100,000 steps x 256 = 25.6M images; the DiT-S/2 step on 3x32x32 has not been "
            "measured here (python benchmarks/speed.py --models dit-s measures it), plus "
            "evaluation."
        ),
    ),
    "celeba64": dict(
        description="pixel-space CelebA 64x64, DiT-S with patch 4, Inception FID-10k (needs internet)",
        config=dict(
            data="celeba64",
            model="dit-s",
            model_overrides={"patch": 4},  # 256 tokens, as DiT-S/2 on 32x32
            steps=100_000,
            batch_size=256,
            lr=1e-4,
            class_conditional=False,
            target_weights="online",
            compile=True,
            ckpt_every=5_000,
            log_every=500,
            progress=False,
        ),
        methods=("flow_matching", "shortcut"),
        seeds=(0,),
        eval=dict(metric="inception", n=10_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost="not measured here (no CelebA on these machines); 25.6M images per run",
    ),
    # The paper's scale (the book's design notes): DiT-B/2 on 4x32x32 latents of the SD VAE, encoded
    # once and cached (shortcut_mini.data.latents). The images are the user's:
    # --set data=image_folder:PATH (256x256 after center crop; class subfolders for ImageNet).
    "celebahq256": dict(
        description=(
            "paper scale: CelebA-HQ 256x256 in SD-VAE latent space (4x32x32), DiT-B/2, batch 64, "
            "400k steps, Inception FID-50k on decoded samples (your image folder; needs diffusers "
            "and the VAE weights)"
        ),
        config=dict(
            data="image_folder:data/celeba_hq_256",  # replace: --set data=image_folder:PATH
            latent_vae="stabilityai/sd-vae-ft-ema",
            image_size=256,
            model="dit-b",
            steps=400_000,
            batch_size=64,
            lr=1e-4,
            class_conditional=False,
            target_weights="ema",  # as the official code, at the paper's length (the design notes)
            compile=True,
            ckpt_every=10_000,
            log_every=1_000,
            progress=False,
        ),
        methods=("flow_matching", "shortcut"),
        seeds=(0,),
        eval=dict(metric="inception", n=50_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost=(
            "400,000 steps x 64 = 25.6M latents; measured DiT-B/2 shortcut step on 4x32x32 (H200, "
            "bf16, batch 256, compiled): 2,386 img/s (benchmarks/results/speed.json): about 3.0 h "
            "per run on an H200 at that throughput (batch 64 runs slower), plus encoding the 30k "
            "images once and FID-50k."
        ),
    ),
    "imagenet256": dict(
        description=(
            "paper scale: ImageNet 256x256 class-conditional in SD-VAE latent space, DiT-B/2, "
            "batch 256, 800k steps, Inception FID-50k on decoded samples (your image folder with "
            "one subfolder per class; needs diffusers and the VAE weights)"
        ),
        config=dict(
            data="image_folder:data/imagenet/train",  # replace: --set data=image_folder:PATH
            latent_vae="stabilityai/sd-vae-ft-ema",
            image_size=256,
            model="dit-b",
            steps=800_000,
            batch_size=256,
            lr=1e-4,
            class_conditional=True,
            class_dropout=0.1,
            target_weights="ema",
            compile=True,
            ckpt_every=10_000,
            log_every=1_000,
            progress=False,
        ),
        methods=("flow_matching", "shortcut"),
        seeds=(0,),
        eval=dict(metric="inception", n=50_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost=(
            "800,000 steps x 256 = 204.8M latents: about 24 h per run on one H200 at the measured "
            "2,386 img/s of the DiT-B/2 shortcut step (benchmarks/results/speed.json), or torchrun "
            "over several GPUs; plus encoding 1.28M images once (latents cached as float16, about "
            "10.5 GB) and FID-50k."
        ),
    ),
}


def settings(chapter: str, profile: str) -> SimpleNamespace:
    """The sizes of ``chapter`` at ``profile`` as attributes (``s.steps``, ``s.batch_size``...)."""
    if chapter not in PROFILES:
        raise ValueError(f"unknown chapter {chapter!r}; known: {sorted(PROFILES)}")
    if profile not in PROFILE_NAMES:
        raise ValueError(
            f"unknown profile {profile!r}; choose one of {PROFILE_NAMES} "
            "(set SHORTCUT_MINI_PROFILE or the notebook's parameters cell)"
        )
    return SimpleNamespace(profile=profile, **PROFILES[chapter].resolve(profile))
