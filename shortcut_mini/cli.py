"""Command line: ``shortcut-mini train | sample | evaluate | demo | names``.

Every ``TrainConfig`` field is a flag (``--batch-size 64``); ``--config FILE`` (YAML/JSON) gives
defaults that flags override.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from .config import ConfigError, TrainConfig
from .levels import DEFAULT_BUDGETS

__all__ = ["main", "build_parser"]


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML or JSON file with TrainConfig fields")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        elif f.name in ("betas", "model_overrides"):
            p.add_argument(
                flag,
                dest=f.name,
                type=json.loads,
                default=None,
                help="JSON, e.g. '[0.9, 0.999]' or '{\"depth\": 2}'",
            )
        else:
            p.add_argument(flag, dest=f.name, type=_parse_scalar, default=None)


def _parse_scalar(s: str):
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return None if s.lower() == "none" else s


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    base = TrainConfig.from_file(args.config).to_dict() if args.config else {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None}
    for key in (
        "lr",
        "weight_decay",
        "ema_decay",
        "bootstrap_fraction",
        "class_dropout",
        "clip",
        "guidance_scale",
    ):
        if isinstance(flags.get(key), int):
            flags[key] = float(flags[key])
    for key in (
        "data",
        "model",
        "method",
        "device",
        "out_dir",
        "data_root",
        "precision",
        "latent_vae",
    ):
        if key in flags:
            flags[key] = str(flags[key])
    return TrainConfig.from_dict({**base, **flags})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shortcut-mini", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a model (resumes in an existing --out-dir)")
    _add_config_flags(p)
    p = sub.add_parser("sample", help="sample from a trained run")
    p.add_argument("run", help="run folder written by 'train'")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg-scale", type=float, default=1.0)
    p.add_argument("--label", type=int, default=None, help="class label for every sample")
    p.add_argument("--out", default=None, help=".pt file (tensor) or .png (grid / scatter)")
    p = sub.add_parser("demo", help="2D demo: flow matching vs shortcut, figure + table")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--data", default="checkerboard")
    p.add_argument("--steps", type=int, default=3000)
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
    sub.add_parser("names", help="list accepted names for data, method and model")
    from .reproduce.runner import add_arguments as add_reproduce_arguments

    p = sub.add_parser("reproduce", help="papermill batch reproduction of a preset")
    add_reproduce_arguments(p)
    return parser


def _save_samples(x, path: Path, kind: str) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
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


def _evaluate(args: argparse.Namespace) -> None:
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        if args.command == "train":
            from .train import train

            cfg = config_from_args(args)
            run = train(cfg)
            last = run.history[-1] if run.history else {}
            if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 reports
                print(
                    json.dumps(
                        {
                            "out_dir": run.out_dir,
                            "step": run.step,
                            "loss": last.get("loss"),
                            "train_seconds": run.train_seconds,
                        }
                    )
                )
        elif args.command == "sample":
            from .api import load_run, sample

            run = load_run(args.run)
            x = sample(
                run, args.n, args.steps, seed=args.seed, cfg_scale=args.cfg_scale, y=args.label
            )
            out = Path(args.out or Path(args.run) / f"samples_{args.steps}steps.png")
            kind = run.data_info["kind"]
            if kind == "latent" and out.suffix != ".pt":  # a picture: decode with the VAE
                from .data.latents import decode_samples

                x, kind = decode_samples(run, x), "image"
            _save_samples(x, out, kind)
            print(f"wrote {out}")
        elif args.command == "demo":
            from .demo import run_demo

            run_demo(args.out, data=args.data, steps=args.steps)
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "reproduce":
            from .reproduce.runner import main_from_args

            return main_from_args(args, argv)
        elif args.command == "names":
            from .config import names

            print(names())
    except (ConfigError, ValueError, RuntimeError) as e:
        print(f"shortcut-mini {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
