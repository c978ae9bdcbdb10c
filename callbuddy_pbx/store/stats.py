"""Recovery statistics: how many missed calls got a text, how many texts arrived, how many callers came back.

Every figure is counted by SQL from the stored rows, for a period [since, until) and optionally one business:

- calls, answered, missed (and missed by outcome): calls that *ended* in the period.
- texted, delivered, failed, clicked, latency: the missed-call texts of those calls (a cohort: a text sent or a
  link clicked just after `until` still counts for a call inside the period). `texted` leaves out cancelled
  texts (a person answered a later call, or the caller opted out, before it went); `failed` includes expired.
  `clicked` is the number of calls whose booking link was visited at least once.
- latency: hang-up to sent (messages.sent_at - calls.ended_at); the median (mean of the two middle values for an
  even count) and the 95th percentile (nearest rank: the ceil(0.95 n)-th smallest), for texts with a sent time
  (of missed calls, like the other text figures: the condition lets it read only the missed calls' index).
- opted_out: opt-outs (STOP) recorded in the period; replies: inbound texts received in the period.
- recovery (store/recovery.py), of the period's missed calls: replied, called_back: calls with that sign (the same
  definitions the marks use; `clicked` above is the booking-link step); recovered: calls marked recovered, by their
  first sign (`recovered_by`); time to recovery: the median of marked-recovered time minus hang-up.
- scope: one business (`business=`), several counted together (`businesses=`, e.g. a dashboard user with two), or
  every business, calls without one included (neither given).
- missed by hour of day / weekday, in a time zone: SQL counts missed calls per quarter hour of absolute time,
  and each quarter hour is placed on the local clock (every offset in use, DST or not, is a multiple of 15
  minutes, so a quarter hour never straddles two local hours).
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from callbuddy_pbx.store.db import CallStore, scope_param
from callbuddy_pbx.store.engine import Connection, Dialect, Query, per_dialect
from callbuddy_pbx.store.recovery import RECOVERED_BY, RECOVERY_WINDOW_S, SIGNS

WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_QUARTER_S = 900


# `:businesses IS NULL OR ...` (Dialect.in_scope) keeps one statement per figure; values are always bound.
def _period_calls(d: Dialect) -> str:
    return f"c.ended_at >= :since AND c.ended_at < :until AND {d.in_scope('c.business')}"


_CALL_COUNTS = per_dialect(
    lambda d: (
        f"""
    SELECT c.outcome, c.missed, COUNT(*) FROM calls AS c WHERE {_period_calls(d)} GROUP BY c.outcome, c.missed
"""  # noqa: S608 (a fixed condition, no data)
    )
)
_TEXT_COUNTS = per_dialect(
    lambda d: (
        f"""
    SELECT
        COUNT(*) FILTER (WHERE m.state != 'cancelled'),
        COUNT(*) FILTER (WHERE m.state = 'delivered'),
        COUNT(*) FILTER (WHERE m.state IN ('failed', 'expired'))
    FROM messages AS m JOIN calls AS c ON c.linkedid = m.linkedid
    WHERE m.kind = 'missed_call' AND c.missed = 1 AND {_period_calls(d)}
"""  # noqa: S608
    )
)
_CLICKED = per_dialect(
    lambda d: (
        f"""
    SELECT COUNT(*) FROM calls AS c
    WHERE c.missed = 1 AND {_period_calls(d)} AND EXISTS (
        SELECT 1 FROM link_tokens AS t JOIN link_clicks AS k ON k.token = t.token WHERE t.linkedid = c.linkedid
    )
"""  # noqa: S608
    )
)
_LATENCY = per_dialect(
    lambda d: (
        f"""
    WITH latency AS (
        SELECT m.sent_at - c.ended_at AS s FROM messages AS m JOIN calls AS c ON c.linkedid = m.linkedid
        WHERE m.kind = 'missed_call' AND c.missed = 1 AND m.sent_at IS NOT NULL AND {_period_calls(d)}
    ), ranked AS (
        SELECT s, ROW_NUMBER() OVER (ORDER BY s) AS rank, COUNT(*) OVER () AS n FROM latency
    )
    SELECT
        AVG(s) FILTER (WHERE rank IN ((n + 1) / 2, (n + 2) / 2)),
        MAX(s) FILTER (WHERE rank = (95 * n + 99) / 100),
        COUNT(*)
    FROM ranked
