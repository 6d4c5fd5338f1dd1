"""The one Markdown table writer of the package's result tables."""

import pytest

from shortcut_mini.tables import markdown_table


def test_a_markdown_table_aligns_each_column_and_keeps_the_cells():
    text = markdown_table(["method", "1 step", "2 steps"], [["a", "0.5", "0.25"]], align="lr")
    assert text.splitlines() == [
        "| method | 1 step | 2 steps |",
        "|---|---:|---:|",  # the last letter holds for the columns after it
        "| a | 0.5 | 0.25 |",
    ]
    assert markdown_table(["x", "y"], []).splitlines()[1] == "|---|---|"  # default: left
    assert markdown_table(["x"], [["1"]], align="r").splitlines()[1] == "|---:|"
    with pytest.raises(ValueError, match="align takes the letters l and r"):
        markdown_table(["x"], [], align="c")
