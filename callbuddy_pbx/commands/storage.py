"""Opening the configured store, whichever engine: `storage.path` (SQLite) or `storage.url` (PostgreSQL), and a
`--db` given on the command line (a file, or a database URL)."""

from __future__ import annotations

import argparse
from pathlib import Path

from callbuddy_pbx.config import StorageConfig, load_config
from callbuddy_pbx.db_url import UrlError, check_postgresql, engine_of, sqlite_path
from callbuddy_pbx.store import CallStore, StoreError


async def open_configured(storage: StorageConfig, *, create: bool = True) -> CallStore:
    """The store `storage` names, its schema brought up to date (create=False: never a new empty one)."""
    if storage.url is not None:
        return await CallStore.open_url(storage.url, create=create)
    return await CallStore.open(storage.path, create=create)


def storage_of(args: argparse.Namespace) -> StorageConfig:
    """--db (a file, or a database URL), else the storage of --config, else the default file."""
    db = getattr(args, "db", None)
    if db:
        if "://" not in str(db):
            return StorageConfig(path=Path(db))
        try:
            if engine_of(db) == "sqlite":
                return StorageConfig(path=sqlite_path(db))
            check_postgresql(db)
        except UrlError as exc:
            raise StoreError(str(exc)) from None
        return StorageConfig(url=db)
    if getattr(args, "config", None):
        return load_config(args.config).storage
    return StorageConfig()
