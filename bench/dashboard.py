"""Dashboard benchmark: the overview (/, every business, 30 days) and the feed (/calls, first page) over 100,000 calls.

A temporary SQLite database (the real schema, migrated by CallStore.open) is filled in one transaction with a
realistic mix: three businesses and some calls without one, ~30% missed, two legs a call, a text for most missed
calls (delivered, sent, failed, queued, cancelled), booking-link clicks on some, opt-outs and replies. The pages are
rendered through the aiohttp app with an admin viewer, several times each; the median is reported.

    python bench/dashboard.py [--calls 100000] [--days 60] [--runs 9]

Ends with one line: `dashboard calls=N overview_ms=X feed_ms=X`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.config import Business, WebUser
from callbuddy_pbx.model import Outcome
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.dashboard import dashboard_routes
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.viewer import ADMIN, CSRF_KEY, VIEWER_KEY, Viewer

BUSINESSES = (
    Business("Glow Salon", ("+15550001000",), timezone="America/New_York"),
    Business("Bolt Garage", ("+15550002000",), timezone="America/New_York"),
    Business("Tidy Dental", ("+15550003000",), timezone="America/Chicago"),
)
NOW = 1_710_516_600.0  # 15 March 2024 15:30 UTC
MISSED = [o.value for o in Outcome if o.missed]
# A missed call's text: (state, weight); "none" = the policy sent nothing (quiet hours, a repeat caller...).
TEXT_FATES = (("delivered", 60), ("sent", 8), ("failed", 8), ("expired", 2), ("queued", 3), ("cancelled", 5),
              ("none", 14))  # fmt: skip


def fill(path: Path, calls: int, days: int, seed: int = 1) -> None:
    """Insert everything in one transaction with plain sqlite3 (the schema is already there)."""
    rng = random.Random(seed)
    states, weights = zip(*TEXT_FATES, strict=True)
    call_rows, leg_rows, decisions, texts, tokens, clicks = [], [], [], [], [], []
    for n in range(calls):
        business = rng.choice([b.name for b in BUSINESSES] * 3 + [None])
        ended = NOW - rng.random() * days * 86400
        missed = rng.random() < 0.3
        outcome = rng.choice(MISSED) if missed else "answered"
        linkedid = f"{int(ended)}.{n}"
        caller = f"+1555{rng.randrange(10**7):07d}" if rng.random() > 0.03 else None
        call_rows.append((linkedid, business, "+15550001000", caller, caller or "anonymous", f"Caller {n}", outcome,
                          int(missed), None if missed else "PJSIP/101", ended - 45, ended - 40,
                          None if missed else ended - 25, ended, 16, 1, ended + 0.5))  # fmt: skip
        for seq in range(2):
            answered = int(not missed and seq == 0)
            leg_rows.append((linkedid, seq, f"PJSIP/10{seq}-{n:08x}", f"PJSIP/10{seq}",
                             "ANSWER" if answered else "NOANSWER", 16, answered, ended - 40, ended))  # fmt: skip
        if not missed or business is None:
            continue
        state = rng.choices(states, weights)[0]
        decisions.append((linkedid, int(state != "none"), "bench", ended))
        if state == "none":
            continue
        sent = ended + rng.uniform(2, 30) if state in ("delivered", "sent", "failed", "expired") else None
        done = sent + rng.uniform(1, 20) if sent is not None and state != "sent" else None
        updated = done or sent or ended + 1
        texts.append((linkedid, "missed_call", linkedid, business, caller or "+15550000000", "+15550001000", "sim",
                      "Sorry we missed your call", state, 1, ended + 1, ended + 1, updated, sent, done,
                      f"m-{n}" if sent else None, "rejected" if state == "failed" else None))  # fmt: skip
        if sent is not None:
            token = f"t{n:010d}"
            tokens.append((token, linkedid, business, "https://book.example", sent))
            if state == "delivered" and rng.random() < 0.2:
                clicks += [(token, sent + 60 * k, "Mozilla/5.0") for k in range(rng.choice([1, 1, 2, 3]))]
    opt_outs = [(f"+1444{k:07d}", rng.choice(BUSINESSES).name, 1, NOW - rng.random() * days * 86400)
                for k in range(calls // 200)]  # fmt: skip
    replies = [("sim", f"+1444{k:07d}", "+15550001000", rng.choice(BUSINESSES).name, "thanks", "other",
                NOW - rng.random() * days * 86400) for k in range(calls // 100)]  # fmt: skip

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO calls VALUES (" + ",".join("?" * 16) + ")", call_rows)
        conn.executemany("INSERT INTO call_legs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", leg_rows)
        conn.executemany("INSERT INTO text_decisions VALUES (?, ?, ?, ?)", decisions)
        conn.executemany(
            "INSERT INTO messages (key, kind, linkedid, business, to_number, sender, gateway, body, state, attempts,"
            " send_at, created_at, updated_at, sent_at, done_at, message_id, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            texts,
        )
        conn.executemany("INSERT INTO link_tokens VALUES (?, ?, ?, ?, ?)", tokens)
        conn.executemany("INSERT INTO link_clicks (token, clicked_at, user_agent) VALUES (?, ?, ?)", clicks)
        conn.executemany("INSERT OR REPLACE INTO opt_outs VALUES (?, ?, ?, ?)", opt_outs)
        conn.executemany(
            "INSERT INTO inbound_messages (gateway, sender, to_number, business, body, keyword, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            replies,
        )
        conn.execute("COMMIT")  # no ANALYZE: the service never runs it, so neither does the benchmark
    finally:
        conn.close()
    print(f"{calls} calls, {len(texts)} texts, {len(clicks)} clicks over {days} days")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def as_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[VIEWER_KEY] = Viewer.of(WebUser("bench", "scrypt$x", ADMIN))
    request[CSRF_KEY] = "bench"
    return await handler(request)


async def timed(client: TestClient, path: str, runs: int) -> float:  # type: ignore[type-arg]
    """The median time of `runs` GETs of `path` (after one warm-up), in ms."""
    samples = []
    for n in range(runs + 1):
        start = time.perf_counter()
        response = await client.get(path)
        body = await response.read()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status}: {body[:300]!r}")
        if n:
            samples.append(elapsed)
    return statistics.median(samples)


async def measure(path: Path, runs: int) -> tuple[float, float]:
    async with await CallStore.open(path) as store:
        ctx = DashboardContext(store, BUSINESSES, None, lambda: (), lambda: None, "bench", clock=lambda: NOW)
        app = web.Application(middlewares=[as_admin])
        dashboard_routes(app, ctx)
        async with TestClient(TestServer(app)) as client:
            overview = await timed(client, "/?period=30d", runs)
            feed = await timed(client, "/calls", runs)
    return overview, feed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=60, help="spread the calls over this many days before now")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--compare-narrow", action="store_true", help="also time the same data with the indexes before schema 4"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callbuddy-bench-") as folder:
        path = Path(folder) / "calls.sqlite3"
        started = time.perf_counter()
        asyncio.run(_create(path))
        fill(path, args.calls, args.days)
        print(f"filled in {time.perf_counter() - started:.1f} s")
        overview, feed = asyncio.run(measure(path, args.runs))
        if args.compare_narrow:
            narrow_indexes(path)
            narrow_overview, narrow_feed = asyncio.run(measure(path, args.runs))
            print(
                f"with the narrow indexes: overview {narrow_overview:.1f} ms, feed {narrow_feed:.1f} ms; "
                f"the wide ones make the overview {narrow_overview / overview:.1f}x faster"
            )
    print(f"overview (/, all businesses, 30 days): median {overview:.1f} ms of {args.runs}")
    print(f"feed (/calls, first page): median {feed:.1f} ms of {args.runs}")
    print(f"dashboard calls={args.calls} overview_ms={overview:.1f} feed_ms={feed:.1f}")


# The indexes of schemas 1-3, before schema 4 widened them with the columns the overview reads.
NARROW_INDEXES = (
    ("calls_ended_at", "calls (ended_at)"),
    ("calls_missed_ended_at", "calls (missed, ended_at)"),
    ("messages_by_call", "messages (linkedid)"),
    ("link_tokens_by_call", "link_tokens (linkedid)"),
)


def narrow_indexes(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        for name, columns in NARROW_INDEXES:
            conn.execute(f"DROP INDEX {name}")
            conn.execute(f"CREATE INDEX {name} ON {columns}")


async def _create(path: Path) -> None:
    async with await CallStore.open(path):
        pass  # the schema, by the migrations


if __name__ == "__main__":
    main()
