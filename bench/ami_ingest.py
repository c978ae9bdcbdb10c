"""AMI ingest benchmark: events/s through (a) our AMI client, (b) client + tracker + SQLite store, (c) panoramisk.

The stream is the real Asterisk recordings (../shared/traces/asterisk/*/ami.raw, as recorded: VarSet, Newexten, CEL
and all), repeated with fresh Uniqueid/Linkedid/channel/bridge ids until it holds --events events, sent over loopback
TCP by the simulated AMI server. Memory: peak RSS of a fresh process that pushes N scripted calls through the tracker.

    python bench/ami_ingest.py [--events 200000] [--rss-calls 100000,1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from callbuddy_pbx.asterisk.ami import AmiClient
from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.config import AsteriskConfig, Config, StorageConfig
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.store.db import CallStore

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces" / "asterisk"
SECRET = "bench-secret"

_ID = re.compile(rb"\b(1795\d{6})\.(\d+)\b")
_CHAN = re.compile(rb"-([0-9a-f]{8})(?=[;\r\n ])")
_UUID = re.compile(rb"\b([0-9a-f]{8})-([0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")


def recorded_calls() -> list[tuple[bytes, int, int]]:
    """(events after the login preamble, event count, inbound calls) for each recording."""
    result = []
    for folder in sorted(TRACES.iterdir()):
        raw_path, meta_path = folder / "ami.raw", folder / "meta.json"
        if not raw_path.exists() or not meta_path.exists():
            continue
        meta = json.loads(meta_path.read_text())
        blocks = raw_path.read_bytes().split(b"\r\n\r\n")
        body = [b for b in blocks[1:] if b.strip() and not b.startswith((b"Event: FullyBooted", b"Event: Shutdown"))]
        body = [b for b in body if not b.startswith(b"Event: SuccessfulAuth") or b"AMI" not in b]
        inbound = len(meta.get("calls") or []) if meta.get("expected_inbound") is not False else 0
        result.append((b"".join(b + b"\r\n\r\n" for b in body), len(body), inbound))
    return result


def build_stream(target_events: int) -> tuple[bytes, int, int]:
    """Repeat the recordings with fresh ids until `target_events`; returns (bytes, events, inbound calls)."""
    templates = recorded_calls()
    counter = itertools.count(1)
    parts: list[bytes] = []
    events = calls = 0
    for copy in itertools.count():
        for data, count, inbound in templates:
            ids: dict[bytes, bytes] = {}
            chans: dict[bytes, bytes] = {}

            def new_id(m: re.Match[bytes], ids: dict[bytes, bytes] = ids) -> bytes:
                return ids.setdefault(m.group(0), b"1800000000.%d" % next(counter))

            def new_chan(m: re.Match[bytes], chans: dict[bytes, bytes] = chans) -> bytes:
                return chans.setdefault(m.group(1), b"-%08x" % (next(counter) & 0xFFFFFFFF))

            fresh = _ID.sub(new_id, data)
            fresh = _CHAN.sub(new_chan, fresh)
            fresh = _UUID.sub(lambda m, c=copy: b"%08x-" % c + m.group(2), fresh)
            parts.append(fresh)
            events += count
            calls += inbound
            if events >= target_events:
                return b"".join(parts), events, calls
    raise AssertionError("unreachable")


async def bench_client(stream: bytes, events: int) -> float:
    server = SimulatedAmiServer(secret=SECRET, track_channels=False)
    await server.start()
    done = asyncio.Event()
    seen = 0

    def on_event(message: AmiMessage, received_at: float) -> None:
        nonlocal seen
        seen += 1
        if seen >= events:
            done.set()

    client = AmiClient(AsteriskConfig(port=server.port, secret=SECRET, ping_interval_s=60), on_event=on_event)
    await client.connect()
    seen = 0
    start = time.perf_counter()
    await server.broadcast(stream)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - start
    await client.close()
    await server.stop()
    return events / elapsed


async def bench_pipeline(stream: bytes, events: int, calls: int) -> float:
    server = SimulatedAmiServer(secret=SECRET, track_channels=False)
    await server.start()
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(
            asterisk=AsteriskConfig(port=server.port, secret=SECRET, ping_interval_s=60),
            storage=StorageConfig(Path(tmp) / "bench.sqlite3"),
        )
        store = await CallStore.open(config.storage.path)
        service = CallService(config, store)
        task = asyncio.create_task(service.run())
        while not service.ami.connected:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        await server.broadcast(stream)
        deadline = time.monotonic() + 120
        while service.calls_stored < calls and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - start
        stored = await store.count_calls()
        await service.stop()
        await task
        await store.close()
    await server.stop()
    if stored != calls:
        print(f"pipeline: stored {stored} calls, expected {calls}", file=sys.stderr)
    return events / elapsed


async def bench_panoramisk(stream: bytes, events: int) -> float:
    try:
        from panoramisk import Manager  # type: ignore[import-untyped]
    except ImportError:
        print("panoramisk not installed (pip install -e '.[bench]'); skipping the reference", file=sys.stderr)
        return 0.0
    server = SimulatedAmiServer(secret=SECRET, track_channels=False)
    await server.start()
    done = asyncio.Event()
    seen = 0

    def on_event(manager: object, message: object) -> None:
        nonlocal seen
        seen += 1
        if seen >= events:
            done.set()

    manager = Manager(host="127.0.0.1", port=server.port, username="callbuddy", secret=SECRET, ping_delay=60)
    manager.register_event("*", on_event)
    await manager.connect()
    await asyncio.sleep(0.2)  # login and its FullyBooted/SuccessfulAuth
    seen = 0
    start = time.perf_counter()
    await server.broadcast(stream)
    try:
        await asyncio.wait_for(done.wait(), 120)
    except TimeoutError:
        print(f"panoramisk: only {seen}/{events} events arrived", file=sys.stderr)
    elapsed = time.perf_counter() - start
    manager.close()
    await server.stop()
    return seen / elapsed


def rss_child(calls: int) -> None:
    """In a fresh process: push `calls` scripted calls through the tracker, print peak RSS in MB."""
    from callbuddy_pbx.asterisk.inbound import InboundMatcher
    from callbuddy_pbx.asterisk.tracker import CallTracker

    tracker = CallTracker(InboundMatcher())
    finished = 0
    for n in range(calls):
        caller = {"Channel": f"PJSIP/trunk-{n:08x}", "Uniqueid": f"1.{n}", "Linkedid": f"1.{n}"}
        desk = {"Channel": f"PJSIP/100-{n:08x}", "Uniqueid": f"2.{n}", "Linkedid": f"1.{n}"}
        dial = {**caller, "DestChannel": desk["Channel"], "DestUniqueid": desk["Uniqueid"], "DestLinkedid": f"1.{n}"}
        t = float(n)
        for event in (
            {"Event": "Newchannel", **caller, "ChannelState": "4", "CallerIDNum": "15557654321",
             "Context": "from-trunk", "Exten": "15550001000"},
            {"Event": "Newchannel", **desk, "ChannelState": "0", "Context": "from-internal", "Exten": "s"},
            {"Event": "DialBegin", **dial, "DialString": "100"},
            {"Event": "Newstate", **desk, "ChannelState": "5"},
            {"Event": "DialEnd", **dial, "DialStatus": "NOANSWER" if n % 2 else "ANSWER"},
            {"Event": "Hangup", **desk, "Cause": "16"},
            {"Event": "Hangup", **caller, "Cause": "16"},
        ):  # fmt: skip
            finished += len(tracker.feed(event, t))
    assert finished == calls, (finished, calls)
    # VmHWM, not ru_maxrss: ru_maxrss survives exec and would report the parent's peak
    status = Path("/proc/self/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    print(hwm_kb / 1024)


def peak_rss_mb(calls: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(calls)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rss-calls", default="100000,1000000")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return

    stream, events, calls = build_stream(args.events)
    print(f"stream: {events} events, {calls} inbound calls, {len(stream) / 1e6:.1f} MB (real recordings, repeated)")
    client_eps = asyncio.run(bench_client(stream, events))
    print(f"(a) AMI client alone:        {client_eps:>10,.0f} events/s")
    pipeline_eps = asyncio.run(bench_pipeline(stream, events, calls))
    print(f"(b) client+tracker+store:    {pipeline_eps:>10,.0f} events/s")
    panoramisk_eps = asyncio.run(bench_panoramisk(stream, events))
    print(f"(c) panoramisk 1.4:          {panoramisk_eps:>10,.0f} events/s")
    ratio = client_eps / panoramisk_eps if panoramisk_eps else 0.0
    print(f"ratio (a)/(c): {ratio:.2f}x")
    small, large = (int(x) for x in args.rss_calls.split(","))
    rss_small, rss_large = peak_rss_mb(small), peak_rss_mb(large)
    print(f"peak RSS, tracker: {small:,} calls {rss_small:.1f} MB; {large:,} calls {rss_large:.1f} MB")
    print(
        f"ami_ingest client_eps={client_eps:.0f} pipeline_eps={pipeline_eps:.0f} panoramisk_eps={panoramisk_eps:.0f}"
        f" ratio={ratio:.2f} rss_100k_mb={rss_small:.1f} rss_1m_mb={rss_large:.1f}"
    )


if __name__ == "__main__":
    main()
