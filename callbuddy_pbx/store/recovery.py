"""Recovery: for each missed call, the first sign that the business got the caller back, stored once.

A sign is between the missed call's caller number and its business, after the call ended and within
RECOVERY_WINDOW_S of it (later, it is a new conversation, not the answer to that miss):

- called_back: a desk phone of the business called the number and was answered (`outbound_calls`);
- called_again: the caller called the business again and a person answered (`calls`, started after the miss);
- replied: the caller texted the business words that are no keyword (STOP, START, HELP are not a conversation);
- booked: the booking link in this call's text was opened (the click is what we see of a booking).

`recoveries` keeps one row per missed call: its earliest sign (ties in the order above). Marking recomputes from
the stored facts and only ever moves a row to an earlier sign, so a replayed event, a restart or a call re-judged
from CEL changes nothing, and a sign stored before the missed call it answers (a call found late) still counts.
The same sign definitions (`SIGNS`) give the funnel's per-sign counts in store/stats.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.engine import Connection

RECOVERY_WINDOW_S = 7 * 86400.0
RECOVERED_BY: tuple[str, ...] = ("called_back", "called_again", "replied", "booked")

# Missed calls (CTE `missed`, chosen by {which}) joined with every sign of each: (linkedid, how, rank, at, source).
SIGNS = """
    missed AS (
        SELECT c.linkedid, c.business, c.caller, c.ended_at FROM calls AS c
        WHERE c.missed = 1 AND c.caller IS NOT NULL AND c.business IS NOT NULL AND {which}
    ), signs AS (
        SELECT m.linkedid, 'called_back' AS how, 0 AS rank, o.answered_at AS at, o.linkedid AS source
        FROM missed AS m JOIN outbound_calls AS o ON o.number = m.caller AND o.business = m.business
        WHERE o.answered_at >= m.ended_at AND o.answered_at < m.ended_at + :window
        UNION ALL
        SELECT m.linkedid, 'called_again', 1, COALESCE(a.answered_at, a.started_at), a.linkedid
        FROM missed AS m JOIN calls AS a ON a.caller = m.caller AND a.business = m.business
        WHERE a.missed = 0 AND a.started_at >= m.ended_at AND a.started_at < m.ended_at + :window
        UNION ALL
        SELECT m.linkedid, 'replied', 2, i.received_at, 'r' || i.id
        FROM missed AS m JOIN inbound_messages AS i ON i.sender = m.caller AND i.business = m.business
        WHERE i.keyword = 'other' AND i.received_at >= m.ended_at AND i.received_at < m.ended_at + :window
        UNION ALL
        SELECT m.linkedid, 'booked', 3, k.clicked_at, 'k' || k.id
        FROM missed AS m JOIN link_tokens AS t ON t.linkedid = m.linkedid JOIN link_clicks AS k ON k.token = t.token
        WHERE k.clicked_at >= m.ended_at AND k.clicked_at < m.ended_at + :window
    )
"""
_MARK = (
    "WITH"  # noqa: S608 (fixed text; every value is bound)
    + SIGNS
    + """, ranked AS (
        SELECT s.*, ROW_NUMBER() OVER (PARTITION BY s.linkedid ORDER BY s.at, s.rank, s.source) AS n FROM signs AS s
    )
    INSERT INTO recoveries (linkedid, business, how, recovered_at, source, marked_at)
    SELECT r.linkedid, m.business, r.how, r.at, r.source, :now FROM ranked AS r JOIN missed AS m USING (linkedid)
    WHERE r.n = 1
    ON CONFLICT (linkedid) DO UPDATE SET
        how = excluded.how, recovered_at = excluded.recovered_at, source = excluded.source,
        marked_at = excluded.marked_at
    WHERE excluded.recovered_at < recoveries.recovered_at
