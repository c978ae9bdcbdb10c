"""The one-shot move of an installation from SQLite to PostgreSQL: every table of an SQLite store copied into a
PostgreSQL store of the same schema version, in one transaction (all of it lands, or nothing), with its ids kept
and the identity counters set past them.

A target that already holds rows is refused unless `replace` is given (then it is emptied first, in the same
transaction), so running the copy twice never doubles anything. Table and column names come from the SQLite
file, so each is checked against the PostgreSQL schema's own and quoted as an identifier; the rows go through COPY
with every value passed as data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.engine import POSTGRESQL, SQLITE
from callbuddy_pbx.store.pg import PgConnection
from callbuddy_pbx.store.schema import StoreError

_VERSION_TABLE = "callbuddy_schema"


@dataclass(frozen=True, slots=True)
class CopiedTable:
    table: str
    rows: int


async def copy_sqlite_into(source: CallStore, target: CallStore, *, replace: bool = False) -> list[CopiedTable]:
    """Copy every table of `source` (SQLite) into `target` (PostgreSQL); the rows copied per table, in the order
    copied (parents before the tables that refer to them)."""
    if source.dialect != SQLITE or target.dialect != POSTGRESQL:
        raise StoreError("the copy goes from an SQLite store into a PostgreSQL store")
    tables = await _sqlite_tables(source)
    async with target.transaction() as conn:
        assert isinstance(conn, PgConnection)
        raw = conn.raw
        columns = await _pg_columns(raw)
        missing = sorted(set(tables) - set(columns))
        extra = sorted(set(columns) - set(tables))
        if missing or extra:
            raise StoreError(
                f"the two stores' tables differ (only in SQLite: {', '.join(missing) or '-'}; "
                f"only in PostgreSQL: {', '.join(extra) or '-'}): are both at the same schema version?"
            )
        holding = [table for table in tables if await _has_rows(raw, table)]
        if holding and not replace:
            raise StoreError(
                f"{target.where} already holds rows (in {', '.join(holding)}): refusing to copy over them "
                "(give --replace to empty it first)"
            )
        if holding:
            names = sql.SQL(", ").join(sql.Identifier(table) for table in tables)
            await raw.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(names))
        copied = []
        for table in _parents_first(tables):
            copied.append(CopiedTable(table, await _copy_table(source, raw, table, columns[table])))
        await _reset_identities(raw)
    return copied


async def _sqlite_tables(source: CallStore) -> dict[str, list[str]]:
    """Each table's parents (the tables its foreign keys name)."""
    async with source.connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ) as cursor:
        names = [str(row[0]) for row in await cursor.fetchall()]
    tables: dict[str, list[str]] = {}
    for name in names:
        async with source.connection.execute('SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)', (name,)) as c:
            tables[name] = [str(row[0]) for row in await c.fetchall() if row[0] != name]
    return tables


def _parents_first(tables: dict[str, list[str]]) -> list[str]:
    done: list[str] = []

    def visit(table: str, path: tuple[str, ...]) -> None:
        if table in done or table in path:
            return
        for parent in tables.get(table, []):
            visit(parent, (*path, table))
        done.append(table)

    for table in sorted(tables):
        visit(table, ())
    return done


async def _pg_columns(raw: Any) -> dict[str, list[str]]:
    cur = await raw.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name <> %s ORDER BY table_name, ordinal_position",
        (_VERSION_TABLE,),
    )
    columns: dict[str, list[str]] = {}
    for table, column in await cur.fetchall():
        columns.setdefault(str(table), []).append(str(column))
    return columns


async def _has_rows(raw: Any, table: str) -> bool:
    cur = await raw.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _copy_table(source: CallStore, raw: Any, table: str, pg_columns: list[str]) -> int:
    async with source.connection.execute("SELECT name FROM pragma_table_info(?)", (table,)) as cursor:
        names = [str(row[0]) for row in await cursor.fetchall()]
    if sorted(names) != sorted(pg_columns):
        raise StoreError(f"table {table}: the columns differ between the two stores ({names} / {pg_columns})")
    fields = sql.SQL(", ").join(sql.Identifier(name) for name in names)
    select = sql.SQL("SELECT {} FROM {}").format(fields, sql.Identifier(table)).as_string()  # names checked above
    copied = 0
    async with raw.cursor() as cur:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), fields)
        async with cur.copy(statement) as copy, source.connection.execute(select) as rows:
            async for row in rows:
                await copy.write_row(tuple(row))
                copied += 1
    return copied


async def _reset_identities(raw: Any) -> None:
    """Each identity column's next value past the largest id copied (the copy wrote the ids itself)."""
    cur = await raw.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    for table, column in await cur.fetchall():
        await raw.execute(
            sql.SQL("SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(MAX({}), 0) + 1, false) FROM {}").format(
                sql.Identifier(column), sql.Identifier(table)
            ),
            (table, column),
        )
