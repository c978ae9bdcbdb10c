"""`cel:`: where Asterisk's own call records (CEL) are read from, so calls that happened while the service was away
(stopped, crashed, AMI link down) are still judged and texted.

Asterisk writes them with `cel_sqlite3_custom` into `master.db` in its log folder (`render` writes that config, with
`linkedid` among the columns). Without a `cel:` section the service has no record of a gap: a call that overlapped
one is stored as not fully observed and never texted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from callbuddy_pbx.config.reader import Reader, shown

DEFAULT_CEL_PATH = Path("/var/log/asterisk/master.db")  # cel_sqlite3_custom's file in Asterisk's log folder
DEFAULT_TEXT_WITHIN_S = 30 * 60.0  # a missed call found in CEL is texted when it ended less than this long ago
_KEYS = ("sqlite", "table", "timezone", "text_found_calls_within_minutes", "poll_seconds")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")  # the name goes into SQL: an identifier, nothing more


@dataclass(frozen=True, slots=True)
class CelConfig:
    sqlite: Path | None = None  # the SQLite file Asterisk writes CEL rows into; None: no CEL source
    table: str = "cel"
    # The PBX's time zone, for `eventtime` written as wall-clock text (a `dateformat` in cel.conf); None: this host's.
    timezone: str | None = None
    # A missed call found in CEL is texted when it ended less than this long ago; older ones are stored, not texted.
    text_within_s: float = DEFAULT_TEXT_WITHIN_S
    poll_s: float = 5.0  # how often CEL is read for calls the AMI link did not finish

    @property
    def enabled(self) -> bool:
        return self.sqlite is not None


class CelReader:
    """Reads `cel:` with a Reader (whose problem list it adds to)."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader

    def cel(self, node: yaml.Node, base_dir: Path) -> CelConfig:
        section = self.r.mapping(node, "cel", _KEYS)
        base = CelConfig()
        if not section:
            return base
        path: Path | None = DEFAULT_CEL_PATH
        if "sqlite" in section:
            text = self.r.non_empty(section["sqlite"], "cel.sqlite", "the path of Asterisk's CEL database")
            path = base_dir / Path(text).expanduser() if text else None
        table = base.table
        if "table" in section:
            name = self.r.non_empty(section["table"], "cel.table", "a table name") or table
            if _TABLE_NAME.fullmatch(name):
                table = name
            else:
                self.r.problem(section["table"], "cel.table", f"{shown(name)} is not a table name (letters, digits, _)")
        timezone = self.r.timezone(section["timezone"], "cel.timezone") if "timezone" in section else None
        within_s = base.text_within_s
        if "text_found_calls_within_minutes" in section:
            minutes = self.r.number(
                section["text_found_calls_within_minutes"],
                "cel.text_found_calls_within_minutes",
                "minutes",
                allow_zero=True,
            )
            within_s = within_s if minutes is None else minutes * 60
        poll_s = base.poll_s
        if "poll_seconds" in section:
            poll_s = self.r.positive(section["poll_seconds"], "cel.poll_seconds") or poll_s
        return CelConfig(sqlite=path, table=table, timezone=timezone, text_within_s=within_s, poll_s=poll_s)