"""
)
# A desk call back cancels the missed-call texts still held off for that number, as an answered call again does
# (store/messages.py): only those of calls that ended before it was answered.
_CANCEL_HELD = """
    UPDATE messages SET state = 'cancelled', updated_at = ?, done_at = ?, error = 'called back from a desk'
    WHERE to_number = ? AND business = ? AND state = 'queued' AND kind = 'missed_call'
      AND linkedid IN (SELECT linkedid FROM calls WHERE ended_at <= ?)
"""
# The same, for a missed call stored after the desk already called back (the writer and the marker race).
_CANCEL_CALLED_BACK = """
    UPDATE messages SET state = 'cancelled', updated_at = :now, done_at = :now, error = 'called back from a desk'
    WHERE linkedid = :linkedid AND state = 'queued' AND kind = 'missed_call' AND EXISTS (
        SELECT 1 FROM calls AS c JOIN outbound_calls AS o ON o.number = c.caller AND o.business = c.business
        WHERE c.linkedid = :linkedid AND o.answered_at >= c.ended_at
    )
"""
_MARK_PAIR = _MARK.format(which="c.caller = :number AND c.business = :business")
_MARK_SINCE = _MARK.format(which="c.ended_at >= :since")


async def mark_pairs(conn: Connection, pairs: Iterable[tuple[str, str]], now: float) -> None:
    """Mark the missed calls of each (caller number, business) pair from their stored signs."""
    params = [
        {"number": number, "business": business, "window": RECOVERY_WINDOW_S, "now": now}
        for number, business in sorted(set(pairs))
    ]
    await conn.executemany(_MARK_PAIR, params)


class OutboundCall(Protocol):
    """An answered call from a desk to an outside number (asterisk.outbound.OutboundAnswer; named here because the
    store imports nothing from asterisk/)."""

    @property
    def linkedid(self) -> str: ...
    @property
    def business(self) -> str | None: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def answered_at(self) -> float: ...


class RecoveryStore:
    """Writes what marks recovery: answered calls from desks, and the marks themselves, each in one transaction."""

    def __init__(self, calls: CallStore) -> None:
        self._calls = calls

    async def record_outbound(self, answers: Sequence[OutboundCall], now: float) -> int:
        """Store answered desk calls (once each, by linkedid), cancel the texts they make needless and mark what they
        recovered; return how many were new."""
        rows = [(a.linkedid, a.business, a.endpoint, a.number, a.answered_at, now) for a in answers]
        async with self._calls.transaction() as conn:
            new = 0
            for row in rows:
                async with conn.execute(
                    "INSERT INTO outbound_calls (linkedid, business, endpoint, number, answered_at, recorded_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (linkedid) DO NOTHING",
                    row,
                ) as cursor:
                    new += cursor.rowcount
            await conn.executemany(
                _CANCEL_HELD, [(now, now, a.number, a.business, a.answered_at) for a in answers if a.business]
            )
            await mark_pairs(conn, ((a.number, a.business) for a in answers if a.business), now)
        return new

    async def mark_calls(self, records: Sequence[CallRecord], now: float) -> None:
        """After calls are stored: an answered one may recover earlier misses, a missed one found late may already
        have its sign."""
        pairs = [(r.caller, r.business) for r in records if r.caller and r.business]
        if pairs:
            async with self._calls.transaction() as conn:
                missed = [{"linkedid": r.linkedid, "now": now} for r in records if r.missed and r.caller and r.business]
                await conn.executemany(_CANCEL_CALLED_BACK, missed)
                await mark_pairs(conn, pairs, now)

    async def sweep(self, now: float) -> None:
        """Mark every missed call of the last RECOVERY_WINDOW_S from its signs (replies and clicks arrive by
        other paths; this also completes marks a crash interrupted)."""
        async with self._calls.transaction() as conn:
            await conn.execute(_MARK_SINCE, {"since": now - RECOVERY_WINDOW_S, "window": RECOVERY_WINDOW_S, "now": now})
