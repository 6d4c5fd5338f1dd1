"""Sphinx extension: number a chapter's sections under the chapter's own number.

A chapter's title carries its number (``# 1. Flow matching in 2D``) and its sections are written
``## 1. Data and noise``, ``## 2. ...``. Read on their own, those restart at "1." inside chapter 1;
this transform rewrites each numbered section title to ``1.1 Data and noise`` (chapter.section),
so the numbers in the page and in its "on this page" contents say where a section is in the book.
Unnumbered sections (``Summary``, ``Try it``) and pages whose title has no number are left alone.
The section's anchor (its id) does not change, so existing links keep working.
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.transforms import SphinxTransform

CHAPTER = re.compile(r"^\s*(\d+)\.\s+\S")
SECTION = re.compile(r"^\s*(\d+)\.\s+")


def number_sections(document: nodes.Node) -> int:
    """Prefix each numbered top-level section of a numbered chapter; return how many changed."""
    top = next(iter(document.findall(nodes.section)), None)
    if top is None or not top.children or not isinstance(top[0], nodes.title):
        return 0
    match = CHAPTER.match(top[0].astext())
    if not match:
        return 0
    chapter = match.group(1)
    changed = 0
    for section in (c for c in top.children if isinstance(c, nodes.section)):
        title = section[0] if section.children and isinstance(section[0], nodes.title) else None
        if title is None or not title.children or not isinstance(title[0], nodes.Text):
            continue
        head = title[0]
        found = SECTION.match(str(head))
        if not found:
            continue
        text = f"{chapter}.{found.group(1)} {str(head)[found.end() :]}"
        title.replace(head, nodes.Text(text))
        changed += 1
    return changed


class ChapterSectionNumbers(SphinxTransform):
    """Run :func:`number_sections` on every document before the table of contents is read."""

    default_priority = 700

    def apply(self, **kwargs) -> None:
        number_sections(self.document)


def setup(app):
    app.add_transform(ChapterSectionNumbers)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
