"""shortcut-mini: train, sample and evaluate shortcut models (Frans et al., ICLR 2025).

Every TrainConfig field is a flag of 'train' (--batch-size 64), a setting of the method's own
is --method-arg NAME=VALUE, and --config FILE (YAML or JSON) gives values that flags override. 'shortcut-mini COMMAND --help' lists a command's flags;
'shortcut-mini names' lists the accepted datasets, methods and models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path

from .config import TrainConfig, field_help
from .levels import DEFAULT_BUDGETS

__all__ = ["main", "build_parser", "config_from_args"]

# Nothing heavy (torch, the data sets) is imported at module level: '--help' answers at once.


def _default_of(f: dataclasses.Field):
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML or JSON file of TrainConfig fields; flags override it")
    helps = field_help()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "method_args":
            _add_method_arg_flag(p, helps[f.name])
            continue
        flag = "--" + f.name.replace("_", "-")
        default = _default_of(f)
        shown = _shown(default)
        text = f"{helps.get(f.name, '')} (default: {shown})".replace("%", "%%").strip()
        if f.type in ("bool", bool):
            p.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:  # read as the field's type by TrainConfig itself (config_from_args)
            p.add_argument(flag, dest=f.name, default=None, metavar=_metavar(f), help=text)


def _add_method_arg_flag(p: argparse.ArgumentParser, meaning: str) -> None:
    """``--method-arg NAME=VALUE`` (repeatable): one setting of ``TrainConfig.method_args``;
    the help lists every method's settings (from ``shortcut_mini.method_settings``, no torch)."""
    from .method_settings import settings_help
    from .reproduce.arguments import key_value

    text = (
        f"{meaning} One setting per flag, e.g. --method-arg meanflow_ratio=0.5. Each method's "
        f"settings (default): {settings_help(_settings_classes())}"
    )
    p.add_argument(
        "--method-arg",
        dest="method_arg",
        action="append",
        type=key_value,
        default=None,
        metavar="NAME=VALUE",
        help=text.replace("%", "%%"),
    )
    for cls in _settings_classes():  # the flags these settings had: an error naming the new one
        for name in cls.names():
            p.add_argument(
                "--" + name.replace("_", "-"), dest=f"moved:{name}", help=argparse.SUPPRESS
            )


def _settings_classes() -> list[type]:
    """The settings dataclass of every method defined so far (built-ins, and plug-ins once
    their module is imported)."""
    from .method_settings import MethodSettings

    found, todo = [], [MethodSettings]
    while todo:
        cls = todo.pop(0)
        if cls.method and cls not in found:
            found.append(cls)
        todo += cls.__subclasses__()
    return found


def _shown(value) -> str:
    """A default as one would type it on the command line."""
    if value is None or isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _metavar(f: dataclasses.Field) -> str:
    kind = str(f.type).replace(" | None", "")
    names = {"int": "INT", "float": "FLOAT", "dict": "JSON", "str": "TEXT"}
    return names.get(kind, "B1,B2" if kind.startswith("tuple") else "VALUE")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config of ``train``'s flags over ``--config FILE``: one parser for both, the
    dataclass's field types (:meth:`TrainConfig.from_strings`)."""
    from .config import read_config_values, refuse_moved_settings

    moved = {k.removeprefix("moved:"): v for k, v in vars(args).items() if k.startswith("moved:")}
    refuse_moved_settings({k: v for k, v in moved.items() if v is not None})
    base = read_config_values(args.config) if args.config else {}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.method_arg:  # over the config file's method_args, one setting each
        base["method_args"] = {**base.get("method_args", {}), **dict(args.method_arg)}
    return TrainConfig.from_strings(flags, base=base)


