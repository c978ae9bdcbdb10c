"""`callbuddy-pbx migrate`: brings the configured store (SQLite or PostgreSQL) to this version's schema and prints
its version; with --from-sqlite PATH, copies every table of an SQLite store into it (the move to PostgreSQL)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from callbuddy_pbx.commands.storage import open_configured
from callbuddy_pbx.config import StorageConfig, load_config
from callbuddy_pbx.store import SCHEMA_VERSION, CallStore, StoreError

PROG = "callbuddy-pbx migrate"


def main(args: argparse.Namespace) -> int:
    storage = load_config(args.config).storage if args.config else StorageConfig()
    try:
        if args.from_sqlite:
            return asyncio.run(_copy(Path(args.from_sqlite), storage, replace=args.replace))
        if args.replace:
            print(f"{PROG}: --replace goes with --from-sqlite", file=sys.stderr)
            return 2
        return asyncio.run(_migrate(storage))
    except StoreError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a folder SQLite cannot write, a socket refused before the driver's own error
        print(f"{PROG}: {storage.shown}: {exc.strerror or exc}", file=sys.stderr)
        return 1


async def _migrate(storage: StorageConfig) -> int:
    async with await open_configured(storage) as store:
        before = store.schema_before
    change = f"migrated from {before}" if before < SCHEMA_VERSION else "already up to date"
    print(f"{storage.shown}: schema version {SCHEMA_VERSION} ({change})")
    return 0


async def _copy(path: Path, storage: StorageConfig, *, replace: bool) -> int:
    from callbuddy_pbx.store.pg_copy import copy_sqlite_into  # psycopg only when there is a PostgreSQL store

    if storage.url is None:
        print(f"{PROG}: --from-sqlite copies into a PostgreSQL store: set storage.url in --config", file=sys.stderr)
        return 2
    # The file is brought to this version's schema first (as `run` would), so both sides have the same tables.
    async with await CallStore.open(path, create=False) as source, await open_configured(storage) as target:
        copied = await copy_sqlite_into(source, target, replace=replace)
    for table in copied:
        print(f"{table.table}: {table.rows} rows")
    print(f"copied {sum(t.rows for t in copied)} rows in {len(copied)} tables from {path} to {storage.shown}")
    return 0
