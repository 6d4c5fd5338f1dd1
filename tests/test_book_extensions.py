"""The book's Sphinx extensions (book/_ext) on small docutils documents."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "book" / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


section_numbers = _load("section_numbers")
number_cells = _load("number_cells")


def parse(rst: str) -> nodes.document:
    document = new_document("<test>", get_default_settings(Parser))
    Parser().parse(rst, document)
    return document


CHAPTER = """
1. Flow matching in 2D
======================

Intro.

1. Data and noise
-----------------

3. Sampling: solve the ODE
--------------------------

Try it
~~~~~~

Summary
-------
"""


def titles(document) -> list[str]:
    return [s[0].astext() for s in document.findall(nodes.section)]


def test_sections_of_a_numbered_chapter_carry_the_chapter_number():
    document = parse(CHAPTER)
    ids_before = [s["ids"] for s in document.findall(nodes.section)]
    assert section_numbers.number_sections(document) == 2
    assert titles(document) == [
        "1. Flow matching in 2D",
        "1.1 Data and noise",
        "1.3 Sampling: solve the ODE",
        "Try it",
        "Summary",
    ]
    assert [s["ids"] for s in document.findall(nodes.section)] == ids_before  # links keep working


def test_pages_without_a_numbered_title_are_left_alone():
    document = parse(CHAPTER.replace("1. Flow matching in 2D", "Set-up").replace("=" * 22, "=" * 6))
    assert section_numbers.number_sections(document) == 0
    assert titles(document)[1] == "1. Data and noise"
    assert section_numbers.number_sections(parse("Just a paragraph.")) == 0


def test_numbering_twice_changes_nothing_more():
    document = parse(CHAPTER.replace("1. Flow", "7. Flow"))
    section_numbers.number_sections(document)
    assert section_numbers.number_sections(document) == 0
    assert titles(document)[1] == "7.1 Data and noise"


@pytest.mark.parametrize(
    "text",
    ["284", "284 ± 14.4", "3976 ± 2.74", "0.076", "-1.5e-3", "14.0x", "93.29 %", "12,284",
     "23.0 / 123.4 / 132.2", "6.9 / — / 20.5", "2.5 min", "+9%"],
)  # fmt: skip
def test_numbers_are_numbers(text):
    assert number_cells.is_number(text)


@pytest.mark.parametrize(
    "text", ["shortcut", "flow_matching (2 seeds)", "1/4 of the batch", "", "v1.2 model", "x"]
)
def test_words_are_not_numbers(text):
    assert not number_cells.is_number(text)


def test_number_cells_get_the_no_wrap_class():
    document = parse(
        """
========  ============  ===========
method    1 step        note
========  ============  ===========
shortcut  284 ± 14.4    one network
fm        3976 ± 2.74   baseline
========  ============  ===========
"""
    )
    assert number_cells.mark_number_cells(document) == 2
    marked = [e.astext() for e in document.findall(nodes.entry) if "sm-number" in e["classes"]]
    assert marked == ["284 ± 14.4", "3976 ± 2.74"]
    css = (ROOT / "book/_static/shortcut-mini.css").read_text()
    assert "td.sm-number" in css and "white-space: nowrap" in css
