"""Showing untrusted text in a terminal: escaped, cut to a width, aligned in tables."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Sequence

# Control, format (bidi overrides, zero-width), separator, surrogate, private and unassigned characters are shown
# escaped, so a caller name cannot move the cursor, recolour the terminal or reorder what is printed around it.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str, width: int | None = None) -> str:
    """Untrusted text made safe for a terminal (unsafe characters escaped) and cut to `width` columns."""
    safe = "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch
        for ch in text
    )
    if width is None or _width(safe) <= width:
        return safe
    cut, used = [], 0
    for ch in safe:
        if used + _char_width(ch) > width - 1:
            break
        cut.append(ch)
        used += _char_width(ch)
    return "".join(cut) + "…"


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _width(text: str) -> int:
    return sum(_char_width(ch) for ch in text)


def format_table(rows: Sequence[tuple[str, ...]], right_aligned: Collection[int] = ()) -> str:
    """Rows of already-escaped cells (the first row is the header), columns padded to their widest cell."""
    widths = [max(_width(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = []
        for column, cell in enumerate(row):
            pad = " " * (widths[column] - _width(cell))
            cells.append(pad + cell if column in right_aligned else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
