"""Publish a batch into the book: records and aggregates to ``book/results/PRESET/``, the results
page's table (``book/results/summary.md``) and the README's table, all generated, never typed.

Destinations are arguments, so that tests publish into a temporary folder.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..common import atomic_write_bytes
from .aggregate import aggregate, load_record_files, load_records, to_markdown, write_summary
from .record import read_record, record_label, record_stem, record_world_size

__all__ = ["README_END", "README_START", "publish", "render_book_summary", "update_readme"]

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
EMPTY_BOOK = (
    "*No runs recorded yet.* This file is generated from the run records in `book/results/`;\n"
    "the reproduction tooling overwrites it.\n"
)
EMPTY_README = (
    "No GPU reproduction numbers are committed yet: see the book's results page. Every number\n"
    "that appears here is generated from a committed run record (command, commit, device, wall time).\n"
)


def _preset_dirs(book_results: Path) -> list[Path]:
    return sorted(p for p in book_results.iterdir() if p.is_dir() and any(p.glob("*.json")))


def render_book_summary(book_results: str | Path, prefix: str = "results") -> str:
    """Markdown for ``book/results/summary.md``: one section per published preset.

    Image paths start with ``prefix`` (relative to ``book/results.md``, which includes the file).
    """
    book_results = Path(book_results)
    parts = []
    for folder in _preset_dirs(book_results):
        records, _ = load_records(folder)
        if not records:
            continue
        summary = aggregate(records, folder.name)
        rel = f"{prefix}/{folder.name}"
        parts.append(to_markdown(summary, heading_level=3, figure=f"{rel}/quality_vs_steps.png"))
        grids = [r for r in records if (folder / f"{record_stem(r)}.png").exists()]
        if grids:
            parts.append(
                "Samples (the same noise at each step budget, first seed of each method):\n"
            )
            seen = set()
            for r in grids:
                if record_label(r) in seen:
                    continue
                seen.add(record_label(r))
                parts.append(
                    f"![{record_label(r)}, seed {r['seed']}]({rel}/{record_stem(r)}.png)\n"
                )
        parts.append(
            f"Records: `book/results/{folder.name}/*.json` (schema "
            "`shortcut_mini/reproduce/results.schema.json`).\n"
        )
    return "\n".join(parts) if parts else EMPTY_BOOK


def render_readme_table(book_results: str | Path, page: str = "book/results.md") -> str:
    book_results = Path(book_results)
    parts = []
    for folder in _preset_dirs(book_results):
        records, _ = load_records(folder)
        if records:
            parts.append(to_markdown(aggregate(records, folder.name), heading_level=3))
    if not parts:
        return EMPTY_README
    return (
        "\n".join(parts) + f"\nGenerated from the committed records; details in [{page}]({page}).\n"
    )


def update_readme(readme: str | Path, body: str) -> None:
    """Replace the text between the README's results markers by ``body``."""
    readme = Path(readme)
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} lacks the markers {README_START} ... {README_END}")
    new = pattern.sub(lambda _: f"{README_START}\n{body.rstrip()}\n{README_END}", text)
    atomic_write_bytes(readme, new.encode())


def publish(
    out_dir: str | Path,
    preset: str,
    *,
    book_results: str | Path = "book/results",
    readme: str | Path | None = "README.md",
) -> Path:
    """Copy the valid records of ``preset`` in ``out_dir`` (with their sample grids) into
    ``book_results/PRESET/``, aggregate there, regenerate ``book_results/summary.md`` and the
    README's table. Returns the preset's folder.

    The batch replaces the published records of the same GPU count (an earlier batch of
    one-GPU runs, say) and keeps the others, so a multi-GPU batch sits beside a one-GPU one.
    Files are named by :func:`~shortcut_mini.reproduce.record_stem` (``shortcut_seed0``,
    ``shortcut_seed0_x2``).
    """
    out_dir, book_results = Path(out_dir), Path(book_results)
    records, problems = load_record_files(out_dir, preset)
    if not records:
        raise ValueError(f"no valid {preset!r} records in {out_dir} to publish ({problems})")
    dest = book_results / preset
    dest.mkdir(parents=True, exist_ok=True)
    world_sizes = {record_world_size(r) for r, _ in records}
    for old in dest.glob("*.json"):
        try:
            replaced = record_world_size(read_record(old)) in world_sizes
        except ValueError:  # not a valid record: stale, replace it
            replaced = True
        if replaced:
            old.unlink()
            old.with_suffix(".png").unlink(missing_ok=True)
    for rec, path in records:
        stem = record_stem(rec)
        shutil.copyfile(path, dest / f"{stem}.json")
        if rec.get("sample_grid") and (out_dir / rec["sample_grid"]).exists():
            shutil.copyfile(out_dir / rec["sample_grid"], dest / f"{stem}.png")
    write_summary(dest, preset)
    atomic_write_bytes(book_results / "summary.md", render_book_summary(book_results).encode())
    if readme is not None:
        update_readme(readme, render_readme_table(book_results))
    return dest
