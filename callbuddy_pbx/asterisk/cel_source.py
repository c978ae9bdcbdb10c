"""Where CEL rows come from: `CelSource` is what the reconciler needs of a source, `open_cel_source` picks the one
the configuration names (cel_sqlite3_custom's SQLite file, or cel_pgsql's PostgreSQL table)."""

from __future__ import annotations

from typing import Protocol

from callbuddy_pbx.asterisk.cel import CelRow
from callbuddy_pbx.asterisk.cel_sqlite import CelProbe, CelSourceError, CelSqlite
from callbuddy_pbx.config.cel import CelConfig

__all__ = ["CelProbe", "CelSource", "CelSourceError", "open_cel_source"]


class CelSource(Protocol):
    """One table of CEL rows numbered by an id in Asterisk's order. Blocking calls (run them in a thread); a source
    that cannot be read raises CelSourceError (the reconciler waits and tries again), never crashes the service."""

    @property
    def name(self) -> str:
        """How progress through this source is keyed in the service's own database (no password in it)."""
        ...

    def last_id(self) -> int:
        """The newest row's id (0 for an empty table)."""
        ...

    def rows(self, after_id: int, up_to_id: int) -> list[CelRow]:
        """The rows with after_id < id <= up_to_id, in id order."""
        ...

    def probe(self) -> CelProbe:
        """How many rows there are and what the newest says (for `check`)."""
        ...

    def close(self) -> None: ...


def open_cel_source(config: CelConfig, database_url: str | None) -> CelSource:
    """The source `config` names; `database_url` is the store's `storage.url` (None on SQLite), the database of a
    `pgsql:` section that gives no URL of its own. Connects lazily: an outage shows on the first read, not here.
    ValueError when no source is configured; CelSourceError when a pgsql section has no database to read."""
    if config.pgsql is not None:
        url = config.pgsql.url or database_url
        if url is None:
            raise CelSourceError(
                "CEL from cel_pgsql: no database to read its table from: give the `pgsql:` section a url"
                " (the store is SQLite, so storage.url cannot serve)"
            )
        # psycopg is loaded by PostgreSQL installations only
        from callbuddy_pbx.asterisk.cel_pgsql import CelPgsql

        return CelPgsql(config, url)
    return CelSqlite(config)
