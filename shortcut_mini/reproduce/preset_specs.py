"""The reproduction presets: what ``shortcut-mini reproduce PRESET`` trains and evaluates.

``PRESETS`` maps a preset's name to its runs; ``shortcut_mini.reproduce.presets`` reads them (a
run's config, its seeds, the evaluation sweep). Where a preset means every method (``table1``,
``table1_smoke``), its methods come from the objective registry
(``shortcut_mini.objectives.OBJECTIVES``), so a method added to the package is a row of the
paper's Table 1 with no edit here; the other presets pick their methods on purpose.

``PRESETS`` and ``TABLE1_METHODS`` are built when first read: the registry imports torch, which
the command line's ``--help`` does without.
"""

from __future__ import annotations

from ..levels import DEFAULT_BUDGETS
from ..method_settings import MEANFLOW_SETTINGS, SHORTCUT_SWITCHES

__all__ = ["PRESETS", "SINCE_PAPER_VARIANTS", "TABLE1_METHODS"]

PRESETS: dict[str, dict]  # every preset by name (assigned by __getattr__, below)
TABLE1_METHODS: tuple[str, ...]  # the methods of the table1 presets, in the registry's order

# Each preset: ``config`` (TrainConfig fields shared by every run; ``method`` and ``seed`` are set
# per run), ``methods``, ``seeds``, ``eval`` (the step-budget sweep: metric, n samples, step
# budgets, sampling seeds, reference split), ``grid`` (sample-grid budgets), ``description`` and
# ``cost`` (what one run costs, quoted only from measurements, with their source). Optional:
# ``method_seeds`` (``{method: seeds}`` replacing ``seeds`` for that method) and ``method_config``
# (``{method: {field: value}}``, TrainConfig fields of that method's runs only; its own settings
# under ``method_args``, e.g. reflow's ``dict(method_args=dict(reflow_pairs=32))``). A method
# that distils a teacher gets ``teacher=`` the batch's own flow-matching run of its seed (or of
# seed 0), which the runner trains first.
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
    "8,000 steps x 256 = 2.05M images. Measured (records in book/results/, compiled, bf16): "
    "training 1.6-3.2 min per run on one H200 and 2.1-3.8 min on one H100 (the first run on a "
    "machine includes compilation); evaluation 1.4-1.5 min in the 2026-11-26 runs, 0.2 min in "
    "those of 2026-12-03 (fashion_mnist's shortcut); a batch of 4 runs took 16.5 min on an H200 "
    "(fashion_mnist, 2026-11-26) and 19.6 min on an H100 (mnist)."
)
# The paper's Table 1 at mini scale (issue 11): every method, the same network and the same
# training images per run; the methods that distil a teacher start from the batch's flow-matching
# run (its images are reported in their own column). Every method is the package's own, in the
# registry's order: one registered from outside the package (``register_objective`` in a reader's
# file) trains with ``--methods`` but is no row here, so that what a preset lists does not depend
# on what was imported before it.


def _table1_methods() -> tuple[str, ...]:
    from .. import objectives

    own = objectives.__name__ + "."
    return tuple(n for n, cls in objectives.OBJECTIVES.items() if cls.__module__.startswith(own))


_TABLE1_SEEDS = dict(flow_matching=(0, 1), shortcut=(0, 1), meanflow=(0, 1))
# The fairness row: a distilled student sees its teacher's training images and its own, so a
# shortcut model trained on both (twice the steps) is its own row, labelled by its budget.
_FAIRNESS_ROW = "shortcut_16k"


def _table1_rows(methods: tuple[str, ...]) -> tuple[str, ...]:
    """``methods`` with the fairness row after ``shortcut``."""
    return tuple(r for m in methods for r in ((m, _FAIRNESS_ROW) if m == "shortcut" else (m,)))


_TABLE1_ROWS = object()  # stands for _table1_rows(TABLE1_METHODS) until PRESETS is read
# Shortcut's self-consistency fraction at the table1 budget: 1/2, not the paper's 1/4
# (TrainConfig's default). The tuning preset's sweep (1/8, 1/4, 1/2) chose it by the rule that
# chose MeanFlow's settings, the lowest 1-step FD (shortcut_mini.verdict.best_one_step); records
# in benchmarks/results/tuning_2026-12-03c and table1_2026-12-03. Every shortcut row trained on
# that budget uses it, so that the rows compared with shortcut are compared at its chosen setting.
_SHORTCUT_TUNED = dict(bootstrap_fraction=0.5)
# The tuning sweep (the MeanFlow issue): MeanFlow at its paper's ImageNet and CIFAR-10 settings and
# one between them (shortcut_mini.method_settings.MEANFLOW_SETTINGS), and,
# with the same tuning budget, shortcut models at three self-consistency fractions, each one row
# of the table1 budget, so that neither method is compared at settings chosen for the other.
_TUNING_ROWS = {
    **{
        f"meanflow_{name}": dict(method="meanflow", method_args=dict(args))
        for name, args in MEANFLOW_SETTINGS.items()
    },
    "shortcut_k1_8": dict(method="shortcut", bootstrap_fraction=0.125),
    "shortcut_k1_4": dict(method="shortcut", bootstrap_fraction=0.25),
    "shortcut_k1_2": dict(method="shortcut", bootstrap_fraction=0.5),
}
# Shortcut models since the paper: each switch of the shortcut objective beyond the paper alone,
# at the table1 budget, against the table1 preset's plain shortcut runs; then one combination on
# two seeds. The combination's switches were chosen from the single switches' records by a rule
# stated before they ran (shortcut_mini.verdict.switches_to_combine, applied by
# benchmarks/switch_choice.py): OT pairing and the step as a number, see
# benchmarks/results/since_paper_2026-12-03/part_singles/switch_choice.json.
SINCE_PAPER_VARIANTS = {  # each row: variants of the switch table, on a plain shortcut run
    "shortcut_ot": ("OT pairing",),
    "shortcut_split": ("SplitMeanFlow split",),
    "shortcut_twin_ema": ("twin EMA 0.95",),
    "shortcut_sin_d": ("step as a number",),  # the split's control: the step as a number alone
    "shortcut_combined": ("OT pairing", "step as a number"),
}


