"""Tables of untrusted text in a terminal: each cell escaped (`untrusted.printable`) and aligned by its width."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from callbuddy_pbx.untrusted import text_width


def format_table(rows: Sequence[tuple[str, ...]], right_aligned: Collection[int] = ()) -> str:
    """Rows of already-escaped cells (the first row is the header), columns padded to their widest cell."""
    widths = [max(text_width(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for column, cell in enumerate(row):
            pad = " " * (widths[column] - text_width(cell))
            cells.append(pad + cell if column in right_aligned else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
