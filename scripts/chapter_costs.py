"""The setup page's tables of what each chapter costs, written from the committed records.

    python scripts/chapter_costs.py [--check]

Reads ``book/results/chapter_flops.json`` (``scripts/flop_count.py``: FLOPs and operators per
chapter and profile, counted on the CPU) and ``book/results/chapter_times_gpu.json``
(``scripts/time_chapters.py``: wall times measured on a GPU) and writes
``book/results/chapter_costs.md``, which ``book/setup.md`` includes; nothing in it is typed by
hand. ``--check`` writes nothing and exits 1 when the file differs from what the records give.
Nothing here needs torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shortcut_mini.common import atomic_write_bytes  # noqa: E402

RESULTS = ROOT / "book" / "results"
FLOPS = RESULTS / "chapter_flops.json"
TIMES = RESULTS / "chapter_times_gpu.json"
# the cpu profile's times, on the machine that builds the book
CPU_TIMES = RESULTS / "chapter_times_cpu.json"
OUT = RESULTS / "chapter_costs.md"
SHOWN = ("small_gpu", "gpu")  # the GPU profiles, small first


def _link(chapter: str) -> str:
    return f"{{doc}}`../notebooks/{chapter}`"


def _seconds(s: float) -> str:
    minutes, seconds = divmod(round(s), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def share(work: dict, profile: str, flops: dict) -> float:
    """The share of its profile's budget a chapter's work takes: ``small_gpu`` the T4 budget
    (the larger of the FLOP and operator shares), ``gpu`` the H200 budget (modelled seconds)."""
    if profile == flops.get("gpu_budget", {}).get("profile"):
        return work["modelled_h200_s"] / flops["gpu_budget"]["chapter_seconds"]
    budget = flops["budget"]
    return max(work["flops"] / budget["flops"], work["ops"] / budget["ops"])


def work_table(flops: dict) -> str:
    lines = [
        "| chapter | profile | training runs | training steps | TFLOP | million operators "
        "| share of its budget |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for chapter, by_profile in sorted(flops["chapters"].items()):
        for profile in SHOWN:
            w = by_profile.get(profile)
            if w is None:
                continue
            lines.append(
                f"| {_link(chapter)} | `{profile}` | {w['train_runs']:,} | {w['train_steps']:,} | "
                f"{w['flops'] / 1e12:,.1f} | {w['ops'] / 1e6:,.1f} | "
                f"{share(w, profile, flops):.0%} |"
            )
    return "\n".join(lines)


def budget_text(flops: dict) -> str:
    b = flops["budget"]
    rate = b["t4_fp16_peak_tflops"] * b["assumed_utilisation"]
    return (
        f"The `small_gpu` budget of a chapter is {b['chapter_seconds'] / 60:.0f} minutes on a T4. "
        "In FLOPs: "
        f"the T4's published fp16 tensor-core peak of {b['t4_fp16_peak_tflops']:.0f} TFLOP/s, of "
        f"which {b['assumed_utilisation']:.0%} is assumed reached by matrices this small, gives "
        f"{rate:.1f} TFLOP/s and {b['flops'] / 1e15:.1f} PFLOP per chapter. In operators (each "
        f"one or more kernel launches, which is what bounds networks this small): "
        f"{b['assumed_seconds_per_op'] * 1e6:.0f} µs each on Colab's two-core host is assumed, "
        f"{b['ops'] / 1e6:.0f} million per chapter; what was measured: "
        f"{b['anchor']}. Its *share of the budget* is the larger of the two shares. These are "
        "assumptions, not measurements: no T4 was available to this project, and no T4 time "
        f"is given here. {gpu_budget_text(flops)}Counted at commit `{flops['commit'][:7]}` with "
        f"`{flops['command'].strip()}` on the CPU ({flops['wall_time_s']:.0f} s)."
        + "".join(
            f" {_chapter_names(m['chapters'])} counted later, at commit `{m['commit'][:7]}` with "
            f"`{m['command'].strip()}` ({m['wall_time_s']:.0f} s)."
            for m in flops.get("merged", [])
        )
        + (
            f" The budgets and modelled times rewritten from the measured rates at commit "
            f"`{flops['refit']['commit'][:7]}` with `{flops['refit']['command'].strip()}`."
            if "refit" in flops
            else ""
        )
    )


def _chapter_names(chapters: list[str]) -> str:
    names = [f"chapter {int(c[:2])}" for c in chapters]
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return text[0].upper() + text[1:]


def gpu_budget_text(flops: dict) -> str:
    g = flops.get("gpu_budget")
    if g is None:
        return ""
    return (
        f"The `gpu` budget is the aim of {g['chapter_seconds'] / 60:.0f} minutes on an H200, in "
        "operators: at these sizes a step costs about the same at any batch, so the large GPU's "
        "sizes train a larger batch, not more steps. A chapter's time there is modelled as "
        f"{g['fixed_seconds']:.1f} s (chapter 4, which trains nothing) plus its operators times "
        "its own seconds per operator, measured with the chapter run alone on an H200, so that "
        "the model gives the measured time for the sizes measured and a changed profile's time "
        f"at its chapter's rate. The rates: {g['source']}. "
    )


def _time_cell(entry: dict | None, upper_bound: bool) -> str:
    if entry is None:
        return "not measured"
    if entry.get("error"):
        return f"failed ({entry['error'][:60]})" if entry.get("wall_time_s") else "not finished"
    text = _seconds(entry["wall_time_s"])
    return f"at most {text}" if upper_bound else text


def times_table(
    times: dict, chapters: list[str], shown: tuple[str, ...] = SHOWN, path: Path = TIMES
) -> tuple[str, str]:
    """The table of measured times (the profiles ``shown``) and the sentence that says how they
    were measured (``path``: the record's file)."""
    if "runs" in times:  # scripts/time_chapters.py: one chapter at a time
        entries = {(r["profile"], r["chapter"]): r for r in times["runs"]}
        profiles = [p for p in shown if any(k[0] == p for k in entries)]
        upper = False
        machines = f"{times['device']}s" if times.get("parts") else f"one {times['device']}"
        note = (
            f"Measured on {machines}, torch {times['torch']}, {times['concurrency']}, "
            f"with `{times['command']}`; each row's commit and date are in "
            f"`{path.relative_to(ROOT)}`."
        )
        if times.get("parts"):
            note += f" {times['parts']}"
    else:  # the earlier record: every chapter at once on one GPU
        entries = {("gpu", c["chapter"]): c for c in times["chapters"]}
        profiles, upper = ["gpu"], True
        note = (
            f"Measured on one {times['device']} (torch {times['torch']}) at commit "
            f"`{times['commit']}` ({times['date']}) with the `gpu` profile as it was then, before "
            "the `small_gpu` profile existed: all the chapters of that commit ran at the same "
            "time, each in its own kernel on the one GPU, so each time is an upper bound for "
            "the chapter run alone (*at most*), and a chapter that had not finished when the run "
            "was stopped is marked so."
        )
    head = "| chapter | " + " | ".join(f"`{p}` on one {times['device']}" for p in profiles) + " |"
    lines = [head, "|---|" + "---:|" * len(profiles)]
    for chapter in chapters:
        cells = [_time_cell(entries.get((p, chapter)), upper) for p in profiles]
        lines.append(f"| {_link(chapter)} | " + " | ".join(cells) + " |")
    return "\n".join(lines), note


def slowest(times: dict, flops: dict) -> str:
    """A sentence on each GPU profile's slowest measured chapter (against the `gpu` aim)."""
    g = flops.get("gpu_budget")
    runs = [r for r in times.get("runs", []) if not r.get("error")]
    parts = []
    for profile in SHOWN:
        own = [r for r in runs if r["profile"] == profile]
        if not own:
            continue
        worst = max(own, key=lambda r: r["wall_time_s"])
        text = (
            f"at `{profile}` the slowest chapter, {int(worst['chapter'][:2])}, took "
            f"{_seconds(worst['wall_time_s'])}"
        )
        if g is not None and profile == g["profile"]:
            verdict = "within" if worst["wall_time_s"] <= g["aim_seconds"] else "over"
            text += f", {verdict} the aim of {g['aim_seconds'] / 60:.0f} minutes"
        else:
            text += " on the H200 (not on the T4 it is sized for)"
        parts.append(text)
    if not parts:
        return ""
    text = "; ".join(parts)
    return f" {text[0].upper()}{text[1:]}."


def render(flops: dict, times: dict, cpu_times: dict | None = None) -> str:
    chapters = sorted(flops["chapters"])
    table, note = times_table(times, chapters)
    note += slowest(times, flops)
    cpu_part = []
    if cpu_times:
        cpu_table, cpu_note = times_table(cpu_times, chapters, ("cpu",), CPU_TIMES)
        cpu_part = ["**Wall time measured on a CPU** (the book's default profile):", "", cpu_table]
        cpu_part += ["", cpu_note, ""]
    return "\n".join(
        [
            "<!-- Written by scripts/chapter_costs.py from book/results/chapter_flops.json and "
            "book/results/chapter_times_*.json; do not edit by hand. -->",
            "",
            "**Work per chapter** (training and sampling, counted on the CPU):",
            "",
            work_table(flops),
            "",
            budget_text(flops),
            "",
            "**Wall time measured on a GPU:**",
            "",
            table,
            "",
            note,
            "",
            *cpu_part,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 on a difference")
    args = p.parse_args(argv)
    cpu_times = json.loads(CPU_TIMES.read_text()) if CPU_TIMES.exists() else None
    text = render(json.loads(FLOPS.read_text()), json.loads(TIMES.read_text()), cpu_times)
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print(f"{OUT.relative_to(ROOT)}: {'up to date' if same else 'differs from the records'}")
        return 0 if same else 1
    atomic_write_bytes(OUT, text.encode())
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
