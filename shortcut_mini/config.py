"""``TrainConfig``: every setting of a training run, validated, with clear errors.

Accepted names (``shortcut_mini.names()`` prints them):

- ``data``: 2D toys ``checkerboard``, ``moons``, ``8gaussians``, ``spirals`` (and the other
  names of ``shortcut_mini.data.DATASETS``); images ``digits``, ``mnist``, ``fashion_mnist``,
  ``cifar10``, ``celeba64``, ``image_folder:PATH``
- ``method``: ``flow_matching``, ``shortcut``
- ``model``: ``mlp``, ``mlp-small`` (2D); ``dit-tiny``, ``dit-mini``, ``dit-s``, ``dit-b``,
  ``dit-xl`` (images)
- ``device``: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N``
- ``precision``: ``auto`` (bf16 on GPUs that support it, fp16 with loss scaling on older GPUs,
  fp32 on CPU), ``fp32``, ``bf16``, ``fp16``
- ``target_weights``: ``online``, ``ema``
- ``t_sampling``: ``grid``, ``uniform``
- ``level_embedding``: ``learned``, ``sin_level``, ``sin_d``
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .levels import check_base_steps
from .models import MODEL_PRESETS
from .models.embeddings import LEVEL_EMBEDDINGS
from .objectives import OBJECTIVES
from .objectives.flow_matching import T_SAMPLINGS
from .objectives.shortcut import TARGET_WEIGHTS

__all__ = ["TrainConfig", "ConfigError", "RESUME_IGNORED_FIELDS", "names"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Fields that may change between a run and its resumption: they do not change the trajectory.
RESUME_IGNORED_FIELDS = (
    "steps",
    "out_dir",
    "device",
    "progress",
    "log_every",
    "ckpt_every",
    "overwrite",
    "compile",
    "data_root",
)


class ConfigError(ValueError):
    """A config value is invalid; the message names the field and how to fix it."""


def _toy_names() -> list[str]:
    from .data import TOY2D

    return list(TOY2D)


def _data_names() -> list[str]:
    from .data import DATASETS

    return sorted(k for k in DATASETS if not k.startswith("image_folder"))


@dataclass
class TrainConfig:
    """Settings of one training run (defaults follow the book's design notes and the paper).

    Attributes:
        data: dataset name (see the module docstring).
        method: ``"shortcut"`` (paper Eq. 5) or ``"flow_matching"``.
        model: model preset name.
        steps: total optimizer steps.
        batch_size: global batch size (split over GPUs under ``torchrun``).
        seed: seeds model init, data order, noise, t and levels; a CPU run repeats exactly.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        out_dir: where checkpoints and logs go (None: keep in memory only).
        lr: AdamW learning rate (constant; no gradient clipping).
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        ema_decay: EMA of the weights, decay ``min(ema_decay, (1+s)/(10+s))`` with warm-up.
        ema_warmup: use the EMA warm-up above (else a constant ``ema_decay``).
        M: base steps (power of two), the finest step size ``1/M``.
        bootstrap_fraction: k, the fraction of the batch given self-consistency targets.
        t_sampling: how ``t`` is drawn (see ``objectives.Shortcut``).
        target_weights: which weights compute the self-consistency targets.
        clip: clamp bound used in the self-consistency targets (None: off; see
            ``objectives.Shortcut``).
        class_conditional: condition on labels.
        class_dropout: probability of the null label during training (for CFG).
        guidance_scale: guided self-consistency targets when > 0.
        level_embedding: how the step-size level enters the network.
        model_overrides: fields replacing the model preset's (e.g. ``{"depth": 2}``).
        data_root: where downloaded datasets live.
        image_size: resize images to this size.
        n_data: number of examples (2D toys: number of points drawn; images: a seeded subset).
        latent_vae: train in the latent space of this VAE (a diffusers ``AutoencoderKL`` Hub id,
            e.g. ``"stabilityai/sd-vae-ft-ema"``, or a local folder): the images of ``data`` are
            encoded once, cached, and trained on as latents (``data.latents``); None: pixels.
        precision: mixed precision (``auto``, ``fp32``, ``bf16``, ``fp16``).
        compile: wrap the model in ``torch.compile``.
        log_every: metrics-log interval in steps (0: only at the end).
        ckpt_every: checkpoint interval in steps (0: only at the end).
        overwrite: start afresh even if ``out_dir`` holds a run with another config.
        progress: show a tqdm progress bar.
    """

    data: str = "checkerboard"
    method: str = "shortcut"
    model: str = "mlp"
    steps: int = 2000
    batch_size: int = 256
    seed: int = 0
    device: str = "auto"
    out_dir: str | None = None
    lr: float = 1e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    ema_decay: float = 0.999
    ema_warmup: bool = True
    M: int = 128
    bootstrap_fraction: float = 0.25
    t_sampling: str = "grid"
    target_weights: str = "online"
    clip: float | None = 4.0
    class_conditional: bool = False
    class_dropout: float = 0.1
    guidance_scale: float = 0.0
    level_embedding: str = "learned"
    model_overrides: dict = field(default_factory=dict)
    data_root: str | None = None
    image_size: int | None = None
    n_data: int | None = None
    latent_vae: str | None = None
    precision: str = "auto"
    compile: bool = False
    log_every: int = 50
    ckpt_every: int = 1000
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if self.out_dir is not None:
            self.out_dir = str(self.out_dir)
        self.validate()

    def validate(self) -> None:
        def bad(name, msg):
            raise ConfigError(f"TrainConfig.{name}: {msg}")

        if not (self.data.startswith("image_folder:") or self.data in _data_names()):
            bad(
                "data",
                f"unknown dataset {self.data!r}; valid names: {_data_names()} or "
                "'image_folder:PATH'",
            )
        if self.latent_vae is not None and self.data in _toy_names():
            bad("latent_vae", f"needs an image dataset, not the 2D toy {self.data!r}")
        if self.method not in OBJECTIVES:
            bad("method", f"unknown method {self.method!r}; valid names: {sorted(OBJECTIVES)}")
        if self.model not in MODEL_PRESETS:
            bad("model", f"unknown model {self.model!r}; valid names: {sorted(MODEL_PRESETS)}")
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(name, f"must be a positive integer, got {v!r}")
        for name in ("log_every", "ckpt_every"):
            if getattr(self, name) < 0:
                bad(name, f"must be >= 0, got {getattr(self, name)!r}")
        try:
            check_base_steps(self.M)
        except ValueError as e:
            bad("M", str(e))
        if not 0 <= self.bootstrap_fraction <= 1:
            bad(
                "bootstrap_fraction",
                f"must be in [0, 1] (paper: 0.25), got {self.bootstrap_fraction}",
            )
        if not 0 <= self.ema_decay < 1:
            bad("ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.class_dropout < 1:
            bad("class_dropout", f"must be in [0, 1), got {self.class_dropout}")
        if self.lr <= 0:
            bad("lr", f"must be positive, got {self.lr}")
        choices = {
            "t_sampling": T_SAMPLINGS,
            "target_weights": TARGET_WEIGHTS,
            "level_embedding": LEVEL_EMBEDDINGS,
            "precision": PRECISIONS,
        }
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                bad(name, f"must be one of {list(valid)}, got {getattr(self, name)!r}")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda", "mps") or dev.startswith("cuda:")):
            bad("device", f"must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"TrainConfig: unknown field(s) {unknown}; valid fields: {sorted(known)}"
            )
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a YAML or JSON config file."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text) or {}
        else:
            d = json.loads(text)
        return cls.from_dict(d)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def differences(self, other: TrainConfig, ignore=RESUME_IGNORED_FIELDS) -> dict:
        """Fields (not in ``ignore``) whose values differ: ``{name: (self, other)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b.get(k)) for k in a if k not in ignore and a[k] != b.get(k)}


def names() -> str:
    """The table of accepted names for ``data``, ``method`` and ``model``."""
    from .data import DATASETS

    lines = ["data:"]
    lines += [f"  {k:16s} {v}" for k, v in DATASETS.items()]
    lines += ["  image_folder:PATH  your own images (subfolders = classes)", "method:"]
    lines += [f"  {k}" for k in OBJECTIVES]
    lines += ["model:"] + [f"  {k:10s} {v}" for k, v in MODEL_PRESETS.items()]
    return "\n".join(lines)
