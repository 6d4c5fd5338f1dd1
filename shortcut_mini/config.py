"""``TrainConfig``: every setting of a training run, validated, with clear errors.

Accepted names (``shortcut_mini.names()`` prints them):

- ``data``: 2D toys ``checkerboard``, ``moons``, ``8gaussians``, ``spirals`` (and the other
  names of ``shortcut_mini.data.DATASETS``); images ``digits``, ``mnist``, ``fashion_mnist``,
  ``cifar10``, ``celeba64``, ``image_folder:PATH``
- ``method``: ``flow_matching``, ``shortcut``; the paper's baselines ``diffusion``,
  ``consistency_training``, ``live_reflow``; with a teacher: ``consistency_distillation``,
  ``progressive_distillation``, ``reflow``; ``meanflow``
- ``model``: ``mlp``, ``mlp-small`` (2D); ``dit-tiny``, ``dit-mini``, ``dit-s``, ``dit-b``,
  ``dit-xl`` (images)
- ``device``: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N``
- ``precision``: ``auto`` (bf16 on GPUs that support it, fp16 with loss scaling on older GPUs,
  fp32 on CPU), ``fp32``, ``bf16``, ``fp16``
- ``target_weights``: ``online``, ``ema``
- ``t_sampling``: ``grid``, ``uniform``
- ``level_embedding``: ``learned``, ``sin_level``, ``sin_d``, ``sin_d_unit`` (left out: the method's own, see
  ``shortcut_mini.objectives.level_embedding_choice``)
- ``method_args``: the settings of the run's method, the fields of its objective's ``settings``
  dataclass (``shortcut_mini.method_settings``), e.g. ``{"meanflow_ratio": 0.5}`` for
  ``meanflow``, ``{"reflow_pairs": 60000}`` for ``reflow``

Every value, whatever its source (Python, a YAML or JSON file, a command-line flag, ``reproduce
--set KEY=VALUE``), is read as its field's declared type by one function
(``shortcut_mini.fieldtypes.coerce``, via :func:`parse_field`; a method's settings by
``MethodSettings.read``), then checked by :meth:`TrainConfig.validate`. Configs saved before the
method settings moved into ``method_args`` (run folders, records) are read by
:meth:`TrainConfig.from_saved`. This module does not import ``torch``: the name tables it checks
against are looked up when a config is validated, so ``shortcut-mini --help`` starts at once.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .fieldtypes import coerce, describe, matches
from .levels import check_base_steps

__all__ = [
    "TrainConfig",
    "ConfigError",
    "RESUME_IGNORED_FIELDS",
    "RUN_ONLY_FIELDS",
    "trained_settings",
    "changed_settings",
    "as_train_config",
    "field_help",
    "names",
    "parse_field",
    "read_config_values",
    "refuse_moved_settings",
    "upgrade_saved_config",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")

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
    "compile_mode",
    "data_root",
)

# Fields that may differ between runs of one setting (the seeds of a results row, the variants of
# an ablation): where and how a run ran and what it started from, not what it trained.
RUN_ONLY_FIELDS = frozenset({*RESUME_IGNORED_FIELDS, "seed", "teacher", "reflow_pairs"} - {"steps"})

# Examples shown in an error message where a field's default (None, {}) is no example.
_EXAMPLES = {
    "out_dir": "runs/my_run",
    "data_root": "data",
    "image_size": 16,
    "n_data": 1000,
    "latent_vae": "stabilityai/sd-vae-ft-ema",
    "model_overrides": '{"depth": 2}',
    "teacher": "runs/flow_matching",
    "method_args": '{"meanflow_ratio": 0.5}',
    "level_embedding": "sin_d",
}


class ConfigError(UserError, ValueError):
    """A config value is invalid; the message names the field and how to fix it."""


def _toy_names() -> list[str]:
    from .data import TOY2D

    return list(TOY2D)


def _data_names() -> list[str]:
    from .data import DATASETS

    return sorted(k for k in DATASETS if not k.startswith("image_folder"))


@dataclass
class TrainConfig:
    """Settings of one training run (defaults follow :ref:`the book's design notes <design-decisions>` and the paper).

    Attributes:
        data: dataset name (``shortcut-mini names`` lists them).
        method: ``"shortcut"`` (paper Eq. 5), ``"flow_matching"``, a baseline of the paper's
            Table 1 (``"diffusion"``, ``"consistency_training"``, ``"live_reflow"``, or a method
            that distils a ``teacher``), or ``"meanflow"`` (``shortcut-mini names`` lists them).
        model: model preset name (``shortcut-mini names`` lists them).
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
        bootstrap_fraction: k, the fraction of the batch given self-consistency targets (live
            reflow: the fraction given reflow targets).
        t_sampling: how ``t`` is drawn (see ``objectives.Shortcut``).
        target_weights: which weights compute the self-consistency targets.
        clip: clamp bound used in the self-consistency targets (None: off; see
            ``objectives.Shortcut``).
        class_conditional: condition on labels.
        class_dropout: probability of the null label during training (for CFG).
        guidance_scale: guided targets when > 0 (class-conditional runs): shortcut's
            self-consistency targets, MeanFlow's guided velocity (its ``w``).
        level_embedding: how the step size enters the network: ``learned``, ``sin_level``,
            ``sin_d`` or ``sin_d_unit``. Left out (None), the method's own: ``learned`` for most
            methods, ``sin_d_unit`` for ``meanflow`` (the step size as a number, with ``t`` and
            ``d`` unscaled; it also accepts ``sin_d``; another choice for it is an error).
        method_args: the settings that belong to the run's method (the fields of its
            objective's ``settings`` dataclass), e.g. ``{"meanflow_ratio": 0.5}``; left out,
            the method's defaults (read back, every setting of the method).
        model_overrides: fields replacing the model preset's (e.g. ``{"depth": 2}``).
        data_root: where downloaded datasets live.
        image_size: resize images to this size.
        n_data: number of examples (2D toys: number of points drawn; images: a seeded subset).
        latent_vae: train in the latent space of this VAE (a diffusers ``AutoencoderKL`` Hub id,
            e.g. ``"stabilityai/sd-vae-ft-ema"``, or a local folder): the images of ``data`` are
            encoded once, cached, and trained on as latents (``data.latents``); None: pixels.
        precision: mixed precision (``auto``, ``fp32``, ``bf16``, ``fp16``).
        compile: wrap the model in ``torch.compile``.
        compile_mode: its mode: ``"default"`` (inductor), ``"reduce-overhead"`` (CUDA graphs: on
            one H200 the small ``dit-mini`` step ran 1.2x (flow matching) to 1.5x (shortcut,
            MeanFlow) faster than ``"default"``, ``benchmarks/results/speed.json``; up to 3.1x
            in runs whose ``"default"`` step was slower, ``benchmarks/results/README.md``),
            ``"max-autotune"``, ``"max-autotune-no-cudagraphs"``.
        log_every: metrics-log interval in steps (0: only at the end).
        ckpt_every: checkpoint interval in steps (0: only at the end).
        overwrite: start afresh, whatever run ``out_dir`` holds (without it, a run of the
            same config resumes and one of another config is refused). The old run is set
            aside until the new one writes its first checkpoint; the user's own files stay.
        progress: show a tqdm progress bar.
        teacher: the run folder of a finished flow-matching run of the same model and data,
            for ``consistency_distillation``, ``progressive_distillation`` and ``reflow`` (the
            student starts from its weights); None for the other methods.
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
    level_embedding: str | None = None
    method_args: dict = field(default_factory=dict)
    model_overrides: dict = field(default_factory=dict)
    data_root: str | None = None
    image_size: int | None = None
    n_data: int | None = None
    latent_vae: str | None = None
    precision: str = "auto"
    compile: bool = False
    compile_mode: str = "default"
    log_every: int = 50
    ckpt_every: int = 1000
    overwrite: bool = False
    progress: bool = True
    teacher: str | None = None

    def __post_init__(self):
        # One path for every source: text from flags, YAML/JSON values, Python values.
        hints = _field_types()
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce_field(f.name, getattr(self, f.name), hints[f.name]))
        if self.level_embedding is None:
            self.level_embedding = _method_level_embedding(self.method)
        if _settings_class(self.method) is not None:  # every setting of the method, read
            self.method_args = _read_method_args(self.method, self.method_args)
        self.validate()

    def validate(self) -> None:
        """Check every field's type and range; raise :class:`ConfigError` naming the first bad one."""
        hints = _field_types()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not matches(value, hints[f.name]):
                _bad(f.name, f"expected {describe(hints[f.name])}, got {value!r}")
        _check_names(self)
        _read_method_args(self.method, self.method_args)
        _check_numbers(self)
        _check_model_overrides(self.model, self.model_overrides)

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["method_args"] = dict(self.method_args)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A config from a mapping of field names to values (text is read as the field's type)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        refuse_moved_settings({k: d[k] for k in unknown})
        if unknown:
            raise ConfigError(
                f"TrainConfig: unknown field(s) {unknown}; valid fields: {sorted(known)}"
            )
        return cls(**d)

    @classmethod
    def from_saved(cls, d: dict) -> TrainConfig:
        """The config of a run folder's checkpoint or a record, also one saved before the
        method settings moved into ``method_args`` (:func:`upgrade_saved_config`)."""
        return cls.from_dict(upgrade_saved_config(d))

    @classmethod
    def from_strings(cls, texts: dict[str, str], base: dict | None = None) -> TrainConfig:
        """A config from ``{field: text}`` (command-line flags, ``--set KEY=VALUE``) over
        ``base``; keys may use dashes (``batch-size``)."""
        return cls.from_dict({**(base or {}), **{k.replace("-", "_"): v for k, v in texts.items()}})

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a YAML or JSON config file (errors name the file, and the line where known)."""
        values = read_config_values(path)
        try:
            return cls.from_dict(values)
        except ConfigError as e:
            raise ConfigError(f"config file {path}: {e}") from None

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes``. A new ``method`` also gets its own default step-size
        embedding when this config's embedding is the old method's default and ``changes``
        names none (``TrainConfig().replace(method="meanflow")`` is valid); likewise its
        ``method_args`` are the new method's defaults unless ``changes`` names them."""
        refuse_moved_settings({k: v for k, v in changes.items() if k not in _field_types()})
        method = changes.get("method", self.method)
        if method != self.method and "method_args" not in changes:
            changes["method_args"] = {}
        if (
            method != self.method
            and "level_embedding" not in changes
            and self.level_embedding == _method_level_embedding(self.method)
        ):
            changes["level_embedding"] = None
        return dataclasses.replace(self, **changes)

    def differences(self, other: TrainConfig, ignore=RESUME_IGNORED_FIELDS) -> dict:
        """Fields (not in ``ignore``) whose values differ: ``{name: (self, other)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b.get(k)) for k in a if k not in ignore and a[k] != b.get(k)}


def _refusing_init(init):
    """``TrainConfig.__init__`` that names ``method_args`` for a setting that moved there
    (``TrainConfig(meanflow_ratio=0.5)``) instead of a bare ``TypeError``."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        refuse_moved_settings({k: v for k, v in kwargs.items() if k not in _field_types()})
        init(self, *args, **kwargs)

    return __init__


TrainConfig.__init__ = _refusing_init(TrainConfig.__init__)


def as_train_config(value, what: str = "train()") -> TrainConfig:
    """``value`` as a :class:`TrainConfig`: a ``TrainConfig`` itself, a mapping of its fields
    (``{"steps": 500}``), or the path of a YAML or JSON config file; ``TypeError`` otherwise,
    naming the forms ``what`` takes."""
    if isinstance(value, TrainConfig):
        return value
    if isinstance(value, Mapping):
        return TrainConfig.from_dict(dict(value))
    if isinstance(value, (str, os.PathLike)):
        return TrainConfig.from_file(value)
    raise TypeError(
        f"{what} takes a TrainConfig (e.g. TrainConfig(steps=500)), a dict of its fields or "
        f"the path of a YAML or JSON config file; got {type(value).__name__}"
    )


def _bad(name: str, msg: str):
    raise ConfigError(f"TrainConfig.{name}: {msg}")


@functools.cache
def _field_types() -> dict:
    return typing.get_type_hints(TrainConfig)


def _example(name: str) -> str:
    default = TrainConfig.__dataclass_fields__[name].default
    value = _EXAMPLES.get(name, default)
    return json.dumps(list(value)) if isinstance(value, tuple) else str(value)


def _coerce_field(name: str, value, hint):
    try:
        return coerce(value, hint)
    except ValueError:
        _bad(name, f"{value!r} is not {describe(hint)}; give one such as {_example(name)}")


def parse_field(name: str, text: str):
    """The value of ``TrainConfig`` field ``name`` written as ``text`` (a flag, ``--set``), read
    as the field's declared type; :class:`ConfigError` names the field if it cannot be."""
    hints = _field_types()
    name = name.replace("-", "_")
    if name not in hints:
        refuse_moved_settings({name: text})
        raise ConfigError(f"TrainConfig: unknown field {name!r}; valid fields: {sorted(hints)}")
    return _coerce_field(name, text, hints[name])


def read_config_values(path: str | Path) -> dict:
    """The fields of a YAML or JSON config file, each read as its declared type (YAML's
    ``lr: 1e-3``, a string to PyYAML, becomes ``0.001``); errors name the file."""
    values = read_config_file(Path(path))
    try:
        return {k: parse_field(k, v) for k, v in values.items()}
    except ConfigError as e:
        raise ConfigError(f"config file {path}: {e}") from None


def read_config_file(path: Path) -> dict:
    """The mapping in a YAML (``.yaml``, ``.yml``) or JSON file; :class:`ConfigError` names the
    file (and the line) when it is missing or malformed."""
    if path.is_dir():
        raise ConfigError(
            f"config file {path} is a folder; give the path of a YAML or JSON file (in it?)"
        )
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist; give the path of a YAML or JSON file"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {e.object[e.start]:#04x} at position "
            f"{e.start}); a config is a YAML or JSON text file: save it as UTF-8"
        ) from None
    except OSError as e:
        raise ConfigError(
            f"cannot read config file {path} ({e.strerror or e}); check its permissions"
        ) from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            why = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(
                f"config file {path} is not valid YAML{where} ({why}); fix that line"
            ) from None
    else:
        try:
            d = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"config file {path} is not valid JSON at line {e.lineno}, column {e.colno} "
                f"({e.msg}); fix that line (or use a .yaml file)"
            ) from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of TrainConfig fields (e.g. 'steps: 500'), "
            f"not {type(d).__name__}"
        )
    return d


