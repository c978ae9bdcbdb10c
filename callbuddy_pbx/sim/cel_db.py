"""A simulated Asterisk CEL database: the rows `cel_sqlite3_custom` writes, made from AMI `Event: CEL` messages.

Asterisk writes one row per CEL event into `master.db`, whether or not anybody listens on AMI, with the table and
columns of the configuration `render` writes (cel_sqlite3_custom.conf, as in shared/traces/asterisk-cel/README.md):
every value as text, `eventtime` as unix seconds with microseconds (cel.conf without `dateformat`) or, with a
`dateformat`, as that wall-clock text (the PBX's time zone; UTC here). Each row is its own autocommit transaction
with a busy timeout of 1 s; a row that cannot be written (the file is locked) is logged and lost, as in Asterisk.

Checked against the recordings (tests/test_sim_cel.py): fed the `Event: CEL` messages of a trace's `ami.raw`, it
writes the trace's `master.db` rows in every column but `AcctId` and `eventtime`. The AMI event does not carry the
CEL record's own time to the microsecond: `Timestamp` is when the AMI event went out, 1.5 to 52 ms after the row's
`eventtime` in the recordings, and `EventTime` is the same moment as the row's, in whole seconds.
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import re
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

# The columns after AcctId, in the order of Asterisk's CREATE TABLE (cel_sqlite3_custom.conf `columns =`).
COLUMNS = (
    "eventtype",
    "eventtime",
    "cidname",
    "cidnum",
    "cidani",
    "cidrdnis",
    "ciddnid",
    "exten",
    "context",
    "channame",
    "appname",
    "appdata",
    "amaflags",
    "accountcode",
    "uniqueid",
    "linkedid",
    "peer",
    "peeraccount",
    "userfield",
    "userdeftype",
    "extra",
)
# The AMI header each column is written from (eventtime, amaflags and userdeftype are worked out below).
_HEADERS = {
    "eventtype": "EventName",
    "cidname": "CallerIDname",
    "cidnum": "CallerIDnum",
    "cidani": "CallerIDani",
    "cidrdnis": "CallerIDrdnis",
    "ciddnid": "CallerIDdnid",
    "exten": "Exten",
    "context": "Context",
    "channame": "Channel",
    "appname": "Application",
    "appdata": "AppData",
    "accountcode": "AccountCode",
    "uniqueid": "UniqueID",
    "linkedid": "LinkedID",
    "peer": "Peer",
    "peeraccount": "PeerAccount",
    "userfield": "Userfield",
    "extra": "Extra",
}
# AMI names the AMA flags (ast_channel_amaflags2string); the table holds their numbers (enum ama_flags).
_AMA_FLAGS = {"NONE": "0", "OMIT": "1", "BILLING": "2", "DOCUMENTATION": "3"}
# AMI's CEL event has no userdeftype: a USER_DEFINED event names it in `UserDefType` (cel_manager with
# show_user_defined = no), and the recordings show what Asterisk fills in for the file-stream events.
_USERDEFTYPES = {"STREAM_BEGIN": "FILE_STREAM_BEGIN", "STREAM_END": "FILE_STREAM_END"}
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def create_table_sql(table: str = "cel") -> str:
    """Asterisk's CREATE TABLE, to the byte (what `.schema` shows in the recordings' master.db)."""
    return f"CREATE TABLE {table} (AcctId INTEGER PRIMARY KEY, {','.join(COLUMNS)})"


def event_time(message: Mapping[str, str]) -> float:
    """The CEL record's time as near as the AMI event tells it: `Timestamp` (when the event went out, a few ms after
    the record) kept inside the second `EventTime` names, so the whole second is the record's own."""
    second: int | None = None
    with contextlib.suppress(ValueError):
        second = calendar.timegm(time.strptime(message.get("EventTime", ""), "%Y-%m-%d %H:%M:%S"))
    try:
        stamp = float(message.get("Timestamp", ""))
    except ValueError:
        return float(second) if second is not None else time.time()
    if second is not None and second <= stamp < second + 2:  # else EventTime is another time zone's: not used
        stamp = min(stamp, second + 0.999999)
    return stamp


def cel_row(message: Mapping[str, str], dateformat: str | None = None) -> tuple[str, ...]:
    """The values cel_sqlite3_custom writes for one AMI `Event: CEL` message, in COLUMNS order."""
    when = event_time(message)
    name = message.get("EventName", "")
    values = {column: message.get(header, "") for column, header in _HEADERS.items()}
    values["eventtime"] = f"{when:.6f}" if dateformat is None else time.strftime(dateformat, time.gmtime(when))
    ama = message.get("AMAFlags", "")
    values["amaflags"] = _AMA_FLAGS.get(ama, ama if ama.isdigit() else "0")
    values["userdeftype"] = message.get("UserDefType", _USERDEFTYPES.get(name, ""))
    return tuple(values[column] for column in COLUMNS)


class SimulatedCelDb:
    """The `cel` table of Asterisk's master.db, written one row per `write(message)`."""

    def __init__(self, path: Path, *, dateformat: str | None = None, table: str = "cel") -> None:
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"{table!r} is not a table name")
        self.path = path
        self.dateformat = dateformat
        self.table = table
        self.written = 0
        self.dropped = 0  # rows lost to a locked (or otherwise failing) database, as Asterisk loses them
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=1.0, isolation_level=None)
        exists = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        if exists is None:
            self._db.execute(create_table_sql(table))
        columns, marks = ",".join(COLUMNS), ",".join("?" * len(COLUMNS))
        self._insert = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 (table: an identifier)

    def write(self, message: Mapping[str, str]) -> None:
        """Insert the row of one AMI `Event: CEL` message, in its own transaction."""
        try:
            self._db.execute(self._insert, cel_row(message, self.dateformat))
        except sqlite3.Error as exc:
            self.dropped += 1
            log.error("sim CEL: could not write a %s row to %s: %s", message.get("EventName"), self.path, exc)
            return
        self.written += 1

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SimulatedCelDb:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
