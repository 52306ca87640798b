"""Markdown tables: the one helper every report, summary and experiment table uses (no JAX)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A GitHub-flavoured Markdown table.

    `align` has one letter a column, "l" (left) or "r" (right); by default the first column is
    left-aligned and the others (numbers, mostly) right-aligned. A "|" inside a cell is escaped.
    """
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header):
        raise ValueError(f"{len(header)} columns but {len(align)} alignments ({align!r})")
    sep = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = [_row(header), sep]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(header)} columns")
        lines.append(_row(row))
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