"""  # noqa: S608
    )
)
_OPTED_OUT = per_dialect(
    lambda d: (
        f"""
    SELECT COUNT(*) FROM opt_outs
    WHERE opted_out = 1 AND changed_at >= :since AND changed_at < :until AND {d.in_scope("business")}
"""  # noqa: S608
    )
)
_REPLIES = per_dialect(
    lambda d: (
        f"""
    SELECT COUNT(*) FROM inbound_messages
    WHERE received_at >= :since AND received_at < :until AND {d.in_scope("business")}
"""  # noqa: S608
    )
)
_SIGN_COUNTS = per_dialect(
    lambda d: (
        "WITH"  # noqa: S608 (fixed text; every value is bound)
        + SIGNS.format(which=_period_calls(d))
        + "SELECT how, COUNT(DISTINCT linkedid) FROM signs GROUP BY how"
    )
)
_RECOVERED = per_dialect(
    lambda d: (
        f"""
    SELECT r.how, COUNT(*) FROM recoveries AS r JOIN calls AS c ON c.linkedid = r.linkedid
    WHERE c.missed = 1 AND {_period_calls(d)} GROUP BY r.how
"""  # noqa: S608
    )
)
_TIME_TO_RECOVERY = per_dialect(
    lambda d: (
        f"""
    WITH waits AS (
        SELECT r.recovered_at - c.ended_at AS s FROM recoveries AS r JOIN calls AS c ON c.linkedid = r.linkedid
        WHERE c.missed = 1 AND {_period_calls(d)}
    ), ranked AS (
        SELECT s, ROW_NUMBER() OVER (ORDER BY s) AS rank, COUNT(*) OVER () AS n FROM waits
    )
    SELECT AVG(s) FILTER (WHERE rank IN ((n + 1) / 2, (n + 2) / 2)) FROM ranked
"""  # noqa: S608
    )
)
_MISSED_QUARTERS = per_dialect(
    lambda d: (
        f"""
    SELECT {d.whole(f"c.ended_at / {_QUARTER_S}")} AS quarter, COUNT(*) FROM calls AS c
    WHERE c.missed = 1 AND {_period_calls(d)} GROUP BY quarter
