"""pattern_check: the paper's pattern (shortcut far ahead of flow matching at one step, close to it
at the most steps) stated in a reader's words, with both numbers and the verdict computed."""

from types import SimpleNamespace

from shortcut_mini.reproduce import pattern_check


def table(fm, sc):  # {steps: distance} per method, as Summary.value reads them
    rows = {"flow_matching": fm, "shortcut": sc}
    return SimpleNamespace(value=lambda m, b: rows[m][b], steps=sorted(fm))


def test_a_pattern_that_holds_at_both_ends():
    one, many = pattern_check(table({1: 400.0, 128: 40.0}, {1: 40.0, 128: 43.6}))
    assert one == (
        "At 1 step, shortcut's samples are 10.0x closer to the data than flow matching's, "
        "past the 5x the paper's pattern asks for."
    )
    assert many == (
        "At 128 steps, shortcut is 9% further from the data than flow matching, within the "
        "25% the paper's pattern allows."
    )


def test_a_pattern_that_fails_at_both_ends_and_a_shortcut_ahead_at_many_steps():
    one, many = pattern_check(table({1: 100.0, 64: 40.0}, {1: 50.0, 64: 52.0}))
    assert "2.0x closer" in one and "short of the 5x" in one
    assert many.startswith("At 64 steps, shortcut is 30% further") and "more than the 25%" in many
    _, ahead = pattern_check(table({1: 100.0, 128: 40.0}, {1: 10.0, 128: 38.0}))
    assert "5% closer to the data than flow matching" in ahead


def test_no_sentence_without_both_methods():
    assert pattern_check(table({1: float("nan"), 128: 1.0}, {1: 1.0, 128: 1.0})) == []
