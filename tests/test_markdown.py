"""The one Markdown-table helper: layout, alignment, escaping, and its checks."""

from __future__ import annotations

import pytest

from cnnjax.markdown import table


def test_table_layout_and_default_alignment():
    text = table(("net", "params", "acc"), [("a", "1,000", 0.5), ("b|c", 2, "-")])
    assert text.splitlines() == [
        "| net | params | acc |",
        "|---|---:|---:|",
        "| a | 1,000 | 0.5 |",
        "| b\\|c | 2 | - |",  # a pipe inside a cell cannot end it
    ]


def test_table_explicit_alignment_and_shape_errors():
    assert table(("a", "b"), [], "ll").splitlines()[1] == "|---|---|"
    with pytest.raises(ValueError, match="alignments"):
        table(("a", "b"), [], "l")
    with pytest.raises(ValueError, match="a row of 1 cells"):
        table(("a", "b"), [("x",)])
