"""A transaction's lock on one caller of one business, so that check-then-write transactions about that pair (the
per-caller text window, the opt-out and per-thread rate checks before an answer is queued, an opt-out and the texts
it cancels) run one after another across every instance on a shared PostgreSQL database (issue 16).

Within one process the store's write lock already orders them (SQLite's BEGIN IMMEDIATE, pg.PgBackend's lock); two
processes on PostgreSQL each take only their own, and READ COMMITTED lets both read "no text yet" and both write.
The lock is `pg_advisory_xact_lock(class, hash)`, held until the transaction ends (commit or rollback; nothing to
release, nothing left behind by a crash). Its two-int form is a key space of its own: it never meets the one-bigint
session locks of the Asterisk links' leadership or the migration lock. Two pairs whose hashes meet only wait for each
other a moment; the lock orders, the rows decide.
"""

from __future__ import annotations

from callbuddy_pbx.store.engine import SQLITE, Connection

RECIPIENT_LOCK_CLASS = 0x43420001  # "CB" and 1: the first int of the key, the kind of thing locked


async def lock_recipient(conn: Connection, business: str, number: str) -> None:
    """Inside a write transaction: wait for, then hold to its end, the lock on (business, number). SQLite: nothing
    to take (one writer at a time already)."""
    if conn.dialect == SQLITE:
        return
    await conn.execute(
        "SELECT pg_advisory_xact_lock(CAST(? AS integer), hashtext(?))", (RECIPIENT_LOCK_CLASS, f"{business}\n{number}")
    )
