"""Reads CEL rows from the PostgreSQL table Asterisk's `cel_pgsql` writes.

cel_pgsql fills every column of the table whose name it knows (`eventtype`, `eventtime`, `cid_name`, `cid_num`,
`exten`, `context`, `channame`, `appname`, `uniqueid`, `linkedid`, `peer`, `extra`, ...) and writes DEFAULT into any
other. Its table has no row id of its own, so the installer adds one (`ALTER TABLE cel ADD COLUMN id bigserial
PRIMARY KEY`): the sequence numbers the rows in Asterisk's order, like SQLite's rowid, and the reconciler's progress
is such an id. That order holds because one Asterisk writes its rows one at a time, each INSERT committed before the
next (cel_pgsql: one connection, a mutex, autocommit): an id seen means every smaller one is committed or never will
be. Hence one table per Asterisk server, never shared (rows of two writers could commit out of id order).

`eventtime` is read as cel_pgsql writes it for the column's type: unix seconds for a number column, the moment for
`timestamptz`, wall-clock text for `timestamp` and text columns (`%Y-%m-%d %H:%M:%S.<microseconds>` in Asterisk's
local time, or in UTC with `usegmtime = yes`: `cel.timezone` names the zone, UTC when not given).

The connection is read-only (`default_transaction_read_only`), every value is bounded as it is read, and a statement
that runs too long is cancelled by the server. psycopg is imported only here: an SQLite installation never loads it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.adapt import Loader

from callbuddy_pbx.asterisk.cel import CALLER_ID_EVENTS, DIALPLAN_EVENTS, EXTRA_EVENTS, CelRow, event_time
from callbuddy_pbx.asterisk.cel_sqlite import (
    CHUNK_ROWS,
    MAX_EXTRA_CHARS,
    MAX_VALUE_CHARS,
    WANTED_ROWS,
    CelProbe,
    CelSourceError,
)
from callbuddy_pbx.asterisk.tracker import EARLIEST_TIME, LATEST_TIME
from callbuddy_pbx.config.cel import CelConfig, table_name_ok
from callbuddy_pbx.db_url import PASSWORD_VARIABLES, UrlError, check_postgresql, masked

# cel_pgsql's table as the service reads it: the columns cel_pgsql fills by name, and `id`, which it leaves to its
# default (a sequence: the rows' order, the service's progress). `timestamp` takes cel_pgsql's wall-clock text as is.
CEL_PGSQL_TABLE = """CREATE TABLE {table} (
  id bigserial PRIMARY KEY,
  eventtype text NOT NULL, eventtime timestamp NOT NULL, userdeftype text,
  cid_name text, cid_num text, cid_ani text, cid_rdnis text, cid_dnid text,
  exten text, context text, channame text, appname text, appdata text,
  accountcode text, peeraccount text, uniqueid text, linkedid text,
  amaflags integer, userfield text, peer text, extra text
)"""
CEL_PGSQL_ADD_ID = "ALTER TABLE {table} ADD COLUMN id bigserial PRIMARY KEY"  # a table made without one
CONNECT_TIMEOUT_S = 5  # a server that does not answer is an outage after this, not a hang
STATEMENT_TIMEOUT_MS = 30_000  # one chunk takes milliseconds; a stuck read is cancelled by the server
DEFAULT_ZONE = "UTC"  # the zone of wall-clock eventtime when cel.timezone is not given (usegmtime = yes)
# CelRow's fields after id, event and time, as cel_pgsql names the columns (required ones first).
_COLUMNS = ("channame", "uniqueid", "linkedid", "cid_name", "cid_num", "exten", "context")
_OPTIONAL = ("appname", "peer", "extra")
# Which rows each column is read from (the others give ''): fewer strings sent and made (as cel_sqlite reads them).
_ONLY_FOR = {
    "cid_name": CALLER_ID_EVENTS,
    "cid_num": CALLER_ID_EVENTS,
    "exten": DIALPLAN_EVENTS,
    "context": DIALPLAN_EVENTS,
    "appname": ("APP_START",),
    "peer": ("BRIDGE_ENTER",),
    "extra": EXTRA_EVENTS,
}
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name"})
_NUMBER_TYPES = frozenset({"int2", "int4", "int8", "float4", "float8"})  # cel_pgsql writes seconds there
_ID_TYPES = frozenset({"int2", "int4", "int8"})
_TIME_TYPES = _TEXT_TYPES | _NUMBER_TYPES | {"timestamp", "timestamptz"}
_COLUMNS_QUERY = (
    "SELECT a.attname, t.typname, a.atthasdef OR a.attidentity <> '' FROM pg_catalog.pg_attribute a"
    " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
    " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped"
)


def _listed(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _time_expression(kind: str) -> str:
    """eventtime as unix seconds (float8) for the column's type, or as bounded text to parse (text columns)."""
    if kind in _NUMBER_TYPES:
        return "eventtime::float8"
    if kind == "timestamptz":
        return "extract(epoch FROM eventtime)::float8"
    if kind == "timestamp":  # wall clock in the PBX's zone (a query parameter, never SQL text)
        return "extract(epoch FROM eventtime AT TIME ZONE %(zone)s)::float8"
    return "left(eventtime::text, 40)"


