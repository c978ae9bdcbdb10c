"""The `reply_forwards` table (schema 11): one row per (reply, target), written in the transaction that stores the
reply, so a stored reply always has its forwards and a reply delivered again has no second one (UNIQUE key).

A row is `pending` until it is claimed (`sending`, committed before anything leaves), then `sent`, `pending` again
with a later `next_attempt_at` (its server could not take it), or `failed` (a definite no, or a day of trouble).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.engine import Connection

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
MAX_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class NewForward:
    key: str  # recovery/forward_rules.forward_key: (reply, target)
    business: str
    channel: str  # "sms" | "email" | "webhook"
    target: str  # the number, address or URL


@dataclass(frozen=True, slots=True)
class ForwardRow:
    """A forward with the reply it carries (read from inbound_messages)."""

    id: int
    key: str
    business: str
    channel: str
    target: str
    state: str
    attempts: int
    next_attempt_at: float
    created_at: float
    last_error: str | None
    inbound_id: int
    gateway: str
    caller: str
    our_number: str
    text: str
    received_at: float


@dataclass(frozen=True, slots=True)
class ForwardResult:
    id: int
    state: str  # SENT, PENDING or FAILED
    attempts: int
    next_attempt_at: float
    error: str | None


_INSERT = """
    INSERT INTO reply_forwards (key, inbound_id, business, channel, target, state, attempts, next_attempt_at,
                                created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)
    ON CONFLICT (key) DO NOTHING
"""
_SELECT = """
    SELECT f.id, f.key, f.business, f.channel, f.target, f.state, f.attempts, f.next_attempt_at, f.created_at,
           f.last_error, i.id, i.gateway, i.sender, i.to_number, i.body, i.received_at
    FROM reply_forwards AS f JOIN inbound_messages AS i ON i.id = f.inbound_id
"""


async def insert_forwards(conn: Connection, inbound_id: int, forwards: Sequence[NewForward], now: float) -> int:
    """Inside the transaction that stored reply `inbound_id`: its forwards, each once; how many are new."""
    added = 0
    for forward in forwards:
        row = (forward.key, inbound_id, forward.business, forward.channel, forward.target, now, now, now)
        async with conn.execute(_INSERT, row) as cursor:
            added += max(cursor.rowcount, 0)
    return added


class ForwardStore:
    def __init__(self, store: CallStore) -> None:
        self._store = store

    async def resume_after_crash(self, now: float) -> int:
        """Rows left `sending` by a process that stopped mid-send: pending again, due now. Their send may or may not
        have gone out; the next one carries the same identity (outbox key, Message-ID, Idempotency-Key), which is
        how the receiving side recognises a repeat (see service/forwards.py)."""
        async with (
            self._store.transaction() as conn,
            conn.execute(
                "UPDATE reply_forwards SET state = 'pending', next_attempt_at = ?, updated_at = ?,"
                " last_error = 'the service stopped while sending it: sent again with the same identity'"
                " WHERE state = 'sending'",
                (now, now),
            ) as cursor,
        ):
            return max(cursor.rowcount, 0)

    async def due(self, now: float, limit: int) -> list[ForwardRow]:
        async with self._store.connection.execute(
            _SELECT + " WHERE f.state = 'pending' AND f.next_attempt_at <= ? ORDER BY f.next_attempt_at, f.id LIMIT ?",
            (now, limit),
        ) as cursor:
            return [ForwardRow(*row) for row in await cursor.fetchall()]

    async def next_due_at(self) -> float | None:
        async with self._store.connection.execute(
            "SELECT MIN(next_attempt_at) FROM reply_forwards WHERE state = 'pending'"
        ) as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def claim(self, ids: Sequence[int], now: float) -> list[int]:
        """Mark pending rows `sending`, committed before any of them is sent; the ids actually claimed."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))  # placeholders only; the values are bound
        async with (
            self._store.transaction() as conn,
            conn.execute(
                f"UPDATE reply_forwards SET state = 'sending', updated_at = ? WHERE state = 'pending' AND id IN ({marks})"  # noqa: S608, E501
                " RETURNING id",
                (now, *ids),
            ) as cursor,
        ):
            return [int(row[0]) for row in await cursor.fetchall()]

    async def finish(self, results: Sequence[ForwardResult], now: float) -> None:
        """Record what became of claimed rows (only rows still `sending`)."""
        async with self._store.transaction() as conn:
            await conn.executemany(
                "UPDATE reply_forwards SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?,"
                " updated_at = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END"
                " WHERE id = ? AND state = 'sending'",
                [(r.state, r.attempts, r.next_attempt_at, _bounded(r.error), now, r.state, now, r.id) for r in results],
            )

    async def counts(self) -> dict[str, int]:
        async with self._store.connection.execute(
            "SELECT state, COUNT(*) FROM reply_forwards GROUP BY state"
        ) as cursor:
            return {str(state): int(count) for state, count in await cursor.fetchall()}

    async def trouble(self, waiting_since: float, failed_since: float) -> tuple[int, int, str | None]:
        """(rows pending after a failed try since before `waiting_since`, rows failed since `failed_since`, the
        newest error among them): what health reports."""
        async with self._store.connection.execute(
            "SELECT"
            " (SELECT COUNT(*) FROM reply_forwards WHERE state = 'pending' AND attempts > 0 AND created_at < ?),"
            " (SELECT COUNT(*) FROM reply_forwards WHERE state = 'failed' AND updated_at >= ?),"
            " (SELECT last_error FROM reply_forwards WHERE last_error IS NOT NULL AND state IN ('pending', 'failed')"
            "  AND attempts > 0 ORDER BY updated_at DESC LIMIT 1)",
            (waiting_since, failed_since),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return 0, 0, None
        return int(row[0]), int(row[1]), row[2]

    async def for_reply(self, inbound_id: int) -> list[ForwardRow]:
        async with self._store.connection.execute(
            _SELECT + " WHERE f.inbound_id = ? ORDER BY f.id", (inbound_id,)
        ) as cursor:
            return [ForwardRow(*row) for row in await cursor.fetchall()]


def _bounded(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR_CHARS]
