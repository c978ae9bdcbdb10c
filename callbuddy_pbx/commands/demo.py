"""`callbuddy-pbx demo`: the real service against a simulated Asterisk that places scripted calls.

Everything but the PBX is the production path: AMI over TCP, the call tracker, the SQLite store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import secrets
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from callbuddy_pbx.app import CallService
from callbuddy_pbx.commands.calls import caller_shown
from callbuddy_pbx.commands.display import printable
from callbuddy_pbx.config import default_config
from callbuddy_pbx.logs import setup_logging
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.scenarios import ScenarioFactory, mixed_call_stream, stream_events
from callbuddy_pbx.store.db import CallStore

log = logging.getLogger(__name__)


def describe(record: CallRecord) -> str:
    when = datetime.fromtimestamp(record.ended_at).strftime("%H:%M:%S")
    name = printable(record.caller_name or "", 24)
    verdict = f"answered by {record.answered_by}" if not record.missed else f"MISSED ({record.outcome.value})"
    return f"{when}  {caller_shown(record):<14} {name:<24} -> {record.did:<13} {verdict}"


async def run_demo(data_dir: Path, calls: int, speed: float) -> int:
    secret = secrets.token_urlsafe(12)
    server = SimulatedAmiServer(secret=secret)
    await server.start()
    base = default_config(data_dir)
    config = dataclasses.replace(
        base, asterisk=dataclasses.replace(base.asterisk, port=server.port, secret=secret, reconnect_max_s=2.0)
    )
    store = await CallStore.open(config.storage.path)
    seen: list[CallRecord] = []
    expected = calls  # lowered to the number of inbound calls once the scenarios are drawn
    all_seen = asyncio.Event()

    def show(record: CallRecord) -> None:
        seen.append(record)
        print(describe(record), flush=True)
        if len(seen) >= expected:
            all_seen.set()

    service = CallService(config, store, on_call=show)
    task = asyncio.create_task(service.run())
    print(f"simulated Asterisk AMI on 127.0.0.1:{server.port}; calls are stored in {config.storage.path}")
    print(f"placing {calls} calls, {speed:g}x faster than real time (Ctrl-C to stop)\n", flush=True)
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        factory = ScenarioFactory(start_time=time.time(), timestamps=True)
        scenarios = list(mixed_call_stream(calls, seed=int(time.time()), calls_per_second=0.4, factory=factory))
        expected = sum(1 for s in scenarios if s.expected_outcome is not None)
        started = time.monotonic()
        for event in stream_events(scenarios):
            delay = event.at / speed - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            await server.broadcast([event.message])
        if len(seen) < expected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_seen.wait(), 10)
    finally:
        await service.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stored = await store.count_calls()
        await store.close()
        await server.stop()
    outcomes = Counter(r.outcome.value for r in seen)
    missed = sum(1 for r in seen if r.missed)
    by_outcome = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    print(f"\n{len(seen)} inbound calls, {missed} missed: {by_outcome}")
    print(f"{stored} calls in {config.storage.path}; list them with:")
    print(f"  callbuddy-pbx calls --db {config.storage.path} --missed")
    return 0 if len(seen) == expected else 1


def main(args: argparse.Namespace) -> int:
    if args.calls < 1 or args.speed <= 0:
        print("callbuddy-pbx demo: --calls must be at least 1 and --speed positive", file=sys.stderr)
        return 2
    setup_logging("WARNING")
    try:
        return asyncio.run(run_demo(Path(args.data_dir), args.calls, args.speed))
    except KeyboardInterrupt:
        return 130
