"""`cel:`: where Asterisk's own call records (CEL) are read from, so calls that happened while the service was away
(stopped, crashed, AMI link down) are still judged and texted.

Asterisk writes them with `cel_sqlite3_custom` into `master.db` in its log folder (`render` writes that config, with
`linkedid` among the columns), or with `cel_pgsql` into a PostgreSQL table (`cel: {pgsql: {...}}`; the table needs
an `id bigserial` column, see asterisk/cel_pgsql.py). Without a `cel:` section the service has no record of a gap: a
call that overlapped one is stored as not fully observed and never texted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from callbuddy_pbx.config.reader import Reader, join, key_node, shown
from callbuddy_pbx.db_url import UrlError, check_postgresql, engine_of

DEFAULT_CEL_PATH = Path("/var/log/asterisk/master.db")  # cel_sqlite3_custom's file in Asterisk's log folder
DEFAULT_TEXT_WITHIN_S = 30 * 60.0  # a missed call found in CEL is texted when it ended less than this long ago
_KEYS = ("sqlite", "table", "timezone", "text_found_calls_within_minutes", "poll_seconds", "pgsql")
_PGSQL_KEYS = ("table", "url", "timezone")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")  # the name goes into SQL: an identifier, nothing more


def table_name_ok(name: str) -> bool:
    """Whether `name` may be put into SQL text as a (quoted) table name."""
    return _TABLE_NAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class CelPgsqlConfig:
    """The PostgreSQL table Asterisk's `cel_pgsql` writes CEL rows into."""

    table: str = "cel"
    url: str | None = None  # postgresql://user@host:port/database (no password); None: the store's storage.url


@dataclass(frozen=True, slots=True)
class CelConfig:
    sqlite: Path | None = None  # the SQLite file Asterisk writes CEL rows into; None: not SQLite
    table: str = "cel"
    # The PBX's time zone, for `eventtime` written as wall-clock text (a `dateformat` in cel.conf, or cel_pgsql's
    # `timestamp` column); None: this host's for SQLite, UTC for PostgreSQL (cel_pgsql.conf `usegmtime = yes`).
    timezone: str | None = None
    # A missed call found in CEL is texted when it ended less than this long ago; older ones are stored, not texted.
    text_within_s: float = DEFAULT_TEXT_WITHIN_S
    poll_s: float = 5.0  # how often CEL is read for calls the AMI link did not finish
    pgsql: CelPgsqlConfig | None = None  # the PostgreSQL table cel_pgsql writes; None: not PostgreSQL

    @property
    def enabled(self) -> bool:
        """Some CEL source is configured."""
        return self.sqlite is not None or self.pgsql is not None


class CelReader:
    """Reads `cel:` with a Reader (whose problem list it adds to)."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader

    def cel(
        self, node: yaml.Node, base_dir: Path, key: str = "cel", *, store_on_postgresql: bool | None = None
    ) -> CelConfig:
        """The section at `node`; `key` is its path in messages (`asterisk.nodes[2].cel` for a node's own).
        `store_on_postgresql` False: a `pgsql:` without a url has no database to read (None: not known here)."""
        section = self.r.mapping(node, key, _KEYS)
        base = CelConfig()
        if not section:
            return base
        pgsql: CelPgsqlConfig | None = None
        timezone: str | None = None
        if "pgsql" in section:
            pgsql, timezone = self.pgsql(section["pgsql"], join(key, "pgsql"), store_on_postgresql)
            if "sqlite" in section:
                self.r.problem(
                    key_node(node, "sqlite"), join(key, "sqlite"), f"give {key}.sqlite or {key}.pgsql, not both"
                )
            if "table" in section:
                self.r.problem(
                    key_node(node, "table"), join(key, "table"),
                    f"the SQLite table's name: with {key}.pgsql give {key}.pgsql.table",
                )  # fmt: skip
        path: Path | None = None if "pgsql" in section else DEFAULT_CEL_PATH
        if "sqlite" in section:
            text = self.r.non_empty(section["sqlite"], join(key, "sqlite"), "the path of Asterisk's CEL database")
            path = base_dir / Path(text).expanduser() if text else None
        table = base.table
        if "table" in section:
            name = self.r.non_empty(section["table"], join(key, "table"), "a table name") or table
            if table_name_ok(name):
                table = name
            else:
                self.r.problem(
                    section["table"], join(key, "table"), f"{shown(name)} is not a table name (letters, digits, _)"
                )
        if "timezone" in section:
            if "pgsql" in section and key_node(section["pgsql"], "timezone") is not None:
                self.r.problem(
                    key_node(node, "timezone"), join(key, "timezone"),
                    f"give {key}.timezone or {key}.pgsql.timezone, not both",
                )  # fmt: skip
            timezone = self.r.timezone(section["timezone"], join(key, "timezone"))
        within_s = base.text_within_s
        if "text_found_calls_within_minutes" in section:
            minutes = self.r.number(
                section["text_found_calls_within_minutes"],
                join(key, "text_found_calls_within_minutes"),
                "minutes",
                allow_zero=True,
            )
            within_s = within_s if minutes is None else minutes * 60
        poll_s = base.poll_s
        if "poll_seconds" in section:
            poll_s = self.r.positive(section["poll_seconds"], join(key, "poll_seconds")) or poll_s
        return CelConfig(
            sqlite=None if pgsql is not None else path,
            table=table,
            timezone=timezone,
            text_within_s=within_s,
            poll_s=poll_s,
            pgsql=pgsql,
        )

    def pgsql(
        self, node: yaml.Node, key: str, store_on_postgresql: bool | None = None
    ) -> tuple[CelPgsqlConfig, str | None]:
        """`pgsql:` (empty: table `cel` in the store's database) and its time zone."""
        section = self.r.mapping(node, key, _PGSQL_KEYS) or {}
        if "url" not in section and store_on_postgresql is False:
            self.r.problem(node, key, "the store is SQLite, so name cel_pgsql's database: give url")
        table = "cel"
        if "table" in section:
            name = self.r.non_empty(section["table"], join(key, "table"), "a table name") or table
            if table_name_ok(name) and name != name.lower():  # cel_pgsql's INSERT names it unquoted: folded
                self.r.problem(section["table"], join(key, "table"), f"{shown(name)}: use lower case (cel_pgsql does)")
            elif table_name_ok(name):
                table = name
            else:
                self.r.problem(
                    section["table"], join(key, "table"), f"{shown(name)} is not a table name (letters, digits, _)"
                )
        url: str | None = None
        if "url" in section:
            url = self.r.non_empty(section["url"], join(key, "url"), "a database URL (postgresql://user@host/database)")
            try:
                if url is not None:
                    if engine_of(url) != "postgresql":
                        raise UrlError("cel_pgsql writes to PostgreSQL: give a postgresql://user@host/database URL")
                    check_postgresql(url)
            except UrlError as exc:
                self.r.problem(section["url"], join(key, "url"), str(exc))
                url = None
        timezone = self.r.timezone(section["timezone"], join(key, "timezone")) if "timezone" in section else None
        return CelPgsqlConfig(table=table, url=url), timezone