"""  # noqa: S608
    )
)


@dataclass(frozen=True, slots=True)
class RecoveryStats:
    since: float
    until: float
    business: str | None  # None: every business, or the several of `businesses`
    timezone: str
    calls: int
    answered: int
    missed: int
    missed_by_outcome: Mapping[str, int]
    texted: int
    delivered: int
    failed: int
    clicked: int  # missed calls whose booking link was visited at least once
    opted_out: int
    replies: int
    latency_samples: int
    latency_median_s: float | None
    latency_p95_s: float | None
    missed_by_hour: tuple[int, ...] = field(default=(0,) * 24)  # local hour 0..23
    missed_by_weekday: tuple[int, ...] = field(default=(0,) * 7)  # Monday first
    businesses: tuple[str, ...] | None = None  # the businesses counted (None: every business)
    replied: int = 0  # missed calls whose caller texted back words (no keyword) within the recovery window
    called_back: int = 0  # missed calls a desk of the business called back, answered, within the window
    recovered_by: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(RECOVERED_BY, 0))  # first sign
    recovery_median_s: float | None = None  # hang-up to the first sign, of the recovered calls

    @property
    def recovered(self) -> int:
        return sum(self.recovered_by.values())

    def funnel(self) -> list[tuple[str, int, float | None]]:
        """(step, count, percent of missed calls): missed -> texted -> delivered -> replied / clicked / called back
        -> recovered (the three middle signs are side by side: one call may show several)."""
        steps = (
            ("missed", self.missed),
            ("texted", self.texted),
            ("delivered", self.delivered),
            ("replied", self.replied),
            ("clicked", self.clicked),
            ("called_back", self.called_back),
            ("recovered", self.recovered),
        )
        return [(name, count, percent(count, self.missed)) for name, count in steps]

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "business": self.business,
            "businesses": None if self.businesses is None else list(self.businesses),
            "timezone": self.timezone,
            "calls": self.calls,
            "answered": self.answered,
            "missed": self.missed,
            "missed_by_outcome": dict(self.missed_by_outcome),
            "texted": self.texted,
            "delivered": self.delivered,
            "failed": self.failed,
            "clicked": self.clicked,
            "opted_out": self.opted_out,
            "replies": self.replies,
            "latency": {
                "samples": self.latency_samples,
                "median_s": self.latency_median_s,
                "p95_s": self.latency_p95_s,
            },
            "replied": self.replied,
            "called_back": self.called_back,
            "recovered": self.recovered,
            "recovered_by": dict(self.recovered_by),
            "recovery_median_s": self.recovery_median_s,
            "missed_by_hour": list(self.missed_by_hour),
            "missed_by_weekday": dict(zip(WEEKDAYS, self.missed_by_weekday, strict=True)),
            "funnel": {name: {"count": count, "percent": pct} for name, count, pct in self.funnel()},
        }


def percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


async def recovery_stats(
    store: CallStore,
    *,
    since: float,
    until: float,
    business: str | None = None,
    businesses: Sequence[str] | None = None,
    timezone: str = "UTC",
) -> RecoveryStats:
    """The recovery figures of calls that ended in [since, until) (see the module's notes for each figure).

    `business` or `businesses` (not both) limit the count; `timezone` (an IANA name) places the missed calls on the
    local clock; an unknown name is a ValueError."""
    if until < since:
        raise ValueError("until is before since")
    if business is not None and businesses is not None:
        raise ValueError("give business or businesses, not both")
    scope = (business,) if business is not None else None if businesses is None else tuple(businesses)
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    conn = store.connection
    params = {"since": since, "until": until, "businesses": scope_param(scope), "window": RECOVERY_WINDOW_S}

    answered = 0
    by_outcome: dict[str, int] = {}
    async with conn.execute(_CALL_COUNTS, params) as cursor:
        for outcome, missed, count in await cursor.fetchall():
            if missed:
                by_outcome[str(outcome)] = by_outcome.get(str(outcome), 0) + int(count)
            else:
                answered += int(count)

    async def one(sql: Query) -> tuple[Any, ...]:
        async with conn.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        assert row is not None  # aggregates always return a row
        return tuple(row)

    texted, delivered, failed = (int(value or 0) for value in await one(_TEXT_COUNTS))
    (clicked,) = await one(_CLICKED)
    median, p95, samples = await one(_LATENCY)
    (opted_out,) = await one(_OPTED_OUT)
    (replies,) = await one(_REPLIES)
    (recovery_median,) = await one(_TIME_TO_RECOVERY)
    signs = await _counts(conn, _SIGN_COUNTS, params)
    recovered_by = {how: 0 for how in RECOVERED_BY} | await _counts(conn, _RECOVERED, params)

    by_hour, by_weekday = [0] * 24, [0] * 7
    async with conn.execute(_MISSED_QUARTERS, params) as cursor:
        for quarter, count in await cursor.fetchall():
            local = datetime.datetime.fromtimestamp(int(quarter) * _QUARTER_S, tz=zone)
            by_hour[local.hour] += int(count)
            by_weekday[local.weekday()] += int(count)

    return RecoveryStats(
        since=since,
        until=until,
        business=business,
        timezone=timezone,
        calls=answered + sum(by_outcome.values()),
        answered=answered,
        missed=sum(by_outcome.values()),
        missed_by_outcome=dict(sorted(by_outcome.items())),
        texted=texted,
        delivered=delivered,
        failed=failed,
        clicked=int(clicked),
        opted_out=int(opted_out),
        replies=int(replies),
        latency_samples=int(samples),
        latency_median_s=None if median is None else float(median),
        latency_p95_s=None if p95 is None else float(p95),
        missed_by_hour=tuple(by_hour),
        missed_by_weekday=tuple(by_weekday),
        businesses=scope,
        replied=signs.get("replied", 0),
        called_back=signs.get("called_back", 0),
        recovered_by=recovered_by,
        recovery_median_s=None if recovery_median is None else float(recovery_median),
    )


async def _counts(conn: Connection, sql: Query, params: Mapping[str, Any]) -> dict[str, int]:
    async with conn.execute(sql, params) as cursor:
        return {str(key): int(count) for key, count in await cursor.fetchall()}
