"""shortcut-mini: train, sample and evaluate shortcut models (Frans et al., ICLR 2025).

Every TrainConfig field is a flag of 'train' (--batch-size 64), and --config FILE (YAML or JSON)
gives values that flags override. 'shortcut-mini COMMAND --help' lists a command's flags;
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

from .config import ConfigError, TrainConfig, field_help
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
    from .config import read_config_values

    base = read_config_values(args.config) if args.config else {}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in fields and v is not None}
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
    p.add_argument("--out", default=None, help=".pt file (tensor) or .png (grid / scatter)")


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
        "it. Flags override the values of --config FILE (YAML or JSON).",
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


def _writable_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"cannot write to {path}: its folder {path.parent} cannot be created "
            f"({e.strerror or e}); choose an --out in a folder you can write to"
        ) from None


def _save_samples(x, path: Path, kind: str) -> None:
    import torch

    _writable_parent(path)
    if path.suffix == ".pt":
        torch.save(x, path)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if kind == "image":
        from torchvision.utils import make_grid

        grid = make_grid((x + 1) / 2, nrow=int(len(x) ** 0.5)).permute(1, 2, 0).numpy()
        plt.imsave(path, grid.clip(0, 1))
    else:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(x[:, 0], x[:, 1], s=1)
        fig.savefig(path)
        plt.close(fig)


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
    from .api import load_run, sample

    n_steps = args.steps if isinstance(args.steps, int) else len(args.steps)
    out = Path(args.out or Path(args.run) / f"samples_{n_steps}steps.png")
    run = load_run(args.run)
    _writable_parent(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        x = sample(run, args.n, args.steps, seed=args.seed, cfg_scale=args.cfg_scale, y=args.label)
    for w in caught:  # one line each, without the warning machinery's file and line
        print(f"shortcut-mini sample: warning: {w.message}", file=sys.stderr)
    kind = run.data_info["kind"]
    if kind == "latent" and out.suffix != ".pt":  # a picture: decode with the VAE
        from .data.latents import decode_samples

        x, kind = decode_samples(run, x), "image"
    _save_samples(x, out, kind)
    print(f"wrote {out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from .api import load_run
    from .evaluate import evaluate
    from .plots import plot_quality_vs_steps, save_figure

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
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
    out = Path(args.out) if args.out else Path(run.out_dir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    table.meta["command"] = "shortcut-mini " + " ".join(args.argv)
    table.to_csv(out / "table.csv")
    table.to_json(out / "table.json")
    md = table.to_markdown(out / "table.md")
    label = f"{run.config.method} ({run.config.model})"
    save_figure(plot_quality_vs_steps({label: table}), out / "quality_vs_steps.png")
    print(md)
    print(f"wrote {out}/table.csv, table.json, table.md, quality_vs_steps.png")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

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
    """The package's documented errors that a user can cause (bad settings, a missing data set,
    a checkpoint that cannot be read, a run of another config in ``out_dir``, a diverging run):
    the command line prints their message, without a traceback."""
    from .data import errors as data_errors
    from .metrics.inception import FeatureWeightsUnavailableError
    from .train.checkpoint import CheckpointError
    from .train.lock import RunLockedError
    from .train.metrics_log import MetricsLogError
    from .train.trainer import NonFiniteLossError, RunExistsError

    return (
        ConfigError,
        ValueError,
        CheckpointError,
        RunExistsError,
        RunLockedError,
        MetricsLogError,
        NonFiniteLossError,
        data_errors.DatasetError,
        FeatureWeightsUnavailableError,
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit status 0 on success, 2 on a user error (its message on stderr,
    no traceback), 130 when ``train`` is interrupted."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"shortcut-mini {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if not isinstance(e, user_errors()):
            raise
        print(f"shortcut-mini {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