def _check_names(cfg: TrainConfig) -> None:
    from .models.embeddings import LEVEL_EMBEDDINGS
    from .objectives import OBJECTIVES, level_embedding_choice
    from .objectives.flow_matching import T_SAMPLINGS
    from .objectives.shortcut import TARGET_WEIGHTS

    if not (cfg.data.startswith("image_folder:") or cfg.data in _data_names()):
        _bad(
            "data",
            f"unknown dataset {cfg.data!r}; valid names: {_data_names()} or 'image_folder:PATH'",
        )
    if cfg.data.startswith("image_folder:") and not cfg.data.removeprefix("image_folder:"):
        _bad("data", "'image_folder:' needs a folder after the colon, e.g. 'image_folder:photos'")
    if cfg.data.startswith("image_folder:") and cfg.image_size is None:
        _bad(
            "image_size",
            "an image_folder dataset needs image_size (e.g. 32): its images are resized",
        )
    if cfg.latent_vae is not None and cfg.data in _toy_names():
        _bad("latent_vae", f"needs an image dataset, not the 2D toy {cfg.data!r}")
    if cfg.method not in OBJECTIVES:
        _bad("method", f"unknown method {cfg.method!r}; valid names: {sorted(OBJECTIVES)}")
    _check_teacher(cfg, getattr(OBJECTIVES[cfg.method], "needs_teacher", False))
    accepted, default = level_embedding_choice(cfg.method)
    if cfg.level_embedding in LEVEL_EMBEDDINGS and cfg.level_embedding not in accepted:
        _bad(
            "level_embedding",
            f"method {cfg.method!r} accepts the step-size embedding(s) {list(accepted)}, not "
            f"{cfg.level_embedding!r}; leave level_embedding out (the method's default is "
            f"{default!r}) or set one of {list(accepted)}",
        )
    if cfg.model not in _model_presets():
        _bad("model", f"unknown model {cfg.model!r}; valid names: {sorted(_model_presets())}")
    choices = {
        "t_sampling": T_SAMPLINGS,
        "target_weights": TARGET_WEIGHTS,
        "level_embedding": LEVEL_EMBEDDINGS,
        "precision": PRECISIONS,
        "compile_mode": COMPILE_MODES,
    }
    for name, valid in choices.items():
        if getattr(cfg, name) not in valid:
            _bad(name, f"must be one of {list(valid)}, got {getattr(cfg, name)!r}")
    dev = cfg.device
    if not (dev in ("auto", "cpu", "cuda", "mps") or dev.startswith("cuda:")):
        _bad("device", f"must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")
    for name in ("out_dir", "data_root", "latent_vae", "teacher"):
        if getattr(cfg, name) is not None and not getattr(cfg, name).strip():
            _bad(name, f"must not be empty; give a path such as {_example(name)!r} or leave it out")


