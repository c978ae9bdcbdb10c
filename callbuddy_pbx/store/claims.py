"""Outbox claims with a lease: which instance is sending a text, and until when that holds (issue 16).

A text is claimed (`queued` -> `sending`) in one transaction that picks it, so two instances sharing a PostgreSQL
database never send it both: on PostgreSQL the due rows are read `FOR UPDATE SKIP LOCKED` (a row another instance
is claiming is passed over, not waited for, and the next due one is taken instead), and the UPDATE's
`WHERE state = 'queued'` stays the guard that decides (a cancel, an opt-out or another claim that won leaves the row
unclaimed). SQLite keeps its plain read: one process owns the file, and BEGIN IMMEDIATE orders its transactions.

A claim names its instance (`claimed_by`) and holds until `lease_until`; the owner renews it while the send is in
flight and until its result is recorded. A row still `sending` after its lease ran out belongs to an instance that
died mid-send: any other instance settles it `unknown` (the gateway may have it; never sent again blindly). At
start an instance settles what it left itself (same identity) and what is expired; on SQLite every `sending` row
at start is the last process's, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.engine import SQLITE, Connection, Row, Sql

LEASE_S = 30.0  # a send's claim holds this long unless renewed (renewed every third of it while in flight)

# The columns of an outbox row, in OutboxRow's order (store/messages.py reads its rows with them too).
OUTBOX_COLUMNS = """id, key, kind, linkedid, business, to_number, sender, gateway, body, state, attempts, send_at,
           created_at, updated_at, sent_at, done_at, message_id, error"""
_DUE = f"SELECT {OUTBOX_COLUMNS} FROM messages WHERE state = 'queued' AND send_at <= ? ORDER BY send_at, id LIMIT ?"  # noqa: S608
_DUE_FOR_CLAIM = Sql(sqlite=_DUE, postgresql=_DUE + " FOR UPDATE SKIP LOCKED")
_STOPPED = "'the service stopped while the gateway had this text'"
# At start. SQLite: every row left `sending` (one process per file). PostgreSQL: the rows this identity left, rows
# claimed before claims named their instance (migration 13), and rows whose lease ran out; never another live
# instance's send.
_RECOVER_ALL = f"UPDATE messages SET state = 'unknown', updated_at = :now, error = {_STOPPED} WHERE state = 'sending'"  # noqa: S608
_RECOVER = Sql(
    sqlite=_RECOVER_ALL,
    postgresql=_RECOVER_ALL
    + " AND (claimed_by IS NULL OR claimed_by = :me OR lease_until IS NULL OR lease_until < :now)",
)
_SETTLE_EXPIRED = (
    "UPDATE messages SET state = 'unknown', updated_at = :now,"
    " error = 'the instance sending this text stopped while the gateway had it'"
    " WHERE state = 'sending' AND claimed_by <> :me AND lease_until < :now"
)


def marks(count: int) -> str:
    """`?, ?, ...`: placeholders only; the values are bound."""
    return ",".join("?" * count)


async def claim_rows(conn: Connection, ids: Sequence[int], me: str, now: float, lease_s: float) -> list[int]:
    """Inside a transaction: mark these texts `sending` for `me` until now + lease_s, those still queued only."""
    if not ids:
        return []
    async with conn.execute(
        "UPDATE messages SET state = 'sending', updated_at = ?, claimed_by = ?, lease_until = ?"  # noqa: S608
        f" WHERE state = 'queued' AND id IN ({marks(len(ids))}) RETURNING id",
        (now, me, now + lease_s, *ids),
    ) as cursor:
        return [int(row[0]) for row in await cursor.fetchall()]


async def claim_due(
    store: CallStore,
    me: str,
    now: float,
    limit: int,
    choose: Callable[[list[Row]], list[int]],
    lease_s: float,
) -> list[int]:
    """Read up to `limit` due texts no other instance is claiming, let `choose` say which to send now (pacing and
    rate limits: plain code, no I/O, so the row locks are held for microseconds), claim those; one transaction."""
    async with store.transaction() as conn:
        async with conn.execute(_DUE_FOR_CLAIM, (now, limit)) as cursor:
            rows = list(await cursor.fetchall())
        return await claim_rows(conn, choose(rows), me, now, lease_s) if rows else []


async def renew(store: CallStore, ids: Sequence[int], me: str, until: float) -> int:
    """Extend `me`'s claims on these texts (those still `sending` and still ours)."""
    if not ids:
        return 0
    async with (
        store.transaction() as conn,
        conn.execute(
            "UPDATE messages SET lease_until = ? WHERE claimed_by = ? AND state = 'sending'"  # noqa: S608
            f" AND id IN ({marks(len(ids))})",
            (until, me, *ids),
        ) as cursor,
    ):
        return cursor.rowcount


async def recover_at_start(store: CallStore, me: str, now: float) -> int:
    async with store.transaction() as conn, conn.execute(_RECOVER, {"now": now, "me": me}) as cursor:
        return cursor.rowcount


async def settle_expired(store: CallStore, me: str, now: float) -> int:
    """Settle `unknown` the sends of other instances whose lease ran out. On SQLite there are none to settle (one
    process per file: the start settled the last one's), so it costs no write there."""
    if store.dialect == SQLITE:
        return 0
    async with store.transaction() as conn, conn.execute(_SETTLE_EXPIRED, {"now": now, "me": me}) as cursor:
        return cursor.rowcount
