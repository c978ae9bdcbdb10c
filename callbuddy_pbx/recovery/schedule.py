"""Business hours, holidays and quiet hours, in the business's own time zone (DST included). Pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from datetime import time as time_of_day
from zoneinfo import ZoneInfo

from callbuddy_pbx.config import Business, QuietHours


def _zone(tz: tzinfo | str) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("expected an aware datetime (e.g. datetime.fromtimestamp(t, UTC)), got a naive one")
    return when


def is_open(business: Business, when_utc: datetime) -> bool:
    """Whether `when` falls in the business's opening hours: not on a holiday (a whole local day), and inside one
    of that weekday's intervals (open <= t < close). Without `hours` a business counts as always open."""
    local = _aware(when_utc).astimezone(ZoneInfo(business.timezone))
    if local.date() in business.holidays:
        return False
    if business.hours is None:
        return True
    now = local.time()
    return any(start <= now < end for start, end in business.hours.days[local.weekday()])


def in_quiet_hours(quiet_hours: QuietHours, local: time_of_day) -> bool:
    """Whether a wall-clock time is inside the window [start, end), which may cross midnight (21:00-08:00)."""
    start, end = quiet_hours.start, quiet_hours.end
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def next_allowed(quiet_hours: QuietHours | None, tz: tzinfo | str, when_utc: datetime) -> datetime:
    """The first moment at or after `when` outside the quiet window, in UTC.

    `when` itself when it is allowed; else the window's end on the right local day. When a DST change skips the
    end's wall-clock time (a spring-forward gap), the first moment after the gap.
    """
    when = _aware(when_utc).astimezone(UTC)
    if quiet_hours is None:
        return when
    zone = _zone(tz)
    local = when.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if not in_quiet_hours(quiet_hours, wall.time()):
        return when
    end_day = wall.date()
    if quiet_hours.start > quiet_hours.end and wall.time() >= quiet_hours.start:
        end_day += timedelta(days=1)  # in the evening part of a window that ends tomorrow morning
    target = datetime.combine(end_day, quiet_hours.end)
    return max(when, _first_instant_at_or_after(target, zone, when))


def _first_instant_at_or_after(wall: datetime, zone: tzinfo, after: datetime) -> datetime:
    """The earliest UTC instant, not before `after`, whose local wall-clock time is `wall` or later.

    A repeated wall time (the hour a DST change sets back) is taken at its first occurrence unless that is already
    past; a skipped one (the hour it sets forward) gives the end of the gap.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:  # the wall time exists (once, or twice)
        return first if first >= after else second
    # A gap: fold=0 reads `wall` with the offset before the change (an instant after it), fold=1 with the offset
    # after it (an instant before it). Local time only moves forward between the two: bisect to the change.
    low, high = int(min(first, second).timestamp()), int(max(first, second).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
