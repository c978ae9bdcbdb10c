"""Reads CEL rows from the SQLite file Asterisk's `cel_sqlite3_custom` writes (`master.db` in its log folder).

The file is Asterisk's: it is opened read-only, never changed, and read in short queries over ranges of row ids
(the only index the table has), because Asterisk writes each event as it happens with a one-second busy timeout: a
long read could make it drop rows. Every value is bounded as it is read (caller names come from the phone network).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from callbuddy_pbx.asterisk.cel import (
    CALLER_ID_EVENTS,
    DIALPLAN_EVENTS,
    EXTRA_EVENTS,
    LINKEDID_END,
    USED_EVENTS,
    CelRow,
    event_time,
    judge,
)
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import EARLIEST_TIME, LATEST_TIME
from callbuddy_pbx.config import CelConfig
from callbuddy_pbx.model import CallRecord

CHUNK_ROWS = 20_000  # rows per query: a few tens of milliseconds of Asterisk waiting at most
MAX_VALUE_CHARS = 256  # any column but extra
MAX_EXTRA_CHARS = 4096
_COLUMNS = ("eventtype", "eventtime", "channame", "uniqueid", "linkedid", "cidname", "cidnum", "exten", "context")
_OPTIONAL = ("appname", "peer", "extra")
# Which rows each column is read from (the others give NULL): fewer strings made, a gap read in seconds.
_ONLY_FOR = {
    "cidname": CALLER_ID_EVENTS,  # the caller's ID as it changes
    "cidnum": CALLER_ID_EVENTS,
    "exten": DIALPLAN_EVENTS,
    "context": DIALPLAN_EVENTS,
    "appname": ("APP_START",),
    "peer": ("BRIDGE_ENTER",),
    "extra": EXTRA_EVENTS,
}


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _listed(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{name}'" for name in names)


# The rows the judging uses, in SQL both readers share; APP_START matters for the caller's channel only (voicemail,
# queue, the number it reached after a Goto).
WANTED_ROWS = f"(eventtype IN ({_listed(USED_EVENTS)}) AND (eventtype <> 'APP_START' OR uniqueid = linkedid))"


def _row_query(table: str, columns: set[str]) -> str:
    """The one query rows are read with: CelRow's fields in order, each value bounded and text ('' for none, or
    not read for this row's event), the time as a number when it is one (the stock format), else as written."""
    picked = [  # a number only when it is a plausible time (2000-2100): rows of such numbers need no checking
        f"CASE WHEN CAST(eventtime AS REAL) > {EARLIEST_TIME:.0f} AND CAST(eventtime AS REAL) < {LATEST_TIME:.0f}"
        " THEN CAST(eventtime AS REAL) ELSE coalesce(substr(CAST(eventtime AS TEXT), 1, 40), '') END"
    ]
    for name in _COLUMNS[2:] + _OPTIONAL:
        if name not in columns:
            picked.append("''")
            continue
        # CAST: a value stored as a number or a BLOB reads as text like any other (text_factory decodes it leniently)
        limit = MAX_EXTRA_CHARS if name == "extra" else MAX_VALUE_CHARS
        value = f"coalesce(substr(CAST({name} AS TEXT), 1, {limit}), '')"
        only = _ONLY_FOR.get(name)
        picked.append(f"CASE WHEN eventtype IN ({_listed(only)}) THEN {value} ELSE '' END" if only else value)
    return (
        f"SELECT rowid, coalesce(substr(CAST(eventtype AS TEXT), 1, 40), ''), {', '.join(picked)} FROM \"{table}\""  # noqa: S608
        f" WHERE rowid > ? AND rowid <= ? AND {WANTED_ROWS} ORDER BY rowid"
    )


class CelSourceError(Exception):
    """The CEL source cannot be read (missing file, no such table, a column missing); the message says which."""


@dataclass(frozen=True, slots=True)
class CelProbe:
    """What `check` reports about a CEL source."""

    rows: int  # the highest row id: roughly how many rows Asterisk has written
    latest_event: str | None  # the newest row's event type
    latest_at: float | None  # ... and its time (unix seconds), when it could be read