def _method_level_embedding(method: str) -> str | None:
    """The step-size embedding ``method`` uses when the config names none (None for an unknown
    method: validation then names the method)."""
    from .objectives import OBJECTIVES, level_embedding_choice

    return level_embedding_choice(method)[1] if method in OBJECTIVES else None


def _check_teacher(cfg: TrainConfig, needs_teacher: bool) -> None:
    if needs_teacher and cfg.teacher is None:
        _bad(
            "teacher",
            f"method {cfg.method!r} distils a teacher: give the run folder of a finished "
            "flow-matching run of the same model and data (e.g. teacher='runs/flow_matching')",
        )
    if not needs_teacher and cfg.teacher is not None:
        _bad("teacher", f"method {cfg.method!r} uses no teacher: leave teacher out (none)")
    if cfg.teacher and cfg.out_dir and cfg.teacher.strip() and cfg.out_dir.strip():
        teacher, out = (Path(p).expanduser().resolve() for p in (cfg.teacher, cfg.out_dir))
        if teacher == out or teacher in out.parents or out in teacher.parents:
            where = (
                "is"
                if teacher == out
                else ("contains" if teacher in out.parents else "lies inside")
            )
            _bad(
                "teacher",
                f"the teacher's folder {cfg.teacher} {where} the output folder out_dir "
                f"{cfg.out_dir}: training would write over the teacher it reads. Give the "
                "student its own out_dir, beside the teacher's (e.g. runs/reflow next to "
                "runs/flow_matching)",
            )


