"""Text from outside (caller names, SMS bodies, command-line values) made safe to show: escaped and cut to a width."""

from __future__ import annotations

import unicodedata

# Control, format (bidi overrides, zero-width), separator, surrogate, private and unassigned characters are shown
# escaped, so a caller name cannot move the cursor, recolour the terminal or reorder what is printed around it.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str, width: int | None = None) -> str:
    """Untrusted text made safe for a terminal (unsafe characters escaped) and cut to `width` columns."""
    safe = "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch
        for ch in text
    )
    if width is None or text_width(safe) <= width:
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


def text_width(text: str) -> int:
    return sum(_char_width(ch) for ch in text)
