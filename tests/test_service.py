"""The whole service over real TCP: simulated AMI server -> AMI client -> tracker -> SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callbuddy_pbx.config import AsteriskConfig, Config, StorageConfig
from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.store.db import CallStore
from tests.test_tracker_traces import assert_matches
from tests.traces import Trace, all_traces, drop_events
from tests.waiting import wait_until

TRACES = all_traces()


@dataclass
class Running:
    server: SimulatedAmiServer
    service: CallService
    store: CallStore
    calls: list[CallRecord]

    async def wait_for_calls(self, count: int, timeout: float = 5.0) -> list[CallRecord]:
        async with asyncio.timeout(timeout):
            while len(self.calls) < count:
                await asyncio.sleep(0.01)
        return self.calls

    async def wait_connected(self, connects: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not (self.service.ami.connected and self.service.ami.connects >= connects):
                await asyncio.sleep(0.01)

    async def caught_up(self) -> None:
        """The AMI client has handed the tracker every event the server wrote before a Ping's answer (one stream)."""
        await self.service.ami.action("Ping")

    async def settle(self, within: float = 5.0) -> None:
        """Wait until nothing more can come of what the server sent so far; only then is a count of calls final.

        In this order: every event sent so far was read (caught_up), the tracker holds no open call (none can be
        judged later), and every judged call went through the store writer (stored, then announced to on_call). A
        call stored or announced twice, late, is counted instead of slipping past a fixed sleep."""
        await self.caught_up()
        await wait_until(lambda: self.service.tracker.active_calls == 0, within)
        await asyncio.wait_for(self.service.wait_stored(), within)


@contextlib.asynccontextmanager
async def running_service(tmp_path: Path) -> AsyncIterator[Running]:
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    config = Config(
        asterisk=AsteriskConfig(
            port=server.port, secret="s3cret", reconnect_min_s=0.05, reconnect_max_s=0.2, ping_interval_s=5
        ),
        storage=StorageConfig(tmp_path / "calls.sqlite3"),
    )
    store = await CallStore.open(config.storage.path)
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append)
    task = asyncio.create_task(service.run())
    running = Running(server, service, store, calls)
    try:
        await running.wait_connected()
        yield running
    finally:
        await service.stop()
        await asyncio.wait_for(task, 5)
        await store.close()
        await server.stop()


@pytest.mark.parametrize("without_cel", [False, True], ids=["recorded", "no-CEL-Cdr"])
@pytest.mark.parametrize("trace", TRACES, ids=[t.name for t in TRACES])
async def test_every_trace_through_the_running_service(trace: Trace, without_cel: bool, tmp_path: Path) -> None:
    raw = drop_events(trace.raw, {"CEL", "Cdr"}) if without_cel else trace.raw
    async with running_service(tmp_path) as run:
        await run.server.replay_raw(raw)
        expected = len(trace.expected())
        records = await run.wait_for_calls(expected)
        await run.settle()  # nothing more may arrive: the count assert_matches checks is final
        assert_matches(trace, run.calls)
        stored = await run.store.list_calls()
        assert sorted(r.linkedid for r in stored) == sorted(r.linkedid for r in records)


def split_at(raw: bytes, marker: bytes, occurrence: int = 1) -> tuple[bytes, bytes]:
    """Split a recording just before the n-th message that contains `marker`."""
    index = -1
    for _ in range(occurrence):
        index = raw.index(marker, index + 1)
    start = raw.rindex(b"\r\n\r\n", 0, index) + 4
    return raw[:start], raw[start:]


def trace(name: str) -> Trace:
    return next(t for t in TRACES if t.name.startswith(name))


async def test_reconnect_mid_call_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """A finished call, then a drop while the next call rings: each call is stored exactly once, rightly judged."""
    answered, ringing = trace("03-answered").raw, trace("01-ring-no-answer").raw
    before, after = split_at(ringing, b"Event: DialEnd")
    async with running_service(tmp_path) as run:
        await run.server.replay_raw(answered)
        await run.wait_for_calls(1)
        await run.server.replay_raw(before)
        await run.caught_up()  # the client has seen the call ring before the drop
        assert run.service.tracker.active_calls == 1
        run.server.drop_clients()  # no Shutdown: like a crash or a cut cable
        await run.wait_connected(connects=2)
        await run.server.replay_raw(after)
        records = await run.wait_for_calls(2)
        await run.settle()
        assert [(r.outcome, r.observed_from_start) for r in records] == [
            (Outcome.ANSWERED, True),
            (Outcome.NO_ANSWER, True),  # still live at the reconnect, so nothing was missed
        ]
        assert await run.store.count_calls() == 2


async def test_a_call_that_ends_while_disconnected_is_stored_once_and_marked(tmp_path: Path) -> None:
    before, _ = split_at(trace("02-caller-hangs-up").raw, b"Event: HangupRequest")
    async with running_service(tmp_path) as run:
        await run.server.replay_raw(before)
        await run.caught_up()  # the client has seen the call ring before Asterisk goes
        assert run.service.tracker.active_calls == 1
        await run.server.shutdown_clients(restart=True)
        run.server.clear_channels()  # Asterisk restarted: every channel is gone
        (record,) = await run.wait_for_calls(1)
        assert record.observed_from_start is False
        assert record.missed
        await run.settle()
        assert len(run.calls) == 1
        assert await run.store.count_calls() == 1


async def test_calls_are_stored_while_the_next_ones_still_ring(tmp_path: Path) -> None:
    """Two overlapping calls (09): the first is in SQLite before the second has ended."""
    first_done, rest = split_at(trace("09-two-concurrent").raw, b"Event: Hangup\r\n", occurrence=4)
    async with running_service(tmp_path) as run:
        await run.server.replay_raw(first_done)
        (record,) = await run.wait_for_calls(1)
        assert record.outcome is Outcome.ANSWERED
        assert [r.linkedid for r in await run.store.list_calls()] == [record.linkedid]
        await run.server.replay_raw(rest)
        await run.wait_for_calls(2)


async def test_a_database_hiccup_delays_a_call_but_loses_nothing(tmp_path: Path) -> None:
    store = await CallStore.open(tmp_path / "calls.sqlite3")
    failures = 1
    real_save = store.save_calls

    async def flaky_save(records):  # the first write fails, like a locked or full disk
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError("disk I/O error")
        return await real_save(records)

    store.save_calls = flaky_save  # type: ignore[method-assign]
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    config = Config(asterisk=AsteriskConfig(port=server.port, secret="s3cret"), storage=StorageConfig(store.path))
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 5)
        await server.replay_raw(trace("01-ring-no-answer").raw)
        async with asyncio.timeout(5):
            while not calls:
                await asyncio.sleep(0.05)
        assert failures == 0
        assert [r.outcome for r in await store.list_calls()] == [Outcome.NO_ANSWER]
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await store.close()
        await server.stop()
