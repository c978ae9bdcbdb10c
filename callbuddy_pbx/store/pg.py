"""The PostgreSQL engine (psycopg 3): a small connection pool; reads borrow a connection per statement (autocommit),
writes run in a transaction on one borrowed connection. Schema by `schema_pg.migrate`.

Write transactions of one process still run one at a time (the same lock as SQLite's BEGIN IMMEDIATE gives), so the
store modules' read-then-write transactions (an opt-out check before an answer is queued, a receipt matched to its
text) keep their meaning unchanged. Several processes on one database need claims that do not rely on it (issue 16:
SKIP LOCKED claims): this lock is per process, not a cluster lock.

psycopg is imported only by the PostgreSQL modules (this one, schema_pg, pg_copy), which CallStore.open_url loads for
a postgresql:// URL alone: an installation on SQLite never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any

import psycopg
from psycopg.rows import RowMaker
from psycopg_pool import AsyncConnectionPool

from callbuddy_pbx.db_url import PASSWORD_VARIABLES, masked
from callbuddy_pbx.store import schema_pg
from callbuddy_pbx.store.engine import POSTGRESQL, Connection, Cursor, Params, Query, pg_placeholders, text_for
from callbuddy_pbx.store.schema import StoreError

CONNECT_TIMEOUT_S = 5  # a database that does not answer is an outage after this, not a hang
POOL_TIMEOUT_S = 10.0  # waiting for a free connection (all busy, or the database gone): then an outage
POOL_SIZE = (1, 4)


class PgRow(tuple[Any, ...]):
    """A result row read by position (`row[0]`) or by column name (`row["id"]`), as sqlite3.Row is."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


def _pg_row(cursor: psycopg.AsyncCursor[Any]) -> RowMaker[PgRow]:
    names = {column.name: index for index, column in reversed(list(enumerate(cursor.description or ())))}
    return lambda values: PgRow(values, names)


class BufferedCursor:
    """A statement's result, read whole: the rows (if it returned any) and how many rows it changed."""

    def __init__(self, rows: list[PgRow], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    async def fetchone(self) -> PgRow | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    async def fetchall(self) -> list[PgRow]:
        rest, self._next = self._rows[self._next :], len(self._rows)
        return rest

    def __aiter__(self) -> AsyncIterator[PgRow]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[PgRow]:
        while (row := await self.fetchone()) is not None:
            yield row

    async def close(self) -> None:
        self._rows = []


class _Pending:
    """The result of `execute`: awaited, or entered with `async with`, it runs the statement once."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, BufferedCursor]]) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._run().__await__()

    async def __aenter__(self) -> Cursor:
        cursor: Cursor = await self._run()
        return cursor

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> None:
        return None


async def _run(raw: psycopg.AsyncConnection[Any], sql: Query, parameters: Params) -> BufferedCursor:
    async with raw.cursor(row_factory=_pg_row) as cur:
        await cur.execute(pg_placeholders(text_for(sql, POSTGRESQL)), parameters or None)
        rows = await cur.fetchall() if cur.description is not None else []
        return BufferedCursor(rows, cur.rowcount)


class PgConnection:
    """One borrowed connection (inside a transaction)."""

    dialect = POSTGRESQL

    def __init__(self, raw: psycopg.AsyncConnection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: Query, parameters: Params = ()) -> _Pending:
        return _Pending(lambda: _run(self.raw, sql, parameters))

    async def executemany(self, sql: Query, parameters: Iterable[Params]) -> None:
        rows = list(parameters)
        if rows:
            async with self.raw.cursor() as cur:
                await cur.executemany(pg_placeholders(text_for(sql, POSTGRESQL)), rows)


class PgReader:
    """Reads outside a transaction: each statement borrows a pool connection (autocommit) and gives it back."""

    dialect = POSTGRESQL

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    def execute(self, sql: Query, parameters: Params = ()) -> _Pending:
        async def run() -> BufferedCursor:
            async with self._pool.connection() as raw:
                return await _run(raw, sql, parameters)

        return _Pending(run)

    async def executemany(self, sql: Query, parameters: Iterable[Params]) -> None:
        async with self._pool.connection() as raw, raw.transaction():
            await PgConnection(raw).executemany(sql, parameters)


class PgBackend:
    dialect = POSTGRESQL

    def __init__(self, pool: AsyncConnectionPool[Any], url: str, schema_before: int) -> None:
        self._pool = pool
        self.where = masked(url)
        self.schema_before = schema_before
        self.reader: Connection = PgReader(pool)
        self._write_lock = asyncio.Lock()  # see the module's notes

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._write_lock, self._pool.connection() as raw, raw.transaction():
            yield PgConnection(raw)

    async def close(self) -> None:
        await self._pool.close()


def password_from_environment(environ: dict[str, str] | None = None) -> str | None:
    """CALLBUDDY_DB_PASSWORD, else PGPASSWORD (libpq would read that one itself; read here so both work alike)."""
    env = os.environ if environ is None else environ
    for name in PASSWORD_VARIABLES:
        if env.get(name):
            return env[name]
    return None


def is_outage(error: BaseException) -> bool:
    """A lost or refused connection, a pool with no connection to give, a server shutting down, a full disk,
    a serialization failure: psycopg files them all under OperationalError. A constraint refused is not one."""
    return isinstance(error, psycopg.OperationalError)


async def open_postgresql(url: str, *, create: bool = True, password: str | None = None) -> PgBackend:
    """Connect to the database at `url` and bring its schema up to date (with create=False: refuse a database
    without CallBuddy's tables rather than create them, for read-only commands)."""
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S}
    secret = password if password is not None else password_from_environment()
    if secret is not None:
        kwargs["password"] = secret
    where = masked(url)
    # One connection first, for the schema: a server that is not there says so at once, in libpq's words (which
    # name the host and the user, never the password), rather than after the pool's retries.
    try:
        raw = await psycopg.AsyncConnection.connect(url, **kwargs)
    except psycopg.Error as exc:
        raise StoreError(f"{where}: cannot connect ({_reason(exc)})") from None
    try:
        before = await schema_pg.version(raw)
        if not create and before == 0:
            raise StoreError(f"{where}: no CallBuddy tables in this database (run `callbuddy-pbx migrate`)")
        await schema_pg.migrate(raw, where)
    except psycopg.Error as exc:
        raise StoreError(f"{where}: not a usable CallBuddy database ({_reason(exc)})") from None
    finally:
        await raw.close()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        kwargs=kwargs,
        min_size=POOL_SIZE[0],
        max_size=POOL_SIZE[1],
        timeout=POOL_TIMEOUT_S,
        open=False,
        check=AsyncConnectionPool.check_connection,  # a connection the server dropped is replaced, not handed out
        name="callbuddy",
    )
    try:
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
    except psycopg.Error as exc:
        await pool.close()
        raise StoreError(f"{where}: cannot connect ({_reason(exc)})") from None
    return PgBackend(pool, url, before)


def _reason(exc: psycopg.Error) -> str:
    """The server's or libpq's first line: it names the host and the user, never the password."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
