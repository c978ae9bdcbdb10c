"""The dashboard's reads: the call feed (filters, keyset pages), rows changed since a cursor, a call's link visits,
and the system page's counts.

Every value is bound as a parameter; the SQL text is fixed. `scope` is always the viewer's (None = every business,
calls without one included; a list never matches a call without a business), and the chosen `business` narrows it
further, so a filter can never widen what a viewer sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from callbuddy_pbx.store.db import CallStore, scope_param
from callbuddy_pbx.store.engine import Dialect, Row, per_dialect
from callbuddy_pbx.store.messages import MESSAGE_STATES

# Text states a feed can be filtered by; "none" = no missed-call text for the call.
NO_TEXT = "none"
TEXT_FILTERS: tuple[str, ...] = (NO_TEXT, *MESSAGE_STATES)
MAX_PAGE = 1000

# A call's missed-call text: the newest one (there is one per call today, keyed by the linkedid; newest-first
# keeps a row per call should a follow-up text ever be added). Clicks: visits to the links of the call's texts.
_ROW = """
    SELECT c.linkedid, c.business, c.did, c.caller, c.caller_name, c.outcome, c.missed, c.started_at, c.ring_at,
           c.answered_at, c.ended_at, c.recorded_at, c.node,
           m.state AS text_state, m.created_at AS text_created_at, m.sent_at AS text_sent_at,
           m.done_at AS text_done_at, m.error AS text_error, m.updated_at AS text_updated_at,
           (SELECT COUNT(*) FROM link_tokens AS t JOIN link_clicks AS k ON k.token = t.token
            WHERE t.linkedid = c.linkedid) AS clicks
    FROM calls AS c
    LEFT JOIN messages AS m ON m.id = (
        SELECT id FROM messages WHERE linkedid = c.linkedid AND kind = 'missed_call' ORDER BY id DESC LIMIT 1
    )
"""


def _filters(d: Dialect) -> str:
    return f"""
    (:missed_only = 0 OR c.missed = 1)
    AND {d.in_scope("c.business")}
    AND (CAST(:business AS TEXT) IS NULL OR c.business = :business)
    AND (CAST(:outcome AS TEXT) IS NULL OR c.outcome = :outcome)
    AND (CAST(:since AS DOUBLE PRECISION) IS NULL OR c.ended_at >= :since)
    AND (CAST(:until AS DOUBLE PRECISION) IS NULL OR c.ended_at < :until)
    AND (CAST(:digits AS TEXT) IS NULL OR {d.position("c.caller", ":digits")} > 0)
    AND (CAST(:text AS TEXT) IS NULL OR (:text = 'none' AND m.id IS NULL) OR m.state = :text)
"""


# Keyset pagination: strictly older than the last row of the previous page, in (ended_at, linkedid) order.
_PAGE = per_dialect(
    lambda d: (
        f"""{_ROW}
    WHERE {_filters(d)}
      AND (CAST(:before_end AS DOUBLE PRECISION) IS NULL OR c.ended_at < :before_end
           OR (c.ended_at = :before_end AND c.linkedid < :before_id))
    ORDER BY c.ended_at DESC, c.linkedid DESC
    LIMIT :limit
"""
    )
)
# Calls recorded, or whose text changed, in a keyset range of (change time, linkedid): after `from`, up to `to`
# (inclusive; none: no end). Both time columns are indexed since migration 4; the outer query pages exactly.
_CHANGED = per_dialect(
    lambda d: (
        f"""
    WITH changed (linkedid) AS (
        SELECT linkedid FROM calls WHERE recorded_at >= :from_at
        UNION
        SELECT linkedid FROM messages WHERE updated_at >= :from_at AND linkedid IS NOT NULL
    ), rows AS (
        SELECT *, {d.greatest("recorded_at", "COALESCE(text_updated_at, 0)")} AS changed_at FROM (
            {_ROW}
            WHERE c.linkedid IN (SELECT linkedid FROM changed) AND {_filters(d)}
        ) AS feed
    )
    SELECT * FROM rows
    WHERE (changed_at > :from_at OR (changed_at = :from_at AND linkedid > :from_id))
      AND (CAST(:to_at AS DOUBLE PRECISION) IS NULL OR changed_at < :to_at
           OR (changed_at = :to_at AND linkedid <= :to_id))
    ORDER BY changed_at, linkedid
    LIMIT :limit
"""  # noqa: S608 (fixed text; every value is bound)
    )
)
_CLICKS = """
    SELECT k.clicked_at, k.user_agent, t.url FROM link_clicks AS k JOIN link_tokens AS t ON t.token = k.token
    WHERE t.linkedid = ? ORDER BY k.clicked_at, k.id
