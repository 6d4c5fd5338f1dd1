"""The one writer of the package's Markdown tables (evaluation, ablation, reproduction summary,
demo, preset list): a header, a delimiter row that aligns each column, and the rows, each cell
already formatted by its table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["markdown_table"]


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """``head`` and ``rows`` as Markdown lines (no final newline).

    ``align`` holds one letter per column, ``l`` (left, the Markdown default: ``---``) or ``r``
    (right: ``---:``); a column past its end takes its last letter, and an empty ``align``
    leaves every column at the default.
    """
    letters = [align[min(i, len(align) - 1)] if align else "l" for i in range(len(head))]
    if set(letters) - {"l", "r"}:
        raise ValueError(f"align takes the letters l and r, got {align!r}")
    lines = ["| " + " | ".join(head) + " |"]
    lines.append("|" + "".join("---:|" if a == "r" else "---|" for a in letters))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
