"""The SQLite engine: one aiosqlite connection (WAL), write transactions one at a time (BEGIN IMMEDIATE under a lock),
schema by `schema.migrate` (PRAGMA user_version)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import aiosqlite

from callbuddy_pbx.store.engine import SQLITE, Connection, CursorContext, Params, Query, text_for
from callbuddy_pbx.store.schema import StoreError, migrate, user_version


class SqliteConnection:
    """aiosqlite's connection, taking a per-dialect `Sql` too (its SQLite text)."""

    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.raw = conn

    def execute(self, sql: Query, parameters: Params = ()) -> CursorContext:
        return self.raw.execute(text_for(sql, SQLITE), parameters)

    async def executemany(self, sql: Query, parameters: Iterable[Params]) -> None:
        await self.raw.executemany(text_for(sql, SQLITE), parameters)


class SqliteBackend:
    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection, path: Path, schema_before: int) -> None:
        self._conn = conn
        self.where = str(path)
        self.schema_before = schema_before
        self.reader: Connection = SqliteConnection(conn)
        self._write_lock = asyncio.Lock()  # one write transaction at a time on the shared connection

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """One write transaction on the shared connection (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error)."""
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.reader
                await self._conn.execute("COMMIT")
            except BaseException:
                # Cancelled while the worker thread ran the COMMIT, the transaction may be over already: the
                # ROLLBACK's "no transaction is active" must not replace what is being raised (a cancellation).
                with contextlib.suppress(sqlite3.OperationalError):
                    if self._conn.in_transaction:
                        await self._conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        await self._conn.close()


async def open_sqlite(path: Path, *, create: bool = True) -> SqliteBackend:
    """Open (with create=True: create) the database file and bring its schema up to date.

    With create=False a missing file is a StoreError rather than a new empty database (for read-only commands)."""
    target = _connect_target(path, create)
    try:
        conn = await aiosqlite.connect(target, uri=True, isolation_level=None)  # we issue BEGIN/COMMIT
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the database ({exc})") from exc
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA busy_timeout = 5000")  # another process (run + calls) may hold the lock
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable except for the last commits
        await conn.execute("PRAGMA foreign_keys = ON")
        before = await user_version(conn)
        await migrate(conn, str(path))
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise StoreError(f"{path}: not a usable CallBuddy database ({exc})") from exc
    except BaseException:
        await conn.close()
        raise
    return SqliteBackend(conn, path, before)


def _connect_target(path: Path, create: bool) -> str:
    """The SQLite URI to open; file-system checks are quick metadata calls, done before the first await."""
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.absolute().as_uri()
    if not path.is_file():
        raise StoreError(f"{path}: no such database")
    return path.absolute().as_uri() + "?mode=rw"  # rw: SQLite must not create a file that is not there