"""
_BACKLOG = "SELECT COUNT(*) FROM messages WHERE state IN ('queued', 'sending')"
_FAILED_SINCE = "SELECT COUNT(*) FROM messages WHERE updated_at >= ? AND state IN ('failed', 'expired')"
_SET_ASIDE = (
    "SELECT COUNT(*), (SELECT error FROM set_aside_calls ORDER BY set_aside_at DESC LIMIT 1) FROM set_aside_calls"
)


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """What a feed, its live stream and its CSV show (within the viewer's scope)."""

    missed_only: bool = True
    business: str | None = None
    outcome: str | None = None
    text: str | None = None  # one of TEXT_FILTERS
    since: float | None = None  # calls that ended at or after
    until: float | None = None  # ... and before
    digits: str | None = None  # found anywhere in the caller's E.164 number


@dataclass(frozen=True, slots=True)
class FeedRow:
    linkedid: str
    business: str | None
    did: str
    caller: str | None
    caller_name: str | None
    outcome: str
    missed: bool
    started_at: float
    ring_at: float | None
    answered_at: float | None
    ended_at: float
    recorded_at: float
    text_state: str | None  # None: the call has no missed-call text
    text_created_at: float | None
    text_sent_at: float | None
    text_done_at: float | None
    text_error: str | None
    text_updated_at: float | None
    clicks: int
    node: str = ""  # the Asterisk server it rang on, with several (asterisk.nodes); "" with one

    @property
    def ring_s(self) -> float | None:
        """How long it rang: until answered, else until the call ended."""
        if self.ring_at is None:
            return None
        return max(0.0, (self.answered_at if self.answered_at is not None else self.ended_at) - self.ring_at)

    @property
    def changed_at(self) -> float:
        """When this row last changed (recorded, or its text updated): the live feed's cursor."""
        return max(self.recorded_at, self.text_updated_at or 0.0)

    @property
    def change_key(self) -> tuple[float, str]:
        """The live feed's keyset position of this row: (changed_at, linkedid)."""
        return (self.changed_at, self.linkedid)

    @property
    def cursor(self) -> tuple[float, str]:
        """The keyset position of this row: the next page starts strictly after it."""
        return (self.ended_at, self.linkedid)


@dataclass(frozen=True, slots=True)
class Click:
    clicked_at: float
    user_agent: str | None
    url: str


@dataclass(frozen=True, slots=True)
class SystemCounts:
    backlog: int  # texts queued or being sent
    failed_recently: int  # texts failed or expired since the window's start
    set_aside: int = 0  # calls the database refused (kept aside with their error)
    last_set_aside_error: str | None = None


def _params(feed: FeedFilter, scope: Sequence[str] | None) -> dict[str, Any]:
    return {
        "missed_only": int(feed.missed_only),
        "businesses": scope_param(scope),
        "business": feed.business,
        "outcome": feed.outcome,
        "since": feed.since,
        "until": feed.until,
        "digits": feed.digits or None,
        "text": feed.text,
    }


def _feed_row(row: Row) -> FeedRow:
    return FeedRow(
        linkedid=row["linkedid"],
        business=row["business"],
        did=row["did"],
        caller=row["caller"],
        caller_name=row["caller_name"],
        outcome=row["outcome"],
        missed=bool(row["missed"]),
        started_at=row["started_at"],
        ring_at=row["ring_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        recorded_at=row["recorded_at"],
        node=row["node"],
        text_state=row["text_state"],
        text_created_at=row["text_created_at"],
        text_sent_at=row["text_sent_at"],
        text_done_at=row["text_done_at"],
        text_error=row["text_error"],
        text_updated_at=row["text_updated_at"],
        clicks=int(row["clicks"]),
    )


def _check_limit(limit: int) -> None:
    if not 0 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 0..{MAX_PAGE}, not {limit}")


async def feed_page(
    store: CallStore,
    feed: FeedFilter,
    scope: Sequence[str] | None,
    *,
    before: tuple[float, str] | None = None,
    limit: int = 50,
) -> list[FeedRow]:
    """Calls newest first (by end time, then linkedid), strictly after the `before` cursor when given."""
    _check_limit(limit)
    params = _params(feed, scope)
    params |= {"before_end": None if before is None else before[0], "before_id": None if before is None else before[1]}
    params["limit"] = limit
    async with store.connection.execute(_PAGE, params) as cursor:
        return [_feed_row(row) for row in await cursor.fetchall()]


async def changed_since(
    store: CallStore,
    feed: FeedFilter,
    scope: Sequence[str] | None,
    *,
    after: tuple[float, str],
    up_to: tuple[float, str] | None = None,
    limit: int = 200,
) -> list[FeedRow]:
    """Calls matching `feed` whose last change (recorded, or their text updated) is after the keyset position
    `after` = (time, linkedid), and at or before `up_to` when given; in order of change, so the last row is where
    the next call starts."""
    _check_limit(limit)
    params = _params(feed, scope) | {
        "from_at": after[0],
        "from_id": after[1],
        "to_at": None if up_to is None else up_to[0],
        "to_id": None if up_to is None else up_to[1],
        "limit": limit,
    }
    async with store.connection.execute(_CHANGED, params) as cursor:
        return [_feed_row(row) for row in await cursor.fetchall()]


async def call_clicks(store: CallStore, linkedid: str) -> list[Click]:
    """Every visit to the links texted after this call, oldest first."""
    async with store.connection.execute(_CLICKS, (linkedid,)) as cursor:
        return [Click(row[0], row[1], row[2]) for row in await cursor.fetchall()]


async def system_counts(store: CallStore, *, since: float) -> SystemCounts:
    """The outbox backlog now, and the texts that failed (or expired) since `since`."""
    conn = store.connection
    async with conn.execute(_BACKLOG) as cursor:
        backlog = await cursor.fetchone()
    async with conn.execute(_FAILED_SINCE, (since,)) as cursor:
        failed = await cursor.fetchone()
    async with conn.execute(_SET_ASIDE) as cursor:
        aside = await cursor.fetchone()
    return SystemCounts(
        int(backlog[0]) if backlog else 0,
        int(failed[0]) if failed else 0,
        set_aside=int(aside[0]) if aside else 0,
        last_set_aside_error=str(aside[1]) if aside and aside[1] is not None else None,
    )
