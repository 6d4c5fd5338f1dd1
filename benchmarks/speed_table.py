"""Markdown tables of ``speed.json`` (written by ``benchmarks/speed.py``), for the book.

    python benchmarks/speed_table.py [benchmarks/results/speed.json]

``render(doc)`` returns the whole text; ``train_table``, ``sampling_table``, ``check_table`` and
``meanflow_table`` one table each. Nothing here needs torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = [
    "render",
    "train_table",
    "sampling_table",
    "check_table",
    "meanflow_table",
    "meanflow_ratios",
    "load",
]

MEANFLOW_TARGET = 1.6
"""The goal for MeanFlow's step: at most this many flow-matching steps of the same model."""


def load(path: str | Path = "benchmarks/results/speed.json") -> dict:
    return json.loads(Path(path).read_text())


def _num(x, fmt: str = ",.0f") -> str:
    return "–" if x is None else format(x, fmt)


def _how(e: dict) -> str:
    mode = e.get("compile_mode") or "default"
    how = "eager" if not e["compiled"] else "compiled" if mode == "default" else f"compiled, {mode}"
    if e.get("attention"):
        how += f", {e['attention']} attention"
    return f"{how} ({e['variant']})" if e.get("variant") else how


def _row_order(rows: list[dict]):
    """Rows grouped by model (in the order first measured), then the project before the
    reference, the "before" variants last, eager before compiled before CUDA graphs: a run
    resumed with ``--append`` measures them out of that order."""
    models = list(dict.fromkeys(e["model"] for e in rows))
    modes = {None: 0, "default": 1}

    def key(e):
        variant = e.get("variant") is not None
        mode = modes.get(e.get("compile_mode"), 2)
        return models.index(e["model"]), variant, e["impl"] != "project", mode

    return key


def train_table(doc: dict) -> str:
    """One row per (model, method, implementation, compilation): img/s, TFLOP/s, % of peak."""
    peak = doc.get("bf16_peak_tflops")
    lines = [
        "| model | shape | method | code | step | img/s | TFLOP/s | % of bf16 peak | peak memory (GB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in sorted(doc.get("train", []), key=_row_order(doc.get("train", []))):
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
        "| model | method | step | against | loss rel. error | update cosine | update rel. error "
        "| passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in doc.get("checks", []):
        against = e.get("against", "plain eager step")
        lines.append(
            f"| {e['model']} | {e['method']} | {_how(e)} | {against} | {e['loss_rel_err']:.1e} | "
            f"{e['update_cosine']:.4f} | {e['update_rel_err']:.1e} | "
            f"{'yes' if e['passed'] else 'NO'} |"
        )
    return "\n".join(lines)


def meanflow_ratios(doc: dict) -> list[dict]:
    """Each MeanFlow row of the project's step against the flow-matching row of the same model
    and compilation (no variant): ``{"model", "how", "ratio"}``, ratio = seconds per MeanFlow step
    over seconds per flow-matching step (the batch is the same). A row's ``part`` names the
    machine of a resumed record that measured it (none: the first); ``how`` says where the two
    rows come from different machines."""
    train = [e for e in doc.get("train", []) if e.get("impl") == "project"]

    def same(e):
        return (e["model"], e["compiled"], e.get("compile_mode"))

    flow = {same(e): e for e in train if e["method"] == "flow_matching" and not e.get("variant")}
    out = []
    for e in train:
        if e["method"] != "meanflow" or same(e) not in flow:
            continue
        how, machines = _how(e), (flow[same(e)].get("part"), e.get("part"))
        if machines[0] != machines[1]:  # a record resumed on another machine (``parts``)
            first = (doc.get("parts") or [{}])[0].get("machine", "the first")
            fm, mf = (m or first for m in machines)
            how += f" (MeanFlow timed on machine {mf}, flow matching on {fm})"
        out.append(
            {
                "model": e["model"],
                "how": how,
                "ratio": flow[same(e)]["img_per_s"] / e["img_per_s"],
            }
        )
    return out


def meanflow_table(doc: dict) -> str:
    """MeanFlow's step in flow-matching steps of the same model and compilation."""
    lines = [
        "| model | MeanFlow step | cost in flow-matching steps | at most 1.6 |",
        "|---|---|---|---|",
    ]
    for r in meanflow_ratios(doc):
        ok = "yes" if r["ratio"] <= MEANFLOW_TARGET else "no"
        lines.append(f"| {r['model']} | {r['how']} | {r['ratio']:.2f} | {ok} |")
    return "\n".join(lines)


def render(doc: dict) -> str:
    commit = "" if doc.get("parts") else f", commit {str(doc.get('commit'))[:10]}"
    head = (
        f"Device: {doc.get('device')}, torch {doc.get('torch')}{commit}; bf16 matmul peak "
        f"{_num(doc.get('bf16_peak_tflops'), '.0f')} TFLOP/s."
    )
    if doc.get("parts"):  # a run resumed (--append) on further machines of the same kind
        head += " Measured in parts, one machine each, consecutively: " + "; ".join(
            f"{p['rows']} (commit {p['commit'][:7]})" for p in doc["parts"]
        )
        head += "."
    parts = [head, "", "Training step", "", train_table(doc), ""]
    if meanflow_ratios(doc):
        parts += ["MeanFlow's step against flow matching's", "", meanflow_table(doc), ""]
    if doc.get("sampling"):  # a run with --skip sampling has none
        parts += ["Sampling", "", sampling_table(doc), ""]
    if doc.get("checks"):
        parts += ["Optimised step against a plain eager step", "", check_table(doc), ""]
    if doc.get("errors"):
        failed = "; ".join(f"{e['what']} ({e['error'][:120]})" for e in doc["errors"])
        parts += ["Failed: " + failed, ""]
    if doc.get("not_measured"):
        parts += ["Not measured: " + "; ".join(doc["not_measured"]), ""]
    if doc.get("skipped"):
        parts += ["Skipped: " + "; ".join(f"{s['what']} ({s['why']})" for s in doc["skipped"])]
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(load(*sys.argv[1:2])))
