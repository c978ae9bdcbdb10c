"""Reconciliation from CEL after a restart: a 1-hour gap at 10 calls/s (36,000 calls of the recorded shapes).

The CEL table is filled from the real recordings in ../shared/traces/asterisk-cel (every scenario's rows, repeated
with fresh Linkedids and times). A service that last read CEL before the gap starts: one sweep reads the rows, judges
every call and hands it to the store writer; then the writer stores them (without text-back). Meanwhile a ticker
measures how long the event loop was held at most (live AMI events wait that long).

    python bench/reconcile.py [--calls 36000] [--rate 10]

Prints one summary line: `reconcile calls=N seconds=X ...` (X: read + judge; target < 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from callbuddy_pbx.asterisk.cel_sqlite import CelSqlite
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.config import CelConfig
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.service.cel_reconcile import CelReconciler
from callbuddy_pbx.store.db import CallStore

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces" / "asterisk-cel"


def recorded_calls() -> list[tuple[list[tuple[object, ...]], bool]]:
    """Each recorded call's rows (without AcctId), and whether it is an inbound call."""
    calls = []
    for folder in sorted(TRACES.iterdir()):
        if not (folder / "master.db").exists():
            continue
        with sqlite3.connect(folder / "master.db") as conn:
            rows = conn.execute("SELECT * FROM cel ORDER BY AcctId").fetchall()
        conn.close()
        by_call: dict[str, list[tuple[object, ...]]] = {}
        for row in rows:
            by_call.setdefault(str(row[16]), []).append(row[1:])
        calls += [(call, not folder.name.startswith(("15-", "16-"))) for call in by_call.values()]
    return calls


def gap_rows(calls: int, rate: float, start: float) -> Iterator[tuple[object, ...]]:
    """`calls` calls of the recorded shapes, one every 1/rate s, each with its own ids and times."""
    shapes = recorded_calls()
    for n in range(calls):
        rows, _ = shapes[n % len(shapes)]
        first = float(str(rows[0][1]))
        ids: dict[str, str] = {}
        for row in rows:
            values = list(row)
            values[1] = f"{start + n / rate + float(str(values[1])) - first:.6f}"
            for column in (14, 15):  # uniqueid, linkedid
                old = str(values[column])
                values[column] = ids.setdefault(old, f"{int(start) + n}.{len(ids)}")
            yield tuple(values)


async def ticker(stalls: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.005)
        stalls.append(loop.time() - before - 0.005)


async def measure(calls: int, rate: float, folder: Path) -> None:
    cel_path = folder / "master.db"
    with sqlite3.connect(cel_path) as conn:
        ddl = sqlite3.connect(next(TRACES.glob("*/master.db"))).execute(
            "SELECT sql FROM sqlite_master WHERE name = 'cel'"
        )
        conn.execute(ddl.fetchone()[0])
        conn.executemany(
            f"INSERT INTO cel VALUES (NULL, {', '.join('?' * 21)})", gap_rows(calls, rate, time.time() - 3600)
        )
        rows = conn.execute("SELECT max(rowid) FROM cel").fetchone()[0]
    conn.close()
    config = CelConfig(sqlite=cel_path, timezone="UTC")
    source = CelSqlite(config)
    store = await CallStore.open(folder / "calls.sqlite3")
    await store.set_cel_progress(source.name, 0, time.time())  # the service last read CEL just before the gap
    judged: list[CallRecord] = []
    reconciler = CelReconciler(
        config, source, InboundMatcher(), store, submit=judged.append, followed=lambda linkedid: False
    )
    stalls: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(stalls, stop))
    began = time.perf_counter()
    await reconciler.sweep()
    seconds = time.perf_counter() - began
    stop.set()
    await tick
    began = time.perf_counter()
    for start in range(0, len(judged), 1000):
        await store.save_calls(judged[start : start + 1000])
    stored_s = time.perf_counter() - began
    inbound = sum(1 for n in range(calls) if recorded_calls_cache[n % len(recorded_calls_cache)][1])
    await store.close()
    source.close()
    if len(judged) != inbound:
        print(f"judged {len(judged)} calls, expected {inbound}", file=sys.stderr)
    print(
        f"reconcile calls={calls} seconds={seconds:.2f} rows={rows} judged={len(judged)}"
        f" calls_per_s={calls / seconds:,.0f} max_stall_ms={max(stalls, default=0) * 1000:.0f}"
        f" store_seconds={stored_s:.2f}"
    )


recorded_calls_cache = recorded_calls()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=36_000)
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second in the gap")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(measure(args.calls, args.rate, Path(folder)))


if __name__ == "__main__":
    main()
