"""Aggregate the records of a batch: mean +- std over training seeds per method and step budget.

:func:`aggregate` reads every valid ``*.json`` record of a folder; :func:`write_summary` writes
``summary.md`` (a Markdown table, methods x step budgets), ``summary.csv`` and
``quality_vs_steps.png``, and states whether the paper's pattern holds (:func:`pattern_check`).
A budget a method cannot sample is a blank cell. Where a batch has two-stage runs (a student
distilled from a teacher), the table has two more columns: each method's training images and its
teacher's (:func:`images_of`).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..common import atomic_write_bytes
from ..config import trained_settings
from ..tables import markdown_table
from . import preset_specs
from .record import read_record, record_label, record_world_size
from .schema import RecordError

__all__ = [
    "Summary",
    "aggregate",
    "load_record_files",
    "load_records",
    "pattern_check",
    "record_values",
    "write_summary",
]

# The paper's claim, as issue 5 states it: one step at least 5x closer than flow matching at one
# step, and 128 steps within 25% of flow matching at 128 steps.
ONE_STEP_RATIO = 5.0
FULL_STEPS_TOLERANCE = 0.25


def load_record_files(
    folder: str | Path, preset: str | None = None
) -> tuple[list[tuple[dict, Path]], list[str]]:
    """``(record, file)`` for each valid record under ``folder`` (not recursive), sorted by
    (method, GPUs, seed); and the problems of the files that are not valid records."""
    found, problems = [], []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            rec = read_record(path)
        except (RecordError, ValueError) as e:
            problems.append(f"{path.name}: {e}")
            continue
        if preset is None or rec["preset"] == preset:
            found.append((rec, path))
    found.sort(key=lambda rp: (rp[0]["method"], record_world_size(rp[0]), rp[0]["seed"]))
    return found, problems


def load_records(folder: str | Path, preset: str | None = None) -> tuple[list[dict], list[str]]:
    """Valid records under ``folder``, and problems
    (see :func:`~shortcut_mini.reproduce.load_record_files`)."""
    found, problems = load_record_files(folder, preset)
    return [rec for rec, _ in found], problems


@dataclass
class Summary:
    """Aggregated records of one preset: ``rows[label][steps] = (mean, std, n_seeds)``, where the
    label is the method, with the GPU count for runs trained on several
    (:func:`~shortcut_mini.reproduce.record_label`)."""

    preset: str
    records: list[dict]
    rows: dict[str, dict[int, tuple[float, float, int]]] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(self.rows)

    @property
    def steps(self) -> list[int]:
        return sorted({s for per in self.rows.values() for s in per})

    @property
    def metric(self) -> str:
        names = {e["distance"] for r in self.records for e in r["evaluation"]}
        return ", ".join(sorted(names))

    def value(self, method: str, steps: int) -> float:
        return self.rows.get(method, {}).get(steps, (math.nan, math.nan, 0))[0]

    @property
    def has_teachers(self) -> bool:
        """True if a record is of a two-stage run (it names a teacher)."""
        return any(r.get("teacher") for r in self.records)


def record_values(record: dict) -> dict[int, float]:
    """``{steps: distance}`` of one record's evaluation (one training seed, no averaging)."""
    return {e["steps"]: e["value"] for e in record["evaluation"]}


def record_images(record: dict) -> tuple[int, int | None]:
    """``(training images, teacher's training images or None)`` of a record (records older than
    the ``train_images`` field: ``train_steps x batch_size``)."""
    own = record.get("train_images", record["train_steps"] * record["config"]["batch_size"])
    return int(own), record.get("teacher_images")


def images_of(summary: Summary, label: str) -> tuple[str, str]:
    """The cells ``(training images, teacher images)`` of one row: the distinct values of its
    records (``"2.05M"``), blank for a row without a teacher."""

    def cell(values: set) -> str:
        return " / ".join(_count(v) for v in sorted(values) if v is not None)

    per = [record_images(r) for r in summary.records if record_label(r) == label]
    return cell({own for own, _ in per}), cell({t for _, t in per})


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1_000_000 else f"{n:,}"