def _check_numbers(cfg: TrainConfig) -> None:
    from .objectives import OBJECTIVES

    for name in ("steps", "batch_size"):
        if getattr(cfg, name) < 1:
            _bad(name, f"must be a positive integer, got {getattr(cfg, name)!r}")
    for name in ("image_size", "n_data"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            _bad(name, f"must be a positive integer (or none), got {getattr(cfg, name)!r}")
    for name in ("seed", "log_every", "ckpt_every"):
        if getattr(cfg, name) < 0:
            _bad(name, f"must be >= 0, got {getattr(cfg, name)!r}")
    try:
        check_base_steps(cfg.M)
    except ValueError as e:
        _bad("M", str(e))
    floats = ("lr", "weight_decay", "ema_decay", "bootstrap_fraction", "class_dropout")
    for name in (*floats, "guidance_scale", "clip"):
        v = getattr(cfg, name)
        if v is not None and not math.isfinite(v):
            _bad(name, f"must be a finite number, got {v!r}")
    ranges = {
        "lr": (0, math.inf, False, "positive (paper: 1e-4)"),
        "weight_decay": (0, math.inf, True, ">= 0 (paper: 0.1)"),
        "ema_decay": (0, 1, True, "in [0, 1) (paper: 0.999)"),
        "bootstrap_fraction": (0, 1 + 1e-12, True, "in [0, 1] (paper: 0.25)"),
        "class_dropout": (0, 1, True, "in [0, 1)"),
        "guidance_scale": (0, math.inf, True, ">= 0 (0: off)"),
        "clip": (0, math.inf, False, "positive (official code: 4), or none for no clamp"),
    }
    for name, (lo, hi, closed, words) in ranges.items():
        v = getattr(cfg, name)
        if v is not None and not ((lo <= v if closed else lo < v) and v < hi):
            _bad(name, f"must be {words}, got {v!r}")
    if not all(math.isfinite(b) and 0 <= b < 1 for b in cfg.betas):
        _bad("betas", f"must be two numbers in [0, 1) such as [0.9, 0.999], got {list(cfg.betas)}")
    for name, problem in OBJECTIVES[cfg.method].config_problems(cfg).items():
        _bad(name, problem)  # what the method cannot train (e.g. fewer steps than stages)


def _settings_class(method: str):
    """The settings dataclass of ``method``'s objective (None for an unknown method)."""
    from .method_settings import NoSettings
    from .objectives import OBJECTIVES

    return getattr(OBJECTIVES[method], "settings", NoSettings) if method in OBJECTIVES else None


def _read_method_args(method: str, values) -> dict:
    """Every setting of ``method`` (its objective's ``settings`` dataclass): ``values`` read as
    their fields' types and checked, the others at their defaults; :class:`ConfigError` names
    the bad setting and, for one of another method, that method."""
    from .method_settings import SettingError

    cls = _settings_class(method)
    if cls is None:
        return values
    try:
        return cls.read(values).to_dict()
    except SettingError as e:
        where = f"method_args.{e.name}" if e.name else "method_args"
        owners = _moved_settings().get(e.name, [])
        if e.name not in cls.names() and owners:
            _bad(
                where,
                f"{e.name!r} is a setting of method {' or '.join(map(repr, owners))}, not of "
                f"{method!r}; valid settings of {method!r}: {cls.names() or 'none'}",
            )
        if e.name and e.name not in cls.names():
            _bad(where, f"method {method!r} has no setting {e.name!r}; its settings: {cls.names()}")
        _bad(where, str(e))


def _moved_settings() -> dict[str, list[str]]:
    """``{setting: [method, ...]}``: the settings of every registered method (that are not
    ``TrainConfig`` fields), the names that ``TrainConfig`` refuses with a pointer to
    ``method_args``."""
    from .objectives import OBJECTIVES

    out: dict[str, list[str]] = {}
    for method, cls in OBJECTIVES.items():
        for name in cls.settings.names():
            if name not in _field_types():
                out.setdefault(name, []).append(method)
    return out


def refuse_moved_settings(values: dict) -> None:
    """A :class:`ConfigError` for the first of ``values`` that is a method's setting (once a
    ``TrainConfig`` field), naming how to give it now."""
    if not values:
        return
    moved = _moved_settings()
    for name, value in values.items():
        if name in moved:
            shown = value if isinstance(value, str) else json.dumps(value, default=str)
            _bad(
                name,
                f"{name} is a setting of method {' or '.join(map(repr, moved[name]))}, given "
                f"in method_args: TrainConfig(method={moved[name][0]!r}, "
                f"method_args={{{name!r}: {shown}}}); command line: --method-arg "
                f"{name}={shown}; reproduce: --set method_args.{name}={shown}; a config "
                f"file: 'method_args: {{{name}: {shown}}}'",
            )


def upgrade_saved_config(d: dict) -> dict:
    """A saved config (a run's checkpoint, a record) in today's form: a method setting saved as
    a field of its own (``meanflow_ratio``, ``reflow_pairs``: the form before ``method_args``)
    moves into ``method_args`` for the run's method and is dropped for the others (which did
    not read it). A config in today's form comes back unchanged."""
    moved = _moved_settings()
    old = {k: v for k, v in d.items() if k in moved and k not in _field_types()}
    if not old:
        return dict(d)
    out = {k: v for k, v in d.items() if k not in old}
    own = {k: v for k, v in old.items() if out.get("method") in moved[k]}
    out["method_args"] = {**own, **dict(out.get("method_args") or {})}
    return out


def _model_presets() -> dict:
    from .models import MODEL_PRESETS

    return MODEL_PRESETS


def _override_names(model: str) -> list[str]:
    """The model fields ``model_overrides`` may set: the network's own arguments, less those
    the config sets itself (data shape, classes, ``M``, ``level_embedding``)."""
    from .models import DiT, MLPVelocity

    preset = _model_presets()[model]
    cls = {"dit": DiT, "mlp": MLPVelocity}[preset["kind"]]
    derived = {"self", "dim", "image_size", "channels", "num_classes", "M", "level_embedding"}
    return sorted(p for p in inspect.signature(cls).parameters if p not in derived)


def _check_model_overrides(model: str, overrides: dict) -> None:
    if not overrides:
        return
    valid = _override_names(model)
    unknown = sorted(k for k in overrides if k not in valid)
    if unknown:
        _bad(
            "model_overrides",
            f"unknown field(s) {unknown} for model {model!r}; valid fields: {valid}",
        )
    preset = _model_presets()[model]
    for k, v in overrides.items():
        if isinstance(preset.get(k), int):
            if not matches(v, int) or v < 1:
                _bad("model_overrides", f"{k} must be a positive integer, got {v!r}")
        elif not matches(v, float) or not v > 0:
            _bad("model_overrides", f"{k} must be a positive number, got {v!r}")


def field_help() -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of :class:`TrainConfig`'s
    docstring (the command line's help text)."""
    doc = inspect.cleandoc(TrainConfig.__doc__ or "")
    body = doc.split("Attributes:", 1)[-1]
    out, name = {}, None
    for line in body.splitlines():
        head, sep, text = line.strip().partition(": ")
        if sep and line.startswith("    ") and not line.startswith("     ") and head.isidentifier():
            name = head
            out[name] = text
        elif name and line.strip():
            out[name] += " " + line.strip()
    return {k: v.replace("``", "") for k, v in out.items()}


def names() -> str:
    """The table of accepted names for ``data``, ``method`` and ``model``."""
    from .data import DATASETS
    from .objectives import OBJECTIVES

    lines = ["data:"]
    lines += [f"  {k:17s} {v}" for k, v in DATASETS.items()]
    lines += ["method:"] + [f"  {k}" for k in OBJECTIVES]
    lines += ["model:"] + [f"  {k:10s} {v}" for k, v in _model_presets().items()]
    return "\n".join(lines)


def trained_settings(saved: dict) -> dict:
    """What a run trained: its saved config (a record's or a checkpoint's) with every default
    filled in (``method_args: {}`` and the method's explicit defaults read the same) and
    without ``RUN_ONLY_FIELDS``. A config this version cannot read is compared as saved."""
    try:
        full = TrainConfig.from_saved(saved).to_dict()
    except (ConfigError, TypeError, ValueError):
        full = dict(saved)
    return {k: v for k, v in full.items() if k not in RUN_ONLY_FIELDS}


def changed_settings(saved: dict, base: dict) -> dict:
    """The method settings and step-size embedding in which the run of ``saved`` (a saved
    config) differs from the run of ``base``: ``{method_arg: value, ..., "level_embedding":
    value}``, holding only what differs (what an ablation's switch changed)."""
    cfg, plain = TrainConfig.from_saved(saved), TrainConfig.from_saved(base)
    out = {k: v for k, v in cfg.method_args.items() if v != plain.method_args.get(k)}
    if cfg.level_embedding != plain.level_embedding:
        out["level_embedding"] = cfg.level_embedding
    return out
