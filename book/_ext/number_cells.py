"""Sphinx extension: table cells that hold a number never wrap.

A results cell such as ``284 ± 14.4`` or ``23.0 / 123.4 / 132.2`` broken over three lines in a
narrow column is hard to read. This transform gives every table cell whose text is a number (with
an optional ``±`` spread, a unit such as ``%`` or ``x``, or several numbers separated by ``/``)
the class ``sm-number``; ``book/_static/shortcut-mini.css`` keeps those cells on one line (a wide
table scrolls sideways instead). Cells of words are left to wrap.
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.transforms import SphinxTransform

CLASS = "sm-number"
_NUM = r"[-+−]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?"
_ONE = rf"{_NUM}(?:\s*(?:±|\+-|\+/-)\s*{_NUM})?\s*(?:%|x|×|s|min|h)?"
NUMBER = re.compile(rf"^\s*(?:{_ONE})(?:\s*/\s*(?:{_ONE}|—|-))*\s*$")


def is_number(text: str) -> bool:
    """True when ``text`` reads as a number (or numbers separated by ``/``), as in results cells."""
    return bool(NUMBER.match(text.replace("\u00a0", " ")))


def mark_number_cells(document: nodes.Node) -> int:
    """Add :data:`CLASS` to every table entry whose text is a number; return how many."""
    marked = 0
    for entry in document.findall(nodes.entry):
        if is_number(entry.astext()) and CLASS not in entry["classes"]:
            entry["classes"].append(CLASS)
            marked += 1
    return marked


class NumberCells(SphinxTransform):
    """Run :func:`mark_number_cells` on every document (prose tables and notebook outputs)."""

    default_priority = 700

    def apply(self, **kwargs) -> None:
        mark_number_cells(self.document)


def setup(app):
    app.add_transform(NumberCells)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
