"""One bad event or call never stops the others, and a database outage defers calls, never drops them."""

from __future__ import annotations

import asyncio
import json
import math
import re
import sqlite3
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.model import Outcome
from callbuddy_pbx.store.dashboard_queries import system_counts
from tests.test_service import running_service
from tests.test_tracker_logic import CALLER, DESK_100, dial, ev, inbound_call, ringing
from tests.traces import Trace, all_traces
from tests.waiting import wait_until

TRACES = {trace.name: trace for trace in all_traces()}
MISSED, ANSWERED = TRACES["01-ring-no-answer"], TRACES["03-answered"]


@pytest.mark.parametrize("stamp", ["nan", "inf", "-inf", "1e20", "-5", "12", "not a number"])
def test_an_implausible_timestamp_is_replaced_by_the_arrival_time(stamp: str) -> None:
    tracker = CallTracker(InboundMatcher())
    caller_hangs_up = ev("Hangup", CALLER, Cause="16")
    events = [inbound_call(), *ringing(DESK_100), dial(DESK_100, "NOANSWER"), caller_hangs_up]
    events.append(ev("Hangup", DESK_100, Cause="16"))
    records = []
    for index, event in enumerate(events):
        records += tracker.feed({**event, "Timestamp": stamp}, 1_700_000_000.0 + index)
    (record,) = records
    assert record.outcome is Outcome.NO_ANSWER
    assert record.started_at == 1_700_000_000.0
    assert record.ended_at == 1_700_000_000.0 + events.index(caller_hangs_up)
    assert all(math.isfinite(leg.started_at) for leg in record.legs)


def with_timestamps(trace: Trace, stamp: str) -> bytes:
    return re.sub(rb"^Timestamp: [^\r\n]*", b"Timestamp: " + stamp.encode(), trace.raw, flags=re.MULTILINE)


@pytest.mark.parametrize("stamp", ["nan", "1e20", "inf"])
async def test_a_poisoned_timestamp_does_not_stop_later_calls(tmp_path: Path, stamp: str) -> None:
    async with running_service(tmp_path) as run:
        await run.server.replay_raw(with_timestamps(MISSED, stamp))
        await run.server.replay_raw(ANSWERED.raw)
        await run.wait_for_calls(len(MISSED.expected()) + len(ANSWERED.expected()))
        stored = await run.store.list_calls()
    assert {record.outcome for record in stored} == {Outcome.NO_ANSWER, Outcome.ANSWERED}
    assert all(math.isfinite(record.started_at) and math.isfinite(record.ended_at) for record in stored)


async def test_a_call_the_database_refuses_is_set_aside_and_the_others_are_stored(tmp_path: Path) -> None:
    found = re.search(rb"^Linkedid: ([^\r\n]+)", MISSED.raw, flags=re.MULTILINE)
    assert found is not None
    refused = found.group(1).decode()
    async with running_service(tmp_path) as run:
        await run.store.connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON calls WHEN NEW.linkedid = ? "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END".replace("?", f"'{refused}'")
        )
        await run.server.replay_raw(MISSED.raw)
        await run.server.replay_raw(ANSWERED.raw)
        await run.wait_for_calls(len(ANSWERED.expected()))
        await wait_until(lambda: run.service.calls_stored >= len(ANSWERED.expected()))
        await asyncio.wait_for(run.service.wait_stored(), 10)
        counts = await system_counts(run.store, since=0)
        stored = await run.store.list_calls()
        async with run.store.connection.execute("SELECT linkedid, error, record FROM set_aside_calls") as cursor:
            aside = [tuple(row) for row in await cursor.fetchall()]
    assert [record.outcome for record in stored] == [Outcome.ANSWERED]
    ((linkedid, error, record),) = aside
    assert linkedid == refused and "refused by the test" in error
    assert json.loads(record)["outcome"] == "no_answer"  # the call is kept whole, to be stored by hand later
    assert (counts.set_aside, counts.last_set_aside_error) == (1, error)


async def test_a_database_outage_defers_calls_and_loses_none(tmp_path: Path) -> None:
    async with running_service(tmp_path) as run:
        await run.store.connection.execute("PRAGMA busy_timeout = 50")  # fail fast while the lock is held
        blocker = sqlite3.connect(run.store.path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database: every write fails
        try:
            await run.server.replay_raw(MISSED.raw)
            await run.server.replay_raw(ANSWERED.raw)
            await wait_until(lambda: run.service.tracker.active_calls == 0)
            await asyncio.sleep(0.3)  # several write attempts fail meanwhile
            assert run.calls == []
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await run.wait_for_calls(2, timeout=10)
        stored = await run.store.list_calls()
        async with run.store.connection.execute("SELECT COUNT(*) FROM set_aside_calls") as cursor:
            (aside,) = await cursor.fetchone()
    assert {record.outcome for record in stored} == {Outcome.NO_ANSWER, Outcome.ANSWERED}
    assert aside == 0