def _row_query(table: str, columns: dict[str, str]) -> str:
    """CelRow's fields in order, each value bounded text ('' for none, or not read for this row's event)."""
    picked = [_time_expression(columns["eventtime"])]
    for name in _COLUMNS + _OPTIONAL:
        if name not in columns:
            picked.append("''")
            continue
        limit = MAX_EXTRA_CHARS if name == "extra" else MAX_VALUE_CHARS
        value = f"coalesce(left({name}::text, {limit}), '')"
        only = _ONLY_FOR.get(name)
        picked.append(f"CASE WHEN eventtype IN ({_listed(only)}) THEN {value} ELSE '' END" if only else value)
    return (
        f"SELECT id, coalesce(left(eventtype::text, 40), ''), {', '.join(picked)} FROM \"{table}\""  # noqa: S608
        f" WHERE id > %(after)s AND id <= %(upto)s AND {WANTED_ROWS} ORDER BY id"
    )


def _reason(exc: psycopg.Error) -> str:
    """The server's or libpq's first line: it names the host and the user, never the password."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def password_from_environment() -> str | None:
    """CALLBUDDY_DB_PASSWORD, else PGPASSWORD; read at each connect (a password set later is used on the next)."""
    return next((os.environ[name] for name in PASSWORD_VARIABLES if os.environ.get(name)), None)


class _LenientText(Loader):
    """Text from a SQL_ASCII database (any bytes: caller names come from the phone network) read as UTF-8 with
    U+FFFD, like cel_sqlite's lenient decoding; psycopg would otherwise hand such text over as bytes."""

    def load(self, data: Any) -> str:
        return bytes(data).decode("utf-8", "replace")


