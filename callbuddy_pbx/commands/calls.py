"""`callbuddy-pbx calls`: list recorded calls, newest first, as an aligned table or as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime

from callbuddy_pbx.commands.display import format_table
from callbuddy_pbx.commands.storage import open_configured, storage_of
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.periods import parse_since
from callbuddy_pbx.phone import is_withheld
from callbuddy_pbx.serialize import call_to_dict
from callbuddy_pbx.store import StoreError
from callbuddy_pbx.untrusted import printable

PROG = "callbuddy-pbx calls"
NAME_WIDTH = 40  # caller names are free text from the phone network


def main(args: argparse.Namespace) -> int:
    since: float | None = None
    if args.since is not None:
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
    if args.limit < 1:
        print(f"{PROG}: --limit must be at least 1, not {args.limit}", file=sys.stderr)
        return 2
    try:
        records = asyncio.run(_fetch(args, missed_only=args.missed, since=since, limit=args.limit))
    except StoreError as exc:
        print(f"{PROG}: {exc} (give --db, or --config of the service that records the calls)", file=sys.stderr)
        return 1
    if not records:
        # With --json, stdout stays valid JSON lines (none); the note goes to stderr.
        print("No calls match.", file=sys.stderr if args.json else sys.stdout)
    elif args.json:
        for record in records:
            print(json.dumps(call_to_dict(record)))  # ensure_ascii: every non-ASCII character escaped, terminal-safe
    else:
        print(render_table(records))
    return 0


async def _fetch(args: argparse.Namespace, *, missed_only: bool, since: float | None, limit: int) -> list[CallRecord]:
    async with await open_configured(storage_of(args), create=False) as store:
        return await store.list_calls(missed_only=missed_only, since=since, limit=limit)


def caller_shown(record: CallRecord) -> str:
    if record.caller:
        return record.caller
    if is_withheld(record.caller_raw):
        return "withheld"
    return printable(record.caller_raw, 20)  # not a phone number (e.g. an extension): shown as given, escaped


def ring_seconds(record: CallRecord) -> float | None:
    """How long devices rang: until someone answered, or until the call ended."""
    if record.ring_at is None:
        return None
    until = record.ended_at if record.answered_at is None else record.answered_at
    return max(0.0, until - record.ring_at)


def render_table(records: Sequence[CallRecord]) -> str:
    header = ("Ended", "Business", "DID", "Caller", "Caller name", "Outcome", "Answered by", "Ring s", "Duration s")
    right_aligned = {7, 8}
    rows: list[tuple[str, ...]] = [header]
    for record in records:
        ring = ring_seconds(record)
        rows.append(
            (
                datetime.fromtimestamp(record.ended_at).strftime("%Y-%m-%d %H:%M:%S"),
                printable(record.business or "-", 30),
                printable(record.did, 20),
                caller_shown(record),
                printable(record.caller_name or "", NAME_WIDTH) or "-",
                record.outcome.value,
                printable(record.answered_by or "-", 30),
                "-" if ring is None else f"{ring:.0f}",
                f"{record.duration_s:.0f}",
            )
        )
    return format_table(rows, right_aligned)
