"""CallStore: finished calls and their legs, written idempotently per linkedid, in SQLite (one file, WAL) or
PostgreSQL (store/engine.py is the seam; sqlite_engine.py and pg.py the engines)."""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from callbuddy_pbx.db_url import UrlError, engine_of, sqlite_path
from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.store.engine import SQLITE, Connection, Row, per_dialect
from callbuddy_pbx.store.schema import StoreError
from callbuddy_pbx.store.sqlite_engine import open_sqlite

# ON CONFLICT (linkedid) DO NOTHING rather than INSERT OR IGNORE: only "already stored" is skipped; a broken record
# (a NULL in a NOT NULL column) still fails the batch instead of vanishing silently.
_INSERT_CALL = """
    INSERT INTO calls (
        linkedid, business, did, caller, caller_raw, caller_name, outcome, missed, answered_by,
        started_at, ring_at, answered_at, ended_at, hangup_cause, observed_from_start, from_cel, recorded_at, node
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (linkedid) DO NOTHING
"""
_INSERT_LEG = """
    INSERT INTO call_legs (
        linkedid, seq, channel, endpoint, dial_status, hangup_cause, answered, started_at, ended_at
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# :businesses is NULL (every business) or a JSON array of the names allowed, bound as a parameter (Dialect.in_scope).
MAX_KEY_CHARS = 200  # a linkedid is ~25 characters; whatever Asterisk sent, a stored key is bounded
MAX_ERROR_CHARS = 500
# One query for calls and legs: the newest calls first, each call's legs in order (LEFT JOIN keeps leg-less calls).
_SELECT_CALLS = per_dialect(
    lambda d: (
        f"""
    WITH picked AS (
        SELECT * FROM calls
        WHERE (:missed_only = 0 OR missed = 1)
          AND (CAST(:since AS DOUBLE PRECISION) IS NULL OR ended_at >= :since)
          AND (CAST(:linkedid AS TEXT) IS NULL OR linkedid = :linkedid) AND {d.in_scope("business")}
        ORDER BY ended_at DESC, linkedid DESC
        LIMIT :limit
    )
    SELECT picked.*,
        leg.seq AS leg_seq, leg.channel AS leg_channel, leg.endpoint AS leg_endpoint,
        leg.dial_status AS leg_dial_status, leg.hangup_cause AS leg_hangup_cause, leg.answered AS leg_answered,
        leg.started_at AS leg_started_at, leg.ended_at AS leg_ended_at
    FROM picked LEFT JOIN call_legs AS leg ON leg.linkedid = picked.linkedid
    ORDER BY picked.ended_at DESC, picked.linkedid DESC, leg.seq
"""  # noqa: S608 (fixed text; every value is bound)
    )
)
_KNOWN_CALLS = per_dialect(
    lambda d: (
        f"SELECT linkedid FROM calls WHERE linkedid {d.in_json('?')}"  # noqa: S608 (fixed text)
        f" UNION SELECT linkedid FROM set_aside_calls WHERE linkedid {d.in_json('?')}"
    )
)
_COUNT_CALLS = "SELECT COUNT(*) FROM calls WHERE (:missed_only = 0 OR missed = 1)"


class Backend(Protocol):
    """An engine's open database (sqlite_engine.SqliteBackend, pg.PgBackend)."""

    @property
    def dialect(self) -> str: ...
    @property
    def where(self) -> str: ...
    @property
    def schema_before(self) -> int: ...
    @property
    def reader(self) -> Connection: ...
    def transaction(self) -> AbstractAsyncContextManager[Connection]: ...
    async def close(self) -> None: ...