def _budget(text: str) -> int | list[float]:
    """``--steps``: an int budget, or step sizes ``1/2,1/4,1/4`` (or ``0.5,0.25,0.25``)."""
    from fractions import Fraction

    try:
        if "," not in text and "/" not in text and "." not in text:
            return int(text)
        return [float(Fraction(part.strip())) for part in text.split(",") if part.strip()]
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"expected a number of steps (e.g. 4) or step sizes (e.g. 1/2,1/4,1/4), got {text!r}"
        ) from None


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="sample from a trained run")
    p.add_argument("run", help="run folder written by 'train'")
    p.add_argument("--n", type=int, default=64, help="number of samples (default: 64)")
    p.add_argument(
        "--steps",
        type=_budget,
        default=1,
        help="sampling steps, 1..M, or a schedule of step sizes such as 1/2,1/4,1/4 (default: 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the noise (default: 0)")
    p.add_argument(
        "--cfg-scale", type=float, default=1.0, help="classifier-free guidance weight (default: 1)"
    )
    p.add_argument(
        "--label", type=int, default=None, help="class label 0..num_classes-1 for every sample"
    )
    p.add_argument(
        "--out",
        default=None,
        help=".pt file (the samples as a tensor) or a picture, .png, .jpg, .pdf or .svg (grid "
        "/ scatter) (default: RUN/samples_STEPSsteps.png)",
    )


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="quality per step budget: table.csv/json/md and quality_vs_steps.png"
    )
    p.add_argument("run", help="run folder written by 'train'")
    p.add_argument("--steps", type=int, nargs="+", default=list(DEFAULT_BUDGETS))
    p.add_argument("--n", type=int, default=None, help="samples per seed and budget")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", default=None, help="output folder (default RUN/eval)")
    p.add_argument("--features", default="auto", help="auto, classifier, inception, identity")
    p.add_argument("--cfg-scale", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    p.add_argument("--precision-recall", action="store_true", help="also precision and recall")
    p.add_argument("--cache-dir", default=None, help="cache reference feature statistics here")
    p.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shortcut-mini",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "train",
        help="train a model (resumes in an existing --out-dir)",
        description="Train a model; in an --out-dir that holds a run of the same config, resume "
        "it (--overwrite: start afresh, whatever run it holds). Flags override the values of "
        "--config FILE (YAML or JSON).",
    )
    _add_config_flags(p)
    _add_sample(sub)
    p = sub.add_parser("demo", help="2D demo: flow matching vs shortcut, figure + table")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--data", default="checkerboard")
    p.add_argument("--steps", type=int, default=3000)
    _add_evaluate(sub)
    sub.add_parser("names", help="list accepted names for data, method and model")
    from .reproduce.arguments import add_arguments as add_reproduce_arguments

    p = sub.add_parser("reproduce", help="papermill batch reproduction of a preset")
    add_reproduce_arguments(p)
    return parser


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
"""What ``sample --out`` may end in besides ``.pt`` (the samples as a tensor)."""


def _check_sample_out(out: Path) -> None:
    """Refuse an ``--out`` that ``sample`` could not write, before it samples."""
    from .output_paths import OutputPathError, check_output_file
    from .train.run_dir import refuse_run_entry

    check_output_file(out, "--out")
    if out.suffix.lower() not in (".pt", *PICTURE_SUFFIXES):
        raise OutputPathError(
            f"--out {out}: give a file ending in .pt (the samples as a tensor) or in "
            f"{', '.join(PICTURE_SUFFIXES)} (a picture); got "
            + (f"the suffix {out.suffix!r}" if out.suffix else "no suffix")
        )
    refuse_run_entry(out, "--out")


def _picture_bytes(x, kind: str, fmt: str) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    if kind == "image":
        from torchvision.utils import make_grid

        grid = make_grid((x + 1) / 2, nrow=int(len(x) ** 0.5)).permute(1, 2, 0).numpy()
        plt.imsave(buffer, grid.clip(0, 1), format=fmt)
    else:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(x[:, 0], x[:, 1], s=1)
        fig.savefig(buffer, format=fmt)
        plt.close(fig)
    return buffer.getvalue()


def _save_samples(x, path: Path, kind: str) -> None:
    """The samples as a tensor (``.pt``) or a picture, written atomically."""
    import torch

    from .common import atomic_write, atomic_write_bytes

    if path.suffix.lower() == ".pt":
        atomic_write(path, lambda f: torch.save(x, f))
    else:
        fmt = path.suffix.lower().lstrip(".").replace("jpeg", "jpg")
        atomic_write_bytes(path, _picture_bytes(x, kind, fmt))


