"""The chapters' sizes, one profile per kind of machine.

A chapter reads its sizes with ``settings("03_shortcut_models", profile)``; ``profile`` is

* ``ci``: seconds on a CPU, for the tests (nbval) and the CI book build;
* ``cpu``: the book's default, under a minute to 9 minutes a chapter on 2 CPU cores, with the embedded data;
* ``small_gpu``: Colab's T4 and GPUs like it (about 10 minutes a chapter, by counted work);
* ``gpu``: a large GPU (an H100 or H200): under 3 minutes a chapter (14 s to 2 min 34 s measured
  on an H200, one chapter at a time: book/results/chapter_times_gpu.json).

A chapter states its settings once (its defaults, the ``cpu`` sizes) and each other profile only
what differs; :func:`settings` merges the two at lookup.

The reproduction presets (``shortcut-mini reproduce PRESET``) are not chapters' sizes: they are
in ``shortcut_mini.reproduce.PRESETS``.
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
# < 30 minutes on 2 CPU cores: 29 min measured, one chapter at a time, in
# book/results/chapter_times_cpu.json).
# The ``gpu`` sizes: networks this small cost a fixed time per dispatched operator (kernel
# launches), whatever the batch, so a large GPU buys its size with the batch, not the steps. Each
# chapter's operators (counted by scripts/flop_count.py) were sized to fit 2 minutes at the
# seconds per operator first measured on an H200, 2/3 of the aim of 3: fewer steps than
# ``small_gpu`` (a T4's 10 minutes), more training examples and FLOPs. Every chapter has since run
# alone at both GPU profiles on an H200 with its checks (book/results/chapter_times_gpu.json); their
# bounds stay no tighter than those of the profile (``ci`` in the tests, ``cpu`` in the book) that
# trains as many steps or fewer (tests/test_profiles.py).
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
