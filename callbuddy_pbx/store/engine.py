"""The seam between the store modules and the two database engines (SQLite through aiosqlite, PostgreSQL through
psycopg 3): what a connection offers, and the few SQL fragments the two dialects spell differently.

Store modules write their SQL once, in SQLite's parameter style (`?` and `:name`, every value bound). A statement
that reads the same in both dialects is a plain `str`; one that differs is an `Sql` pair built from the fragments of
`Dialect` (`per_dialect`), so the difference is spelled out where the query is, never guessed by rewriting SQL.
The PostgreSQL connection turns the parameter marks into psycopg's (`pg_placeholders`); nothing else is rewritten.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

SQLITE, POSTGRESQL = "sqlite", "postgresql"
DIALECTS: tuple[str, ...] = (SQLITE, POSTGRESQL)

Params = Sequence[Any] | Mapping[str, Any]
# A parameter that may be NULL is tested as `CAST(:since AS DOUBLE PRECISION) IS NULL` (both dialects read it):
# PostgreSQL infers a parameter's type from where it first appears, and `:since IS NULL` alone says none.
# A row: sqlite3.Row, or the PostgreSQL engine's PgRow; both read by position (row[0]) and by name (row["id"]).
Row = Any


@dataclass(frozen=True, slots=True)
class Sql:
    """One statement as each dialect spells it (both in SQLite's parameter style)."""

    sqlite: str
    postgresql: str


Query = str | Sql


def text_for(query: Query, dialect: str) -> str:
    if isinstance(query, str):
        return query
    return query.sqlite if dialect == SQLITE else query.postgresql


class Cursor(Protocol):
    """What the store modules use of a cursor (aiosqlite's, or the PostgreSQL engine's buffered one)."""

    @property
    def rowcount(self) -> int: ...
    async def fetchone(self) -> Any: ...
    async def fetchall(self) -> Iterable[Any]: ...
    def __aiter__(self) -> AsyncIterator[Any]: ...
    async def close(self) -> None: ...


class CursorContext(Protocol):
    """`await conn.execute(...)` gives the cursor; `async with conn.execute(...) as cursor` closes it after."""

    def __await__(self) -> Generator[Any, None, Cursor]: ...
    async def __aenter__(self) -> Cursor: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> Any: ...


class Connection(Protocol):
    """A connection of either engine: inside `CallStore.transaction()` the transaction's, else the store's reader."""

    @property
    def dialect(self) -> str: ...
    def execute(self, sql: Query, parameters: Params = ()) -> CursorContext: ...
    async def executemany(self, sql: Query, parameters: Iterable[Params]) -> None: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """The fragments SQLite and PostgreSQL spell differently. Each returns fixed SQL text around a column or
    expression named by the query's author (never data); parameters stay bound."""

    name: str

    def in_json(self, param: str) -> str:
        """`IN (...)` the strings of a JSON array bound as `param` (`?` or `:name`)."""
        if self.name == SQLITE:
            return f"IN (SELECT value FROM json_each({param}))"  # noqa: S608 (fixed text; `param` is a mark)
        return f"IN (SELECT jsonb_array_elements_text(CAST({param} AS jsonb)))"

    def in_scope(self, column: str) -> str:
        """`column` is in :businesses (a JSON array of names, bound), or :businesses is NULL (every business)."""
        if self.name == SQLITE:
            return f"(:businesses IS NULL OR {column} {self.in_json(':businesses')})"
        return f"(CAST(:businesses AS jsonb) IS NULL OR {column} {self.in_json(':businesses')})"

    def unindexed(self, expr: str) -> str:
        """`expr`, but not by its index: SQLite's unary `+` steers its planner to a better index; PostgreSQL's
        planner needs no hint (and has no unary + on text)."""
        return f"+{expr}" if self.name == SQLITE else expr

    def greatest(self, a: str, b: str) -> str:
        return f"MAX({a}, {b})" if self.name == SQLITE else f"GREATEST({a}, {b})"

    def position(self, haystack: str, needle: str) -> str:
        """Where `needle` starts in `haystack`, from 1 (0: not in it)."""
        return f"instr({haystack}, {needle})" if self.name == SQLITE else f"strpos({haystack}, {needle})"

    def whole(self, expr: str) -> str:
        """The integer part of a positive number (CAST truncates in SQLite, rounds in PostgreSQL)."""
        return f"CAST({expr} AS INTEGER)" if self.name == SQLITE else f"CAST(floor({expr}) AS bigint)"


SQLITE_DIALECT, POSTGRESQL_DIALECT = Dialect(SQLITE), Dialect(POSTGRESQL)


def per_dialect(build: Callable[[Dialect], str]) -> Sql:
    """A statement built once per dialect from the same template (at import: the texts are fixed)."""
    return Sql(build(SQLITE_DIALECT), build(POSTGRESQL_DIALECT))


@functools.lru_cache(maxsize=1024)
def pg_placeholders(sql: str) -> str:
    """SQLite's parameter marks as psycopg's: `?` -> `%s`, `:name` -> `%(name)s`, a literal `%` -> `%%`.

    Quoted strings and identifiers, comments and PostgreSQL's `::` casts are left as they are. The statements are
    the store's own fixed texts, so the result is cached."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            end = sql.find(c, i + 1)
            while end != -1 and sql.startswith(c, end + 1):  # '' and "" are escaped quotes inside
                end = sql.find(c, end + 2)
            end = n if end == -1 else end + 1
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif c == "?":
            out.append("%s")
            i += 1
        elif c == ":" and sql.startswith("::", i):
            out.append("::")
            i += 2
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            out.append(f"%({sql[i + 1 : j]})s")
            i = j
        elif c == "%":
            out.append("%%")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)
