"""Calls judged while the database takes no writes are kept on local disk (store/spool.py) until stored: a service
that dies during the outage hands them to the next start, and none is stored twice."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from callbuddy_pbx.config import AsteriskConfig, Config, StorageConfig
from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.service import app
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.spool import CallSpool
from tests.test_nodes_service import _record
from tests.traces import all_traces
from tests.waiting import wait_until

TRACES = {trace.name: trace for trace in all_traces()}
MISSED, ANSWERED = TRACES["01-ring-no-answer"], TRACES["03-answered"]


def spool_rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM waiting_calls ORDER BY key")]
    conn.close()
    return keys


async def run_once(config: Config, spool_path: Path, server: SimulatedAmiServer, *, block: bool) -> list[CallRecord]:
    """One life of the service: with `block`, the database refuses every write while both calls are judged, and
    the service stops (as good as killed: nothing reaches the database) with them only in the spool."""
    store = await CallStore.open(config.storage.path)
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append, spool=CallSpool(spool_path))
    task = asyncio.create_task(service.run())
    blocker: sqlite3.Connection | None = None
    try:
        await asyncio.wait_for(service.ready.wait(), 5)
        if block:
            await store.connection.execute("PRAGMA busy_timeout = 50")
            blocker = sqlite3.connect(config.storage.path, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database: every write fails
            await server.replay_raw(MISSED.raw)
            await server.replay_raw(ANSWERED.raw)
            await wait_until(lambda: service.spool is not None and len(service.spool.kept) == 2, 5)
            assert len(spool_rows(spool_path)) == 2 and calls == []
        else:
            await wait_until(lambda: len(calls) == 2, 10)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        if blocker is not None:
            blocker.execute("ROLLBACK")
            blocker.close()
        await store.close()
    return calls


async def test_calls_kept_in_the_spool_during_an_outage_are_stored_by_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "STOP_DRAIN_S", 0.3)  # the first life ends with the database still refusing
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    ami = AsteriskConfig(port=server.port, secret="s3cret", reconnect_min_s=0.05, reconnect_max_s=0.2)
    config = Config(asterisk=ami, storage=StorageConfig(tmp_path / "calls.sqlite3"))
    spool_path = tmp_path / "spool" / "callbuddy-spool.sqlite3"
    try:
        assert await run_once(config, spool_path, server, block=True) == []
        kept = spool_rows(spool_path)
        assert len(kept) == 2
        stored = await run_once(config, spool_path, server, block=False)
    finally:
        await server.stop()
    assert sorted(call.linkedid for call in stored) == kept
    assert {call.outcome for call in stored} == {Outcome.NO_ANSWER, Outcome.ANSWERED}
    assert spool_rows(spool_path) == []  # dropped once stored
    async with await CallStore.open(config.storage.path) as store:
        assert sorted(call.linkedid for call in await store.list_calls()) == kept


def test_a_spool_keeps_each_call_once_and_reads_back_what_it_kept(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = CallSpool(path)
    assert spool.open() == []
    north, south = _record("1.1@north", "north"), _record("1.1@south", "south")
    spool.keep([north, south], 1.0)
    spool.keep([north], 2.0)
    spool.drop(["1.1@south", "not kept"])
    spool.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO waiting_calls VALUES ('broken', '{\"linkedid\": 1}', 3.0)")
    conn.close()
    again = CallSpool(path)
    assert again.open() == [north]  # the broken row is left where it is, and the rest still read
    assert again.kept == {"1.1@north"}
    again.close()


def test_a_spool_that_cannot_be_written_leaves_the_calls_in_memory(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    spool = CallSpool(blocked / "spool.sqlite3")
    assert spool.open() == []
    spool.keep([_record("1.1", "")], 1.0)  # no error: the writer goes on, the call waits in memory
    assert spool.kept == set()
