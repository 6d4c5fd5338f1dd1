"""The flags of ``shortcut-mini reproduce`` (light: building the command line imports nothing heavy).

``--set KEY=VALUE`` and ``--eval-set KEY=VALUE`` keep their values as text: they are read as the
types of :class:`~shortcut_mini.TrainConfig`'s fields (``--set``) and of the sweep's settings
(``--eval-set``) by the same parsers that read config files and ``train``'s flags, and every run's
settings are checked before the first run starts.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "key_value"]


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as ``(key, value)``, the value kept as text (dashes in the key read as ``_``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. steps=500), got {text!r}")
    return key.strip().replace("-", "_"), value.strip()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", nargs="?", help="preset name (see --list)")
    p.add_argument("--methods", nargs="+", default=None, help="default: the preset's")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the preset's")
    p.add_argument("--out", default=None, help="batch folder (default runs/reproduce/PRESET)")
    p.add_argument("--dry-run", action="store_true", help="show the plan, run nothing")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="TrainConfig field for every run, e.g. steps=500 or betas=[0.9,0.99]",
    )
    p.add_argument(
        "--eval-set",
        dest="eval_overrides",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="evaluation setting: n, steps, seeds or metric (e.g. n=1000, steps=1,4,128)",
    )
    p.add_argument(
        "--nproc",
        type=_positive_int,
        default=1,
        metavar="N",
        help="training processes (GPUs) per run; N > 1 trains under torchrun (default 1)",
    )
    p.add_argument("--engine", choices=("auto", "papermill", "python"), default="auto")
    p.add_argument("--kernel", default=None, help="Jupyter kernel for papermill")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over runs")
    p.add_argument(
        "--publish",
        action="store_true",
        help="copy records + aggregate into BOOK_RESULTS/PRESET, regenerate the results page "
        "table and the README table",
    )
    p.add_argument("--book-results", default="book/results", help="publish destination")
    p.add_argument("--readme", default="README.md", help="README to update on --publish")
    p.add_argument("--list", action="store_true", help="print the preset table and exit")