class CelPgsql:
    """One CEL table in one PostgreSQL database. Blocking calls: run them in a thread (`asyncio.to_thread`)."""

    def __init__(self, config: CelConfig, url: str) -> None:
        table = config.pgsql.table if config.pgsql is not None else config.table
        if not table_name_ok(table):  # checked by the config reader too: never SQL from a configuration file
            raise CelSourceError(f"{table[:70]!r} is not a table name (letters, digits, _)")
        try:
            check_postgresql(url)
        except UrlError as exc:
            raise CelSourceError(str(exc)) from None
        self.url = url
        self.table = table
        self.where = f"{masked(url)} table {table}"  # for people: no password, ever
        self._zone = config.timezone or DEFAULT_ZONE
        self._tz = ZoneInfo(self._zone)
        self._conn: psycopg.Connection[Any] | None = None
        self._select = ""
        self._time_kind = ""
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """How progress through this source is keyed in the service's own database."""
        return f"pgsql:{masked(self.url)}#{self.table}"

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):  # the server is gone already: nothing to close
                conn.close()

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None:
            return self._conn
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "tcp_user_timeout": STATEMENT_TIMEOUT_MS,  # a server gone silent mid-read: an error, not a stuck sweep
            "keepalives_idle": 30,
        }
        secret = password_from_environment()
        if secret is not None:
            kwargs["password"] = secret
        try:
            conn = psycopg.connect(self.url, application_name="callbuddy-cel", **kwargs)
        except psycopg.Error as exc:
            raise CelSourceError(f"{masked(self.url)}: cannot connect ({_reason(exc)})") from None
        try:
            conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
            conn.execute("SET default_transaction_read_only = on")  # Asterisk's table: read, never written
            if conn.info.parameter_status("client_encoding") == "SQL_ASCII":
                for oid in ("text", "varchar", "bpchar", "name"):
                    conn.adapters.register_loader(oid, _LenientText)
            found = conn.execute(_COLUMNS_QUERY, (f'"{self.table}"',)).fetchall()
            columns = {str(name): str(kind) for name, kind, _ in found}
            self._check(columns, {str(name) for name, _, has_default in found if has_default})
        except psycopg.Error as exc:
            conn.close()
            raise CelSourceError(f"{self.where}: cannot read ({_reason(exc)})") from None
        except CelSourceError:
            conn.close()
            raise
        self._time_kind = columns["eventtime"]
        self._select = _row_query(self.table, columns)
        self._conn = conn
        return conn

    def _check(self, columns: dict[str, str], defaults: set[str]) -> None:
        """The table is one cel_pgsql writes and this reader can follow; else why not, and the fix."""
        add_id = CEL_PGSQL_ADD_ID.format(table=self.table)
        if not columns:
            raise CelSourceError(
                f"{self.where}: no such table (create it as the cel_pgsql.conf `callbuddy-pbx render` writes shows;"
                f" a table of your own needs an id: `{add_id}`; is its schema on the URL's search_path?)"
            )
        if "id" not in columns:
            raise CelSourceError(
                f"{self.where}: no id column to read the rows in order by (cel_pgsql writes none): run `{add_id}`"
            )
        if columns["id"] not in _ID_TYPES or "id" not in defaults:
            raise CelSourceError(
                f"{self.where}: column id is {columns['id']}{'' if 'id' in defaults else ' without a default'}:"
                f" cel_pgsql leaves it to its default, so it must be a bigserial (drop it and run `{add_id}`)"
            )
        missing = [name for name in ("eventtype", "eventtime", *_COLUMNS) if name not in columns]
        if missing:
            raise CelSourceError(
                f"{self.where}: table has no column {', '.join(missing)} (cel_pgsql fills only the columns the"
                " table has: add it as text)"
            )
        if columns["eventtype"] not in _TEXT_TYPES:
            raise CelSourceError(
                f"{self.where}: eventtype is {columns['eventtype']}: cel_pgsql then writes event numbers; make it text"
            )
        if columns["eventtime"] not in _TIME_TYPES:
            raise CelSourceError(
                f"{self.where}: eventtime is {columns['eventtime']}: make it timestamp (with usegmtime = yes)"
            )

    def _run(self, sql: str | None, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run `sql` (None: the row query) on the open connection; a failure closes it, the next call reopens."""
        with self._lock:
            conn = self._connect()
            query = self._select if sql is None else sql
            try:
                return conn.execute(query, {"zone": self._zone, **parameters}).fetchall()
            except psycopg.Error as exc:
                self._drop()
                raise CelSourceError(f"{self.where}: cannot read ({_reason(exc)})") from None

    def last_id(self) -> int:
        """The newest row's id (0 for an empty table)."""
        rows = self._run(f'SELECT max(id) FROM "{self.table}"', {})  # noqa: S608 (a checked identifier)
        value = rows[0][0] if rows else None
        return int(value) if isinstance(value, int) else 0

    def rows(self, after_id: int, up_to_id: int) -> list[CelRow]:
        """The rows with after_id < id <= up_to_id in Asterisk's order (at most CHUNK_ROWS ids per query)."""
        found: list[CelRow] = []
        for start in range(after_id, up_to_id, CHUNK_ROWS):
            raws = self._run(None, {"after": start, "upto": min(up_to_id, start + CHUNK_ROWS)})
            found += filter(None, map(self._row, raws))
        return found

    def _row(self, raw: tuple[Any, ...]) -> CelRow | None:
        at = self._time(raw[2])
        if at is None:
            return None  # not a time Asterisk would write: nothing to judge by
        return CelRow._make((raw[0], raw[1], at, *raw[3:]))

    def _time(self, value: object) -> float | None:
        """A number column, timestamp or timestamptz arrives as unix seconds; a text column as text to read."""
        if isinstance(value, float):
            return value if EARLIEST_TIME < value < LATEST_TIME else None  # NaN and infinities fail too
        if isinstance(value, str):
            return event_time(value, self._tz)
        return None

    def probe(self) -> CelProbe:
        """How many rows there are and what the newest says (for `check`)."""
        with self._lock:
            self._connect()
            kind = self._time_kind
        newest = self._run(
            f"SELECT id, left(eventtype::text, 40), {_time_expression(kind)}"  # noqa: S608
            f' FROM "{self.table}" ORDER BY id DESC LIMIT 1',
            {},
        )
        if not newest:
            return CelProbe(0, None, None)
        row_id, event, when = newest[0]
        return CelProbe(int(row_id) if isinstance(row_id, int) else 0, str(event or ""), self._time(when))
