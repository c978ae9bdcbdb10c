"""`callbuddy-pbx messages`: the texts sent (or waiting) and what became of them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from datetime import datetime

from callbuddy_pbx.commands.display import format_table
from callbuddy_pbx.commands.storage import open_configured, storage_of
from callbuddy_pbx.store import StoreError
from callbuddy_pbx.store.messages import MessageStore, OutboxRow
from callbuddy_pbx.untrusted import printable

PROG = "callbuddy-pbx messages"


def main(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print(f"{PROG}: --limit must be at least 1, not {args.limit}", file=sys.stderr)
        return 2
    try:
        rows = asyncio.run(_fetch(args, state=args.state, limit=args.limit))
    except StoreError as exc:
        print(f"{PROG}: {exc} (give --db, or --config of the service that sends the texts)", file=sys.stderr)
        return 1
    if not rows:
        print("No texts match.", file=sys.stderr if args.json else sys.stdout)
    elif args.json:
        for row in rows:
            print(json.dumps(asdict(row)))
    else:
        print(render_table(rows))
    return 0


async def _fetch(args: argparse.Namespace, *, state: str | None, limit: int) -> list[OutboxRow]:
    async with await open_configured(storage_of(args), create=False) as store:
        return await MessageStore(store).list_messages(limit=limit, state=state)


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def render_table(rows: list[OutboxRow]) -> str:
    table: list[tuple[str, ...]] = [("Queued", "To", "Business", "State", "Tries", "Sent", "Done", "Error", "Text")]
    for row in rows:
        table.append(
            (
                _when(row.created_at),
                row.to,
                printable(row.business or "-", 24),
                row.state,
                str(row.attempts),
                _when(row.sent_at),
                _when(row.done_at),
                printable(row.error or "-", 40),
                printable(row.body, 50),
            )
        )
    return format_table(table, right_aligned={4})
