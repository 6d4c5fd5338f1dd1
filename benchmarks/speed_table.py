"""Markdown tables of ``speed.json`` (written by ``benchmarks/speed.py``), for the book.

    python benchmarks/speed_table.py [benchmarks/results/speed.json]

``render(doc)`` returns the whole text; ``train_table``, ``sampling_table`` and ``check_table``
one table each. Nothing here needs torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["render", "train_table", "sampling_table", "check_table", "load"]


def load(path: str | Path = "benchmarks/results/speed.json") -> dict:
    return json.loads(Path(path).read_text())


def _num(x, fmt: str = ",.0f") -> str:
    return "–" if x is None else format(x, fmt)


def _how(e: dict) -> str:
    mode = e.get("compile_mode") or "default"
    how = "eager" if not e["compiled"] else "compiled" if mode == "default" else f"compiled, {mode}"
    return f"{how} ({e['variant']})" if e.get("variant") else how


def train_table(doc: dict) -> str:
    """One row per (model, method, implementation, compilation): img/s, TFLOP/s, % of peak."""
    peak = doc.get("bf16_peak_tflops")
    lines = [
        "| model | shape | method | code | step | img/s | TFLOP/s | % of bf16 peak | peak memory (GB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in doc.get("train", []):
        share = 100 * e["tflops"] / peak if peak and e.get("tflops") is not None else None
        shape = "x".join(map(str, e["shape"]))
        lines.append(
            f"| {e['model']} | {shape} | {e['method']} | {e['impl']} | {_how(e)} | "
            f"{_num(e['img_per_s'])} | {_num(e['tflops'], '.1f')} | {_num(share, '.0f')} | "
            f"{_num(e['peak_mem_gb'], '.1f')} |"
        )
    return "\n".join(lines)


def sampling_table(doc: dict) -> str:
    """Sampling seconds at each budget against the forward-only time of the same images."""
    lines = [
        "| model | steps | samples | path | seconds | forward-only seconds | ratio to steps x forward |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in doc.get("sampling", []):
        fwd = e["forward_only_seconds"]
        ratio = e["seconds"] / (e["steps"] * fwd) if fwd else None
        lines.append(
            f"| {e['model']} | {e['steps']} | {e['n']:,} | {e.get('path', 'optimised')} | "
            f"{e['seconds']:.3f} | {fwd:.4f} | "
            f"{_num(ratio, '.2f')} |"
        )
    return "\n".join(lines)


def check_table(doc: dict) -> str:
    """The optimised step against the plain eager step, one step from the same weights."""
    lines = [
        "| model | method | step | loss rel. error | update cosine | update rel. error | passed |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in doc.get("checks", []):
        lines.append(
            f"| {e['model']} | {e['method']} | {_how(e)} | {e['loss_rel_err']:.1e} | "
            f"{e['update_cosine']:.4f} | {e['update_rel_err']:.1e} | "
            f"{'yes' if e['passed'] else 'NO'} |"
        )
    return "\n".join(lines)


def render(doc: dict) -> str:
    head = (
        f"Device: {doc.get('device')}, torch {doc.get('torch')}, commit "
        f"{str(doc.get('commit'))[:10]}; bf16 matmul peak {_num(doc.get('bf16_peak_tflops'), '.0f')} "
        "TFLOP/s."
    )
    parts = [head, "", "Training step", "", train_table(doc), ""]
    parts += ["Sampling", "", sampling_table(doc), ""]
    if doc.get("checks"):
        parts += ["Optimised step against the plain eager step", "", check_table(doc), ""]
    if doc.get("skipped"):
        parts += ["Skipped: " + "; ".join(f"{s['what']} ({s['why']})" for s in doc["skipped"])]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(load(*sys.argv[1:2])))