def _switch_row(*variants: str) -> dict:
    """A shortcut row at the tuned fraction with the switches of ``variants`` together."""
    row = dict(method="shortcut", **_SHORTCUT_TUNED)
    for variant in variants:
        switch = SHORTCUT_SWITCHES[variant]
        row.update({k: v for k, v in switch.items() if k != "method_args"})
        row["method_args"] = {**row.get("method_args", {}), **switch.get("method_args", {})}
    if not row["method_args"]:
        del row["method_args"]
    return row


_SINCE_PAPER_ROWS = {row: _switch_row(*variants) for row, variants in SINCE_PAPER_VARIANTS.items()}
_PRESETS: dict[str, dict] = {
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
            _FAIRNESS_ROW: dict(method="shortcut", steps=16),
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
            "shortcut": _SHORTCUT_TUNED,
            _FAIRNESS_ROW: dict(method="shortcut", steps=16_000, **_SHORTCUT_TUNED),
        },
        eval=dict(metric="classifier", n=5_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost=(
            "13 runs (flow matching, shortcut and MeanFlow on seeds 0 and 1, the others on seed "
            "0), each 8,000 steps x 256 = 2.05M training images (shortcut_16k: 16,000 steps); "
            "the distilled students start from flow_matching seed 0; reflow first generates "
            "60,000 pairs with 128 teacher steps each. Measured on one H200, one run at a time, "
            "training and evaluation (2026-12-03): flow matching 84-102 s, shortcut 108-163 s, "
            "diffusion 125 s, consistency training 165 s, live reflow 167 s, consistency "
            "distillation 170 s, progressive distillation 199 s, reflow 250 s (its pairs "
            "included); the part of flow matching seeds 0 and 1 with the three students 23 min "
            "with the classifier; MeanFlow 149-170 s; shortcut_16k 202 s."
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
            "with the classifier; each shortcut row 112-113 s with evaluation."
        ),
    ),
    "since_paper": dict(
        description=(
            "shortcut models since the paper at the table1 budget: minibatch OT pairing, "
            "SplitMeanFlow's split, iSM's twin EMA, each alone, and a combination on two seeds "
            "(Fashion-MNIST, dit-mini, one GPU)"
        ),
        config=dict(data="fashion_mnist", **_MINI),
        methods=tuple(_SINCE_PAPER_ROWS),
        seeds=(0,),
        method_seeds=dict(shortcut_combined=(0, 1)),
        method_config=_SINCE_PAPER_ROWS,
        eval=dict(metric="classifier", n=5_000, steps=_BUDGETS, seeds=(0,)),
        grid=dict(n=16, steps=(1, 2, 4, 128)),
        cost=(
            "6 runs of 8,000 steps x 256 = 2.05M images each. Measured on one H200, one run at a "
            "time, training and evaluation (2026-12-03): OT pairing 233 s, split 146 s, twin EMA "
            "210 s, step as a number 136 s, the combination 218 s (seed 0) and 275 s (seed 1)."
        ),
    ),
    "fashion_mnist": dict(
        description="mini-scale reproduction on Fashion-MNIST 28x28, FD (classifier), one GPU",
        config=dict(data="fashion_mnist", **_MINI),
        methods=("flow_matching", "shortcut"),
        seeds=(0, 1),
        method_config={"shortcut": _SHORTCUT_TUNED},
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
            "bf16, batch 256, compiled): 2,431 img/s (benchmarks/results/speed.json): about 2.9 h "
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
            "800,000 steps x 256 = 204.8M latents: about 23 h per run on one H200 at the measured "
            "2,431 img/s of the DiT-B/2 shortcut step (benchmarks/results/speed.json), or torchrun "
            "over several GPUs; plus encoding 1.28M images once (latents cached as float16, about "
            "10.5 GB) and FID-50k."
        ),
    ),
}


def __getattr__(name: str):
    """``PRESETS`` and ``TABLE1_METHODS``, built on first use and kept (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    methods = _table1_methods()
    rows = _table1_rows(methods)
    globals()["TABLE1_METHODS"] = methods
    globals()["PRESETS"] = {
        key: {**spec, "methods": rows} if spec["methods"] is _TABLE1_ROWS else spec
        for key, spec in _PRESETS.items()
    }
    return globals()[name]