def _train(args: argparse.Namespace) -> int:
    from .train import train

    cfg = config_from_args(args)
    try:
        run = train(cfg)
    except KeyboardInterrupt as e:
        from .train.interrupt import TrainingInterrupted

        if isinstance(e, TrainingInterrupted):  # the trainer says what it saved and how to resume
            where = str(e)
        elif cfg.out_dir:
            where = (
                f"resume it by rerunning the same command (its checkpoints are in {cfg.out_dir})"
            )
        else:
            where = "it had no --out-dir, so nothing was saved"
        print(f"shortcut-mini train: interrupted; {where}", file=sys.stderr)
        return 130
    last = run.history[-1] if run.history else {}
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
        report = {
            "out_dir": run.out_dir,
            "step": run.step,
            "loss": last.get("loss"),
            "train_seconds": run.train_seconds,
        }
        print(json.dumps(report))
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .api import check_memory, load_run, sample
    from .train.run_dir import record_outputs

    n_steps = args.steps if isinstance(args.steps, int) else len(args.steps)
    out = Path(args.out or Path(args.run) / f"samples_{n_steps}steps.png")
    _check_sample_out(out)
    run = load_run(args.run)
    kind = run.data_info["kind"]
    if kind == "image" and out.suffix.lower() != ".pt":  # the grid: 3 channels, 2-pixel borders
        _, h, w = run.data_info["shape"]
        check_memory(args.n, (3, h + 2, w + 2), copies=4, what="--n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        x = sample(run, args.n, args.steps, seed=args.seed, cfg_scale=args.cfg_scale, y=args.label)
    for w in caught:  # one line each, without the warning machinery's file and line
        print(f"shortcut-mini sample: warning: {w.message}", file=sys.stderr)
    if kind == "latent" and out.suffix.lower() != ".pt":  # a picture: decode with the VAE
        from .data.latents import decode_samples

        x, kind = decode_samples(run, x), "image"
    _save_samples(x, out, kind)
    record_outputs([out])
    print(f"wrote {out}")
    return 0


EVAL_FILES = ("table.csv", "table.json", "table.md", "quality_vs_steps.png")
"""What ``evaluate`` writes into its ``--out`` folder."""


def _check_evaluate_out(out: Path, cache_dir: str | None) -> None:
    """Refuse an ``--out`` (or ``--cache-dir``) that ``evaluate`` could not write, before it
    evaluates."""
    from .output_paths import check_output_file, check_output_folder
    from .train.run_dir import refuse_run_entry

    check_output_folder(out, "--out")
    refuse_run_entry(out, "--out")
    for name in EVAL_FILES:
        check_output_file(out / name, "--out")
    if cache_dir is not None:
        check_output_folder(cache_dir, "--cache-dir")
        refuse_run_entry(cache_dir, "--cache-dir")


def _evaluate(args: argparse.Namespace) -> int:
    from .api import load_run
    from .common import atomic_write_bytes
    from .evaluate import evaluate
    from .plots import plot_quality_vs_steps, save_figure
    from .train.devices import resolve_device
    from .train.run_dir import record_outputs

    device = resolve_device(args.device, setting="--device")
    out = Path(args.out) if args.out else Path(args.run) / "eval"
    _check_evaluate_out(out, args.cache_dir)
    run = load_run(args.run, device=device)
    table = evaluate(
        run,
        steps=args.steps,
        n=args.n,
        seeds=args.seeds,
        features=args.features,
        batch_size=args.batch_size,
        cfg_scale=args.cfg_scale,
        progress=not args.no_progress,
        precision_recall=args.precision_recall,
        cache_dir=args.cache_dir,
    )
    table.meta["command"] = "shortcut-mini " + " ".join(args.argv)
    csv, js, md = table.to_csv(), table.to_json(), table.to_markdown()
    label = f"{run.config.method} ({run.config.model})"
    for name, text in zip(EVAL_FILES, (csv, js, md)):
        atomic_write_bytes(out / name, text.encode())
    save_figure(plot_quality_vs_steps({label: table}), out / EVAL_FILES[3])
    record_outputs(out / name for name in EVAL_FILES)
    print(md)
    print(f"wrote {out}/{', '.join(EVAL_FILES)}")
    return 0


DEMO_FILES = ("table.md", "table.json", "samples.png")
"""What ``demo`` writes into its ``--out`` folder (beside a run folder per method)."""


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .output_paths import check_output_file, check_output_folder
    from .train.run_dir import refuse_run_entry

    check_output_folder(args.out, "--out")
    refuse_run_entry(args.out, "--out")
    for name in DEMO_FILES:
        check_output_file(Path(args.out) / name, "--out")
        check_output_file(Path(args.out) / name, "--out")
    run_demo(args.out, data=args.data, steps=args.steps)
    return 0


def _names(args: argparse.Namespace) -> int:
    from .config import names

    print(names())
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from .reproduce.runner import main_from_args

    return main_from_args(args, args.argv)


COMMANDS = {
    "train": _train,
    "sample": _sample,
    "evaluate": _evaluate,
    "demo": _demo,
    "names": _names,
    "reproduce": _reproduce,
}


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors that a user can cause (bad settings, a missing data set, a checkpoint that
    cannot be read, a run of another config in ``out_dir``, a diverging run): every
    :class:`~shortcut_mini.errors.UserError`, and a ``ValueError`` (a bad argument), whose
    message the command line prints without a traceback."""
    from .errors import UserError

    return (UserError, ValueError)


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit status 0 on success, 2 on a user error (its message on stderr,
    one line, no traceback), 1 on a file-system error (a full disk, a file it may not read:
    one line naming the path and the fix), 130 when a command is interrupted."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"shortcut-mini {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        from .output_paths import describe_os_error

        print(f"shortcut-mini {args.command}: error: {describe_os_error(e)}", file=sys.stderr)
        return 1
    except Exception as e:
        if not isinstance(e, user_errors()):
            raise
        message = " ".join(str(e).split())  # one line
        print(f"shortcut-mini {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