def aggregate(records: list[dict], preset: str | None = None) -> Summary:
    """Group ``records`` by method (and GPU count, see
    :func:`~shortcut_mini.reproduce.record_label`) and step budget; mean and std (``ddof=1``) over
    seeds. One- and multi-GPU runs stay in separate rows."""
    if preset is None:
        presets = {r["preset"] for r in records}
        if len(presets) > 1:
            raise ValueError(f"records of several presets {sorted(presets)}: pass preset=")
        preset = presets.pop() if presets else "?"
    import numpy as np  # here, not at the top: 'shortcut-mini --help' imports this module

    records = [r for r in records if r["preset"] == preset]
    _check_one_config_per_row(records)
    values: dict[str, dict[int, list[float]]] = {}
    for rec in records:
        for e in rec["evaluation"]:
            values.setdefault(record_label(rec), {}).setdefault(e["steps"], []).append(e["value"])
    rows = {}
    for method in sorted(values, key=_row_order(preset, records)):
        rows[method] = {}
        for steps in sorted(values[method]):
            v = values[method][steps]
            std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
            rows[method][steps] = (float(np.mean(v)), std, len(v))
    return Summary(preset=preset, records=records, rows=rows)


def _check_one_config_per_row(records: list[dict]) -> None:
    """Raise if two records of one row (label) trained with different settings: their mean
    would describe neither run."""
    first: dict[str, tuple[dict, dict]] = {}
    for rec in records:
        label, settings = record_label(rec), trained_settings(rec["config"])
        ref, ref_settings = first.setdefault(label, (rec, settings))
        differ = sorted(
            f for f in set(settings) | set(ref_settings) if settings.get(f) != ref_settings.get(f)
        )
        if differ:
            shown = ", ".join(f"{f}={ref_settings.get(f)!r} / {settings.get(f)!r}" for f in differ)
            raise ValueError(
                f"the {label!r} records of seeds {ref['seed']} and {rec['seed']} trained with "
                f"different settings ({shown}): a row averages one configuration; move the "
                "records of the other setting out of the folder (or rerun them) before aggregating"
            )


def _row_order(preset: str, records: list[dict]):
    """Sort key of the rows: the preset's method order (alphabetical for methods it does not
    list), then the label (a method's multi-GPU rows after its one-GPU row)."""
    order = list(preset_specs.PRESETS.get(preset, {}).get("methods", ()))
    method_of = {record_label(r): r["method"] for r in records}

    def key(label: str) -> tuple:
        method = method_of[label]
        return (order.index(method) if method in order else len(order), method, label)

    return key


def _fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def pattern_check(summary: Summary) -> list[str]:
    """Sentences that state whether the paper's pattern holds (empty if a method is missing)."""
    fm1, sc1 = summary.value("flow_matching", 1), summary.value("shortcut", 1)
    steps = summary.steps
    top = max(steps) if steps else None
    if not all(math.isfinite(v) for v in (fm1, sc1)) or top is None:
        return []
    fm_top, sc_top = summary.value("flow_matching", top), summary.value("shortcut", top)
    out = []
    ratio = fm1 / sc1 if sc1 > 0 else math.inf
    verdict = "past" if ratio >= ONE_STEP_RATIO else "short of"
    out.append(
        f"At 1 step, shortcut's samples are {ratio:.1f}x closer to the data than flow "
        f"matching's, {verdict} the {ONE_STEP_RATIO:g}x the paper's pattern asks for."
    )
    if math.isfinite(fm_top) and math.isfinite(sc_top):
        rel = sc_top / fm_top - 1 if fm_top > 0 else math.inf
        allowed = f"the {FULL_STEPS_TOLERANCE:.0%} the paper's pattern allows"
        if rel <= 0:
            where = f"{-rel:.0%} closer to the data than flow matching, as the pattern allows"
        elif rel <= FULL_STEPS_TOLERANCE:
            where = f"{rel:.0%} further from the data than flow matching, within {allowed}"
        else:
            where = f"{rel:.0%} further from the data than flow matching, more than {allowed}"
        out.append(f"At {top} steps, shortcut is {where}.")
    return out


def _provenance(records: list[dict]) -> str:
    import numpy as np

    devices = sorted({f"{r['device']['name']} x{r['device']['count']}" for r in records})
    commits = sorted(
        {r["git"]["commit"][:10] + (" (dirty)" if r["git"]["dirty"] else "") for r in records}
    )
    train_min = np.mean([r["train_seconds"] for r in records]) / 60
    eval_min = np.mean([r["eval_seconds"] for r in records]) / 60
    steps = sorted({r["train_steps"] for r in records})
    commands = sorted({r["command"] for r in records if r["command"]})
    text = (
        f"{len(records)} runs; training steps {', '.join(f'{s:,}' for s in steps)}; "
        f"device {', '.join(devices)}; commit {', '.join(commits)}; mean wall time per run "
        f"{train_min:.1f} min training + {eval_min:.1f} min evaluation"
    )
    if commands:
        text += "; command " + ", ".join(f"`{c}`" for c in commands)
    return text + "."