class CelSqlite:
    """One CEL table in one SQLite file. Blocking calls: run them in a thread (`asyncio.to_thread`)."""

    def __init__(self, config: CelConfig) -> None:
        if config.sqlite is None:
            raise ValueError("no CEL database configured")
        self.path: Path = config.sqlite
        self.table = config.table  # an identifier (checked by the config reader): safe to put in SQL text
        self._zone = ZoneInfo(config.timezone) if config.timezone else None
        self._conn: sqlite3.Connection | None = None
        self._select = ""
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """How progress through this source is keyed in the service's own database."""
        return f"sqlite:{self.path}#{self.table}"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if not self.path.is_file():
            raise CelSourceError(f"{self.path}: no such file (is cel_sqlite3_custom loaded in Asterisk?)")
        try:
            conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True, timeout=1.0,
                                   check_same_thread=False)  # fmt: skip
            columns = {str(row[1]).lower() for row in conn.execute(f'PRAGMA table_info("{self.table}")')}
        except sqlite3.Error as exc:
            raise CelSourceError(f"{self.path}: cannot read ({exc})") from exc
        if not columns:
            conn.close()
            raise CelSourceError(f"{self.path}: no table {self.table!r} (is cel_sqlite3_custom.conf rendered?)")
        missing = [name for name in _COLUMNS if name not in columns]
        if missing:
            conn.close()
            raise CelSourceError(
                f"{self.path}: table {self.table!r} has no column {', '.join(missing)}"
                " (cel_sqlite3_custom.conf must list it: `callbuddy-pbx render` writes one that does)"
            )
        self._select = _row_query(self.table, columns)
        self._conn = conn
        return conn

    def _run(self, sql: str | None, parameters: tuple[int, ...] = ()) -> list[tuple[Any, ...]]:
        """Run `sql` (None: the row query) on the open connection; a failure closes it, the next call reopens."""
        with self._lock:
            conn = self._connect()
            query = self._select if sql is None else sql
            try:
                try:
                    return conn.execute(query, parameters).fetchall()
                except sqlite3.OperationalError as exc:
                    if "decode" not in str(exc):
                        raise
                # Caller names come from the phone network: bytes that are not UTF-8 are read (with U+FFFD), not a
                # failed sweep. Only for such a slice: decoding in Python costs every value a function call.
                conn.text_factory = _lenient_text
                try:
                    return conn.execute(query, parameters).fetchall()
                finally:
                    conn.text_factory = str
            except sqlite3.Error as exc:
                self._conn = None
                conn.close()
                raise CelSourceError(f"{self.path}: cannot read ({exc})") from exc

    def last_id(self) -> int:
        """The newest row's id (0 for an empty table)."""
        rows = self._run(f'SELECT max(rowid) FROM "{self.table}"')  # noqa: S608 (a checked identifier)
        value = rows[0][0] if rows else None
        return int(value) if isinstance(value, int) else 0

    def rows(self, after_id: int, up_to_id: int) -> list[CelRow]:
        """The rows with after_id < id <= up_to_id in Asterisk's order (at most CHUNK_ROWS ids per query)."""
        found: list[CelRow] = []
        start = after_id
        for start in range(after_id, up_to_id, CHUNK_ROWS):
            raws = self._run(None, (start, min(up_to_id, start + CHUNK_ROWS)))
            if all(type(raw[2]) is float for raw in raws):  # the stock format, in range (the query checks it)
                found += map(CelRow._make, raws)
            else:
                found += filter(None, map(self._row, raws))
        return found

    def _row(self, raw: tuple[Any, ...]) -> CelRow | None:
        """The query gives every column as text ('' for none) and the time as a number when it is the stock one."""
        at = raw[2]
        if isinstance(at, float) and EARLIEST_TIME < at < LATEST_TIME:
            return CelRow._make(raw)
        at = event_time(str(at), self._zone)
        if at is None:
            return None  # not a time Asterisk would write: nothing to judge by
        return CelRow._make((*raw[:2], at, *raw[3:]))

    def probe(self) -> CelProbe:
        """How many rows there are and what the newest says (for `check`)."""
        newest = self._run(
            "SELECT rowid, substr(CAST(eventtype AS TEXT), 1, 40), substr(CAST(eventtime AS TEXT), 1, 40)"  # noqa: S608
            f' FROM "{self.table}" ORDER BY rowid DESC LIMIT 1'
        )
        if not newest:
            return CelProbe(0, None, None)
        row_id, event, when = newest[0]
        return CelProbe(int(row_id) if isinstance(row_id, int) else 0, str(event), event_time(str(when), self._zone))


@dataclass(frozen=True, slots=True)
class RangeVerdicts:
    """What one slice of rows says: the verdict of every call wholly inside it (with its first and last row ids),
    and the rows of the calls that began before it or go on after it, to be joined with their other slices."""

    verdicts: dict[str, tuple[CallRecord | None, int, int]]
    leftover: list[CelRow]


def judge_range(config: CelConfig, matcher: InboundMatcher, after_id: int, up_to_id: int) -> RangeVerdicts:
    """Read and judge the rows after_id < id <= up_to_id (in a worker process: a gap of an hour is judged on every
    core, and the service's event loop goes on with live calls meanwhile)."""
    source = CelSqlite(config)
    try:
        rows = source.rows(after_id, up_to_id)
    finally:
        source.close()
    by_call: dict[str, list[CelRow]] = {}
    for row in rows:
        by_call.setdefault(row.linkedid, []).append(row)
    whole = {
        linkedid: call
        for linkedid, call in by_call.items()
        if linkedid
        and call[-1].event == LINKEDID_END
        and call[0].event == "CHAN_START"
        and call[0].uniqueid == linkedid  # its first row: nothing of it lies before this slice
    }
    verdicts = {linkedid: (record, whole[linkedid][0].id, whole[linkedid][-1].id) for linkedid, record in
                judge(whole, matcher).items()}  # fmt: skip
    leftover = [row for linkedid, call in by_call.items() if linkedid not in whole for row in call]
    return RangeVerdicts(verdicts, leftover)
