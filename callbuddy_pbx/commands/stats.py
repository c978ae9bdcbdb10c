"""`callbuddy-pbx stats`: how missed calls were recovered (texted, delivered, replied, clicked, called back, got
back) over a period."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
import time
import zoneinfo
from datetime import datetime

from callbuddy_pbx.commands.display import format_table
from callbuddy_pbx.commands.storage import open_configured, storage_of
from callbuddy_pbx.config import load_config
from callbuddy_pbx.periods import parse_since
from callbuddy_pbx.store import CallStore, StoreError
from callbuddy_pbx.store.stats import WEEKDAYS, RecoveryStats, recovery_stats
from callbuddy_pbx.untrusted import printable

PROG = "callbuddy-pbx stats"
DEFAULT_SINCE = "7d"


def main(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since)
        until = time.time() if args.until is None else parse_since(args.until)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if until < since:
        print(f"{PROG}: --until is before --since", file=sys.stderr)
        return 2
    try:
        zoneinfo.ZoneInfo(args.tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        print(
            f"{PROG}: --tz: {printable(args.tz, 40)!r} is not a known time zone (e.g. UTC, Europe/London)",
            file=sys.stderr,
        )
        return 2
    try:
        figures = asyncio.run(_fetch(args, since, until, args.business, args.tz, configured_businesses(args)))
    except UnknownBusiness as exc:
        print(f"{PROG}: --business: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"{PROG}: {exc} (give --db, or --config of the service that records the calls)", file=sys.stderr)
        return 1
    print(json.dumps(figures.to_dict()) if args.json else render(figures))
    return 0


class UnknownBusiness(Exception):
    """--business names no business: said, with the closest name, rather than a page of zeros."""


def configured_businesses(args: argparse.Namespace) -> list[str] | None:
    """The businesses of --config (None without one: the database's own are the ones known)."""
    return [business.name for business in load_config(args.config).businesses] if args.config else None


async def _recorded_businesses(store: CallStore) -> list[str]:
    async with store.connection.execute("SELECT DISTINCT business FROM calls WHERE business IS NOT NULL") as cursor:
        return sorted(str(row[0]) for row in await cursor.fetchall())


async def _fetch(
    args: argparse.Namespace, since: float, until: float, business: str | None, tz: str, known: list[str] | None = None
) -> RecoveryStats:
    async with await open_configured(storage_of(args), create=False) as store:
        if business is not None:
            where = "configured"
            if known is None:  # no --config: the businesses the calls were recorded for (none yet: no check)
                where = "in the database"
                known = await _recorded_businesses(store) or None
            if known is not None and business not in known:
                close = difflib.get_close_matches(business, known, n=1, cutoff=0.6)
                names = close or known
                hint = ("did you mean " if close else "known: ") + ", ".join(repr(printable(n, 40)) for n in names)
                hint += "?" if close else ""
                raise UnknownBusiness(f"{printable(business, 40)!r} is not a business {where} ({hint})")
        return await recovery_stats(store, since=since, until=until, business=business, timezone=tz)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def render(s: RecoveryStats) -> str:
    zone = zoneinfo.ZoneInfo(s.timezone)
    period = " to ".join(datetime.fromtimestamp(t, tz=zone).strftime("%Y-%m-%d %H:%M") for t in (s.since, s.until))
    lines = [
        f"Recovery for {printable(s.business, 40) if s.business else 'all businesses'}, {period} ({s.timezone})",
        "",
        f"Inbound calls {s.calls}: answered {s.answered}, missed {s.missed}",
    ]
    if s.missed_by_outcome:
        lines.append("Missed by outcome: " + ", ".join(f"{k} {v}" for k, v in s.missed_by_outcome.items()))
    lines += ["", "Funnel (share of missed calls):"]
    funnel: list[tuple[str, ...]] = [("Step", "Calls", "Share")]
    funnel += [(name, str(count), _pct(pct)) for name, count, pct in s.funnel()]
    lines += ["  " + line for line in format_table(funnel, right_aligned={1, 2}).splitlines()]
    lines += [
        "",
        f"Got back {s.recovered}: "
        + ", ".join(f"{how} {n}" for how, n in s.recovered_by.items())
        + f"; median time to get back {_seconds(s.recovery_median_s)}",
        f"Failed texts {s.failed}, opted out {s.opted_out}, replies {s.replies}",
        f"Hang-up to text sent: median {_seconds(s.latency_median_s)}, p95 {_seconds(s.latency_p95_s)}"
        f" ({s.latency_samples} texts)",
    ]
    if s.missed:
        busiest = [f"{hour:02d}h {count}" for hour, count in enumerate(s.missed_by_hour) if count]
        lines.append("Missed by hour: " + ", ".join(busiest))
        lines.append(
            "Missed by weekday: " + ", ".join(f"{d} {c}" for d, c in zip(WEEKDAYS, s.missed_by_weekday, strict=True))
        )
    return "\n".join(lines)
