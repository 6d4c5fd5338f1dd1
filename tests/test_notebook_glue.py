"""notebook.glue: numbers for the chapters' prose, formatted once, and a no-op without myst-nb."""

import sys

import myst_nb
import pytest

from shortcut_mini.notebook import GluedText, glue, glue_run_record


@pytest.fixture
def glued(monkeypatch):
    store = {}

    def fake_glue(name, value, display=True):
        store[name] = (repr(value), display)

    monkeypatch.setattr(myst_nb, "glue", fake_glue)
    return store


def test_formatted_values_display_without_quotes(glued):
    assert glue("swd", 0.12345, ".3f") is None  # a glue call ending a cell shows nothing
    glue("share", 0.625, ".0%")
    glue("words", "worse than", "s")
    assert glued == {
        "swd": ("0.123", False),
        "share": ("62%", False),
        "words": ("worse than", False),
    }
    assert repr(GluedText("1 min 5 s")) == "1 min 5 s"


def test_run_record_wall_time_in_minutes_and_seconds(glued):
    glue_run_record({"profile": "cpu", "wall_time_s": 381.4})
    assert glued["page_wall_time"][0] == "6 min 21 s"
    assert glued["page_profile"][0] == "cpu"
    glue_run_record({"profile": "ci", "wall_time_s": 42.6})
    assert glued["page_wall_time"][0] == "43 s"


def test_without_myst_nb_glue_does_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import fails, as in Colab
    assert glue("x", 1.0, ".2f") is None
