"""notebook.glue: numbers for the chapters' prose, formatted once, shown as formatted.

myst-nb's ``{glue:text}`` role passes the glued value's ``text/plain`` form through
``myst_nb.core.variables.format_plain_text`` (``ast.literal_eval`` first); the tests run that
same function, so they see what the page shows.
"""

import sys

import myst_nb
import pytest
from myst_nb.core.variables import format_plain_text

from shortcut_mini.notebook import GluedText, glue, glue_run_record, plural, word_list


@pytest.fixture
def glued(monkeypatch):
    """What ``{glue:text}`name``` shows for each glued name, and whether the cell displays it."""
    store = {}

    def fake_glue(name, value, display=True):
        store[name] = (format_plain_text(repr(value), ""), display)

    monkeypatch.setattr(myst_nb, "glue", fake_glue)
    return store


def test_formatted_values_show_exactly_as_formatted(glued):
    assert glue("swd", 0.12345, ".3f") is None  # a glue call ending a cell shows nothing
    glue("share", 0.625, ".0%")
    glue("words", "worse than", "s")
    assert glued == {
        "swd": ("0.123", False),
        "share": ("62%", False),
        "words": ("worse than", False),
    }


@pytest.mark.parametrize(
    "value, fmt, shown",
    [
        (204_800_000, ",d", "204,800,000"),  # not the tuple (204, 800, 0)
        (2_560, ",d", "2,560"),
        (0.0, ".2f", "0.00"),  # not 0.0
        (1.0, ".2f", "1.00"),
        ("2, 4, 8 and 128", "s", "2, 4, 8 and 128"),
        ("2, 4, 8, 128", None, "2, 4, 8, 128"),  # not the tuple (2, 4, 8, 128)
        ("[1, 2]", "s", "[1, 2]"),
        ("None", "s", "None"),
        ("it's 'quoted'", "s", "it's 'quoted'"),
        (7, None, "7"),
    ],
)
def test_glued_text_survives_myst_nb_literal_eval(glued, value, fmt, shown):
    glue("x", value, fmt)
    assert glued["x"][0] == shown


def test_glued_text_repr_is_a_string_literal():
    assert repr(GluedText("1 min 5 s")) == "'1 min 5 s'"
    assert str(GluedText("1 min 5 s")) == "1 min 5 s"


def test_run_record_wall_time_in_minutes_and_seconds(glued):
    glue_run_record({"profile": "cpu", "wall_time_s": 381.4})
    assert glued["page_wall_time"][0] == "6 min 21 s"
    assert glued["page_profile"][0] == "cpu"
    glue_run_record({"profile": "ci", "wall_time_s": 42.6})
    assert glued["page_wall_time"][0] == "43 s"


def test_without_myst_nb_glue_does_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import fails, as in Colab
    assert glue("x", 1.0, ".2f") is None


def test_plural_and_word_list_read_as_prose():
    assert plural(1, "step") == "1 step"
    assert plural(4, "step") == "4 steps"
    assert plural(8000, "step") == "8,000 steps"
    assert plural(2, "query", "queries") == "2 queries"
    assert word_list([]) == "none"
    assert word_list([1]) == "1"
    assert word_list([1, 2]) == "1 and 2"
    assert word_list([2, 4, 8, 128]) == "2, 4, 8 and 128"
    assert word_list(["a", "b", "c"], "or") == "a, b or c"
