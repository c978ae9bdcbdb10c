"""Calls judged while the database takes no writes, kept in a local SQLite file until they are stored.

The store writer keeps such calls in memory and tries again; with the store on PostgreSQL (another machine), an
outage can last, and a crash or SIGKILL meanwhile would lose every call judged since. So each call that has to wait
is written here first (one small synchronous transaction, fsynced) and dropped once stored; on start, whatever is
still here goes to the writer again. Storing twice is harmless: a stored key is skipped, and a text belongs to the
transaction that stores its call. Only the store writer touches the file."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.serialize import call_from_dict, call_to_dict

log = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS waiting_calls (key TEXT PRIMARY KEY, record TEXT NOT NULL, kept_at REAL)"


class CallSpool:
    """The waiting calls on disk. Every error is logged and swallowed: a spool that cannot be written leaves the
    calls in memory, as without a spool, and never stops the writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self.kept: set[str] = set()  # keys on disk now

    def open(self) -> list[CallRecord]:
        """Open (create) the file; return the calls a previous run left waiting."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # a kept call survives power loss, not only a crash
            conn.execute(_SCHEMA)
            rows = conn.execute("SELECT key, record FROM waiting_calls ORDER BY kept_at").fetchall()
        except (sqlite3.Error, OSError) as exc:
            log.error("the spool %s cannot be used (%s); calls waiting for the database stay in memory", self.path, exc)
            return []
        self._conn = conn
        found: list[CallRecord] = []
        for key, text in rows:
            try:
                found.append(call_from_dict(json.loads(text)))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("spool: call %s cannot be read back (%s); left in %s", key, exc, self.path)
                continue
            self.kept.add(key)
        if found:
            log.warning("spool: %d calls judged before a restart wait for the database again", len(found))
        return found

    def keep(self, records: Sequence[CallRecord], at: float) -> None:
        new = [record for record in records if record.linkedid not in self.kept]
        if not new or self._conn is None:
            return
        rows = [(record.linkedid, json.dumps(call_to_dict(record), default=str), at) for record in new]
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany("INSERT OR REPLACE INTO waiting_calls VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            log.error("spool: cannot keep %d waiting calls in %s (%s); they wait in memory", len(new), self.path, exc)
            return
        self.kept.update(record.linkedid for record in new)

    def drop(self, keys: Iterable[str]) -> None:
        gone = [key for key in keys if key in self.kept]
        if not gone or self._conn is None:
            return
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany("DELETE FROM waiting_calls WHERE key = ?", [(key,) for key in gone])
        except sqlite3.Error as exc:  # left on disk: read again on the next start, and skipped as stored
            log.warning("spool: cannot drop %d stored calls from %s (%s)", len(gone), self.path, exc)
            return
        self.kept.difference_update(gone)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