def to_markdown(summary: Summary, heading_level: int = 0, figure: str | None = None) -> str:
    """The summary as Markdown: caption, table (methods x budgets, mean +- std), provenance."""
    recs = summary.records
    lines = []
    if heading_level:
        lines += ["#" * heading_level + f" `{summary.preset}`", ""]
    if not recs:
        return "\n".join(lines + ["*No runs recorded for this preset.*", ""])
    seeds = sorted({r["seed"] for r in recs})
    ns = sorted({e["n_samples"] for r in recs for e in r["evaluation"]})
    refs = sorted({e["reference"] for r in recs for e in r["evaluation"]})
    lines += [
        f"{summary.metric} (lower is better) of {', '.join(f'{n:,}' for n in ns)} samples per "
        f"run against {', '.join(refs)}; mean ± std over training seeds "
        f"{', '.join(map(str, seeds))} (EMA weights).",
        "",
    ]
    steps = summary.steps
    images = ["training images", "teacher images"] if summary.has_teachers else []
    budgets = [f"{s} step{'s' if s > 1 else ''}" for s in steps]
    rows = []
    for method, per in summary.rows.items():
        cells = list(images_of(summary, method)) if images else []
        for s in steps:
            if s not in per:  # a budget the method cannot sample
                cells.append("")
                continue
            mean, std, k = per[s]
            cells.append(_fmt(mean) + (f" ± {_fmt(std)}" if k > 1 else ""))
        n_seeds = max(k for _, _, k in per.values())
        rows.append([f"{method} ({n_seeds} seed{'s' if n_seeds > 1 else ''})", *cells])
    lines.append(markdown_table(["method", *images, *budgets], rows, align="lr"))
    lines += ["", _provenance(recs)]
    if images:
        lines += ["", _images_note(recs)]
    check = pattern_check(summary)
    if check:
        lines += ["", "Paper's pattern: " + " ".join(check)]
    if figure:
        lines += ["", f"![{summary.metric} versus step budget, {summary.preset}]({figure})"]
    return "\n".join(lines) + "\n"


def _images_note(records: list[dict]) -> str:
    """Which teacher each two-stage method distilled (its run in the batch)."""
    taught = sorted({(r["method"], r["teacher"]["run"]) for r in records if r.get("teacher")})
    pairs = ", ".join(f"{method} from `{run}`" for method, run in taught)
    return (
        "Training images: steps x batch of each run (a two-stage run's student); teacher images: "
        f"those of the flow-matching run it distils ({pairs})."
    )


def to_csv(summary: Summary) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["preset", "method", "steps", "metric", "mean", "std", "n_seeds", "n_samples"])
    for method, per in summary.rows.items():
        for s, (mean, std, k) in per.items():
            n = sorted(
                {
                    e["n_samples"]
                    for r in summary.records
                    if record_label(r) == method
                    for e in r["evaluation"]
                    if e["steps"] == s
                }
            )
            w.writerow(
                [
                    summary.preset,
                    method,
                    s,
                    summary.metric,
                    f"{mean:.6g}",
                    "" if not math.isfinite(std) else f"{std:.6g}",
                    k,
                    "/".join(map(str, n)),
                ]
            )
    return buf.getvalue()


def plot_summary(summary: Summary):
    """Quality versus step budget (log2 x axis), one line per method, error bars over seeds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for method, per in summary.rows.items():
        steps = sorted(per)
        mean = [per[s][0] for s in steps]
        std = [per[s][1] if math.isfinite(per[s][1]) else 0.0 for s in steps]
        ax.errorbar(steps, mean, yerr=std, marker="o", capsize=3, label=method)
    ax.set_xscale("log", base=2)
    ax.set_xticks(summary.steps, [str(s) for s in summary.steps])
    ax.set_yscale("log")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel(f"{summary.metric} (lower is better)")
    ax.set_title(f"{summary.preset}: quality versus step budget")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def write_summary(folder: str | Path, preset: str | None = None) -> Summary:
    """Aggregate the records in ``folder`` into ``summary.md``, ``summary.csv`` and
    ``quality_vs_steps.png`` there; return the :class:`Summary`."""
    folder = Path(folder)
    records, _ = load_records(folder, preset)
    summary = aggregate(records, preset)
    has_rows = bool(summary.rows)
    md = to_markdown(summary, figure="quality_vs_steps.png" if has_rows else None)
    atomic_write_bytes(folder / "summary.md", md.encode())
    atomic_write_bytes(folder / "summary.csv", to_csv(summary).encode())
    if has_rows:
        buf = io.BytesIO()
        plot_summary(summary).savefig(buf, format="png", dpi=120)
        atomic_write_bytes(folder / "quality_vs_steps.png", buf.getvalue())
    return summary
