"""Points in time as people write them on a command line or in a query: an age (`6h`) or an ISO date/time."""

from __future__ import annotations

import re
import time
from datetime import datetime

from callbuddy_pbx.untrusted import printable

_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """Unix time from an age (`30m`, `6h`, `2d`, `1w`) or an ISO date/time (local time when it has no offset)."""
    value = text.strip()
    age = _AGE.fullmatch(value)
    if age:
        return (time.time() if now is None else now) - float(age.group(1)) * _UNIT_SECONDS[age.group(2)]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        shown = printable(value, 40)
        raise ValueError(
            f"--since: {shown!r} is not a date/time or an age "
            "(expected e.g. 2024-05-01, 2024-05-01T09:30, or 30m, 6h, 2d, 1w)"
        ) from None
    return moment.timestamp()  # a naive datetime is taken as local time