class CallStore:
    """Use `await CallStore.open(path)` (SQLite) or `await CallStore.open_url(url)` (either engine), or
    `async with await CallStore.open(path) as store`."""

    def __init__(self, backend: Backend, path: Path | None = None) -> None:
        self._backend = backend
        self.path = path if path is not None else Path()  # the SQLite file (PostgreSQL: none; see `where`)
        self.where = backend.where  # for messages: the file, or the URL with no password in it
        self.dialect = backend.dialect
        self.schema_before = backend.schema_before  # the schema version found at open (before migrating)

    @classmethod
    async def open(cls, path: Path, *, create: bool = True) -> CallStore:
        """Open (with create=True: create) the SQLite database and bring its schema up to date.

        With create=False a missing file is a StoreError rather than a new empty database (for read-only commands).
        """
        return cls(await open_sqlite(path, create=create), path)

    @classmethod
    async def open_url(cls, url: str, *, create: bool = True) -> CallStore:
        """Open the store a `storage.url` names: postgresql://user@host:port/database (the password from the
        environment) or sqlite:///path. A URL that names no engine is a StoreError."""
        try:
            path = sqlite_path(url) if engine_of(url) == SQLITE else None
        except UrlError as exc:
            raise StoreError(str(exc)) from None
        if path is not None:
            return await cls.open(path, create=create)
        from callbuddy_pbx.store.pg import open_postgresql  # psycopg is loaded only by a PostgreSQL store

        return cls(await open_postgresql(url, create=create))

    async def close(self) -> None:
        await self._backend.close()

    async def __aenter__(self) -> CallStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def save_calls(self, records: Sequence[CallRecord]) -> int:
        """Store new calls with their legs in one transaction; a linkedid already stored is left as it is.

        Returns how many calls were new, so a replay or a reconnect that reports a call again is harmless.
        """
        if not records:
            return 0
        async with self.transaction() as conn:
            return len(await insert_calls(conn, records))

    async def known_calls(self, linkedids: Sequence[str]) -> set[str]:
        """Which of these calls are already stored (or set aside): a call found again is never stored twice."""
        found: set[str] = set()
        for start in range(0, len(linkedids), 500):
            chunk = json.dumps([key[:MAX_KEY_CHARS] for key in linkedids[start : start + 500]])
            async with self.connection.execute(_KNOWN_CALLS, (chunk, chunk)) as cursor:
                found.update(str(row[0]) for row in await cursor.fetchall())
        return found

    async def cel_progress(self, source: str) -> int | None:
        """The CEL row id up to which every ended call of `source` is stored (None: this source was never read)."""
        async with self.connection.execute("SELECT last_id FROM cel_progress WHERE source = ?", (source,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else int(row[0])

    async def set_cel_progress(self, source: str, last_id: int, at: float) -> None:
        async with self.transaction() as conn:
            await conn.execute(
                "INSERT INTO cel_progress (source, last_id, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (source) DO UPDATE SET last_id = excluded.last_id, updated_at = excluded.updated_at",
                (source, last_id, at),
            )

    async def set_aside(self, linkedid: str, record_json: str, error: str, at: float) -> None:
        """Keep a call the database refused (see schema 5); a second refusal of the same call keeps the first."""
        async with self.transaction() as conn:
            await conn.execute(
                "INSERT INTO set_aside_calls (linkedid, error, record, set_aside_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (linkedid) DO NOTHING",
                (linkedid[:MAX_KEY_CHARS], error[:MAX_ERROR_CHARS], record_json, at),
            )

    @staticmethod
    def is_outage(error: BaseException) -> bool:
        """Whether an error says the database is unavailable (locked, full, read-only, I/O), not that it refused
        the data: the write is to be tried again, not given up."""
        if isinstance(error, sqlite3.OperationalError | OSError):
            return True
        pg = sys.modules.get("callbuddy_pbx.store.pg")  # loaded once a PostgreSQL store was opened
        return pg is not None and bool(pg.is_outage(error))

    async def writable(self) -> bool:
        """Whether the database takes writes now (a write transaction opens): tells a refused call from an outage."""
        try:
            async with self.transaction():
                pass
        except Exception:
            return False
        return True

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE on the shared connection; PostgreSQL: a pooled
        connection), committed at the end of the block, rolled back on an error; one at a time in this process."""
        return self._backend.transaction()

    @property
    def connection(self) -> Connection:
        """For reads by the sibling stores (messages); writes go through `transaction()`."""
        return self._backend.reader

    async def list_calls(
        self,
        *,
        missed_only: bool = False,
        since: float | None = None,
        limit: int = 100,
        businesses: Sequence[str] | None = None,
        linkedid: str | None = None,
    ) -> list[CallRecord]:
        """Calls newest first (by end time), with their legs; `since` keeps calls that ended at or after it;
        `businesses` (None: all) and `linkedid` narrow the choice."""
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        params = {
            "missed_only": int(missed_only),
            "since": since,
            "limit": limit,
            "linkedid": linkedid,
            "businesses": scope_param(businesses),
        }
        calls: dict[str, tuple[Row, list[LegRecord]]] = {}  # insertion order = newest first
        async with self.connection.execute(_SELECT_CALLS, params) as cursor:
            async for row in cursor:
                _, legs = calls.setdefault(row["linkedid"], (row, []))
                if row["leg_seq"] is not None:
                    legs.append(_leg_from(row))
        return [_call_from(row, legs) for row, legs in calls.values()]

    async def count_calls(self, missed_only: bool = False) -> int:
        async with self.connection.execute(_COUNT_CALLS, {"missed_only": int(missed_only)}) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0


def scope_param(businesses: Sequence[str] | None) -> str | None:
    """The :businesses parameter of IN_SCOPE."""
    return None if businesses is None else json.dumps(list(businesses))


async def insert_calls(conn: Connection, records: Sequence[CallRecord]) -> list[CallRecord]:
    """Inside a transaction: insert the calls not stored yet (with their legs); return those that were new."""
    recorded_at = time.time()
    new: list[CallRecord] = []
    for record in records:
        async with conn.execute(_INSERT_CALL, _call_row(record, recorded_at)) as cursor:
            inserted = cursor.rowcount == 1
        if inserted:
            new.append(record)
            rows = [_leg_row(record.linkedid, seq, leg) for seq, leg in enumerate(record.legs)]
            await conn.executemany(_INSERT_LEG, rows)
    return new


def folder_unwritable(folder: Path) -> OSError | None:
    """Why a database cannot be kept in `folder` (None: the folder exists, or was made here, and a file can be
    written in it, as SQLite writes its journal beside the database). For `run` and `check`, before they start."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc
    return None


def _call_row(record: CallRecord, recorded_at: float) -> tuple[Any, ...]:
    return (
        record.linkedid,
        record.business,
        record.did,
        record.caller,
        record.caller_raw,
        record.caller_name,
        record.outcome.value,
        int(record.missed),
        record.answered_by,
        record.started_at,
        record.ring_at,
        record.answered_at,
        record.ended_at,
        record.hangup_cause,
        int(record.observed_from_start),
        int(record.from_cel),
        recorded_at,
        record.node,
    )


def _leg_row(linkedid: str, seq: int, leg: LegRecord) -> tuple[Any, ...]:
    return (
        linkedid,
        seq,
        leg.channel,
        leg.endpoint,
        leg.dial_status,
        leg.hangup_cause,
        int(leg.answered),
        leg.started_at,
        leg.ended_at,
    )


def _leg_from(row: Row) -> LegRecord:
    return LegRecord(
        channel=row["leg_channel"],
        endpoint=row["leg_endpoint"],
        dial_status=row["leg_dial_status"],
        hangup_cause=row["leg_hangup_cause"],
        answered=bool(row["leg_answered"]),
        started_at=row["leg_started_at"],
        ended_at=row["leg_ended_at"],
    )


def _call_from(row: Row, legs: list[LegRecord]) -> CallRecord:
    try:
        outcome = Outcome(row["outcome"])
    except ValueError:  # written by a newer version with an outcome this one does not know
        raise StoreError(f"call {row['linkedid']!r} has an unknown outcome {row['outcome']!r}") from None
    return CallRecord(
        linkedid=row["linkedid"],
        business=row["business"],
        did=row["did"],
        caller=row["caller"],
        caller_raw=row["caller_raw"],
        caller_name=row["caller_name"],
        outcome=outcome,
        answered_by=row["answered_by"],
        started_at=row["started_at"],
        ring_at=row["ring_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        hangup_cause=row["hangup_cause"],
        legs=tuple(legs),
        observed_from_start=bool(row["observed_from_start"]),
        from_cel=bool(row["from_cel"]),
        node=row["node"],
    )
