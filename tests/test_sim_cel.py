"""The simulated PBX's CEL database (sim/cel_db.py): the rows Asterisk's cel_sqlite3_custom writes, checked against
the recordings in shared/traces/asterisk-cel; written by the simulated AMI server whether or not a client listens;
and the generated calls' CEL shaped like the recorded ones."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage, iter_stream
from callbuddy_pbx.commands.demo import CEL_FILE, demo_config, run_demo
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.cel_db import COLUMNS, SimulatedCelDb, cel_row, create_table_sql
from callbuddy_pbx.sim.scenarios import (
    Scenario,
    ScenarioFactory,
    ScriptedEvent,
    encode_events,
    mixed_call_stream,
    stream_events,
)
from callbuddy_pbx.sim.smsc import SimulatedSmsc
from tests.test_scenarios import all_scenarios
from tests.traces import TRACES_DIR

CEL_TRACES = TRACES_DIR.parent / "asterisk-cel"
DATEFORMAT_DIR = CEL_TRACES / "dateformat-F-T"
FLOAT_TRACES = sorted(d for d in CEL_TRACES.iterdir() if (d / "master.db").exists())
DATEFORMAT_TRACES = sorted(d for d in DATEFORMAT_DIR.iterdir() if (d / "master.db").exists())
F_T = "%Y-%m-%d %H:%M:%S"  # cel.conf `dateformat = %F %T`
# The AMI event's Timestamp is when the event went out, after the row's eventtime: 1.5 ms to 51.4 ms later in these
# recordings (median 6 ms; the long ones in bursts of many events, e.g. the queue call of 20). 0.05 s is too tight.
LATE_S = 0.06

Row = tuple[str, ...]


def query(path: Path, sql: str) -> list[tuple[str, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [tuple(row) for row in db.execute(sql)]


def rows(path: Path) -> list[Row]:
    return query(path, f"SELECT {','.join(COLUMNS)} FROM cel ORDER BY AcctId")


def cel_messages(raw: bytes) -> list[AmiMessage]:
    return [m for m in iter_stream(raw) if m.get("Event") == "CEL"]


def scenario_cel(scenarios: Iterable[Scenario]) -> list[AmiMessage]:
    return [m for s in scenarios for m in scenario_cel_of(s.events)]


def scenario_cel_of(events: Iterable[ScriptedEvent]) -> list[AmiMessage]:
    return [e.message for e in events if e.message["Event"] == "CEL"]


def written(tmp_path: Path, messages: Iterable[Mapping[str, str]], dateformat: str | None = None) -> list[Row]:
    path = tmp_path / "master.db"
    with SimulatedCelDb(path, dateformat=dateformat) as cel:
        for message in messages:
            cel.write(message)
    return rows(path)


# ---- the rows, against the recorded master.db -----------------------------------------------------------------------

EVENTTIME = COLUMNS.index("eventtime")


def without_eventtime(row: Row) -> Row:
    return row[:EVENTTIME] + row[EVENTTIME + 1 :]


@pytest.mark.parametrize("trace", FLOAT_TRACES, ids=lambda d: d.name)
def test_rows_are_the_recorded_rows(trace: Path, tmp_path: Path) -> None:
    ours = written(tmp_path, cel_messages((trace / "ami.raw").read_bytes()))
    recorded = rows(trace / "master.db")
    assert len(ours) == len(recorded) > 0
    for mine, theirs in zip(ours, recorded, strict=True):
        assert without_eventtime(mine) == without_eventtime(theirs)
        assert 0 <= float(mine[EVENTTIME]) - float(theirs[EVENTTIME]) < LATE_S, (mine, theirs)
        assert len(mine[EVENTTIME].split(".")[1]) == 6  # microseconds, as Asterisk writes them
    schema = "SELECT sql FROM sqlite_master WHERE name = 'cel'"
    assert query(tmp_path / "master.db", schema) == query(trace / "master.db", schema) == [(create_table_sql(),)]


@pytest.mark.parametrize("trace", DATEFORMAT_TRACES, ids=lambda d: d.name)
def test_rows_with_a_dateformat_are_the_recorded_rows(trace: Path, tmp_path: Path) -> None:
    # Exact, eventtime too: EventTime names the row's own second, and one event here (21, CHAN_START at
    # 07:52:12.99...) went out over AMI in the next second (Timestamp ...533.000212).
    ours = written(tmp_path, cel_messages((trace / "ami.raw").read_bytes()), dateformat=F_T)
    assert ours == rows(trace / "master.db") != []


def test_eventtime_keeps_to_the_second_eventtime_names() -> None:
    late = {
        "Event": "CEL",
        "EventName": "CHAN_START",
        "Timestamp": "1796543533.000212",
        "EventTime": "2026-12-06 07:52:12",
    }
    assert cel_row(late)[EVENTTIME] == "1796543532.999999"
    assert cel_row(late, F_T)[EVENTTIME] == "2026-12-06 07:52:12"
    on_time = dict(late, Timestamp="1796543532.250289")
    assert cel_row(on_time)[EVENTTIME] == "1796543532.250289"
    without_timestamp = {k: v for k, v in late.items() if k != "Timestamp"}
    assert cel_row(without_timestamp)[EVENTTIME] == "1796543532.000000"


def test_a_locked_database_drops_the_row_and_counts_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    message = scenario_cel([ScenarioFactory(cel_cdr=True).ring_all_no_answer()])[0]
    with SimulatedCelDb(tmp_path / "master.db") as cel:
        with contextlib.closing(sqlite3.connect(tmp_path / "master.db", isolation_level=None)) as other:
            other.execute("BEGIN EXCLUSIVE")  # another connection locks the file past the 1 s busy timeout
            cel.write(message)
            assert (cel.written, cel.dropped) == (0, 1)
            assert "could not write a CHAN_START row" in caplog.text
            other.execute("COMMIT")
        cel.write(message)
        assert (cel.written, cel.dropped) == (1, 1)
    assert len(rows(tmp_path / "master.db")) == 1


def test_an_existing_table_is_kept(tmp_path: Path) -> None:
    messages = scenario_cel([ScenarioFactory(cel_cdr=True).ring_all_answered()])
    written(tmp_path, messages[:3])
    assert len(written(tmp_path, messages[3:])) == len(messages)  # Asterisk appends to the table it finds


# ---- the simulated AMI server writes them, listened to or not -------------------------------------------------------


@pytest.mark.parametrize("how", ["dicts", "bytes", "bytes-untracked", "dicts-untracked", "replay"])
async def test_rows_are_written_with_no_ami_client_connected(how: str, tmp_path: Path) -> None:
    factory = ScenarioFactory(cel_cdr=True)
    scenarios = [factory.ring_all_answered(), factory.queue_answered(), factory.voicemail()]
    messages = [e.message for s in scenarios for e in s.events]
    cel = SimulatedCelDb(tmp_path / "master.db")
    server = SimulatedAmiServer(cel_db=cel, track_channels="untracked" not in how)
    async with server:
        assert server.clients == 0
        if how.startswith("dicts"):
            await server.broadcast(messages)
        elif how.startswith("bytes"):
            await server.broadcast(encode_events([e for s in scenarios for e in s.events]))
        else:
            await server.replay_raw(encode_events([e for s in scenarios for e in s.events]))
    cel.close()
    expected = [cel_row(m) for m in messages if m["Event"] == "CEL"]
    assert len(expected) > 40
    assert rows(tmp_path / "master.db") == expected
    assert (cel.written, cel.dropped) == (len(expected), 0)


@pytest.mark.parametrize("how", ["dicts", "bytes", "replay"])
async def test_a_listening_client_gets_the_same_bytes(how: str, tmp_path: Path) -> None:
    events = ScenarioFactory(cel_cdr=True).ring_all_answered().events
    wire = encode_events(events)
    with SimulatedCelDb(tmp_path / "master.db") as cel:
        async with SimulatedAmiServer(cel_db=cel) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            await reader.readuntil(b"\r\n")
            login = "Action: Login\r\nUsername: callbuddy\r\nSecret: callbuddy-secret\r\nEvents: on\r\n\r\n"
            writer.write(login.encode())
            for expected in (b"Response: Success", b"Event: FullyBooted", b"Event: SuccessfulAuth"):
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(expected)
            if how == "dicts":
                await server.broadcast([e.message for e in events])
            elif how == "bytes":
                await server.broadcast(wire)
            else:
                await server.replay_raw(wire)
            assert await asyncio.wait_for(reader.readexactly(len(wire)), 5) == wire
            with pytest.raises(TimeoutError):  # and nothing more
                await asyncio.wait_for(reader.read(1), 0.2)
            writer.close()
        assert cel.written == len(scenario_cel_of(events)) > 0


# ---- the generated calls' CEL has the recorded shape ---------------------------------------------------------------


def shape_problems(cel_rows: Sequence[tuple[str, str, str]]) -> list[str]:
    """Rules every recorded call keeps, on (eventtype, uniqueid, linkedid) rows in insertion order: one LINKEDID_END
    per linkedid, its last row; per channel CHAN_START first, HANGUP then CHAN_END last, once each; every APP_START
    with its APP_END."""
    problems = []
    by_linkedid: dict[str, list[str]] = defaultdict(list)
    by_channel: dict[str, list[str]] = defaultdict(list)
    for eventtype, uniqueid, linkedid in cel_rows:
        by_linkedid[linkedid].append(eventtype)
        if eventtype != "LINKEDID_END":
            by_channel[uniqueid].append(eventtype)
    for linkedid, types in by_linkedid.items():
        if types.count("LINKEDID_END") != 1 or types[-1] != "LINKEDID_END":
            problems.append(f"call {linkedid}: {types}")
    for uniqueid, types in by_channel.items():
        once = all(types.count(name) == 1 for name in ("CHAN_START", "HANGUP", "CHAN_END"))
        if not once or types[0] != "CHAN_START" or types[-2:] != ["HANGUP", "CHAN_END"]:
            problems.append(f"channel {uniqueid}: {types}")
        if types.count("APP_START") != types.count("APP_END"):
            problems.append(f"channel {uniqueid}: APP_START without APP_END: {types}")
    return problems


def cel_shape(path: Path) -> list[tuple[str, str, str]]:
    return [(t, u, link) for t, u, link in query(path, "SELECT eventtype, uniqueid, linkedid FROM cel ORDER BY AcctId")]


@pytest.mark.parametrize("trace", FLOAT_TRACES + DATEFORMAT_TRACES, ids=lambda d: str(d.relative_to(CEL_TRACES)))
def test_recorded_calls_keep_the_shape_rules(trace: Path) -> None:
    assert shape_problems(cel_shape(trace / "master.db")) == []


def test_shape_rules_catch_a_broken_call() -> None:
    good = [("CHAN_START", "1.1", "1.1"), ("APP_START", "1.1", "1.1"), ("APP_END", "1.1", "1.1")]
    good += [("HANGUP", "1.1", "1.1"), ("CHAN_END", "1.1", "1.1"), ("LINKEDID_END", "1.1", "1.1")]
    assert shape_problems(good) == []
    assert shape_problems(good[:-1]) != []  # not ended
    assert shape_problems([*good, ("LINKEDID_END", "1.1", "1.1")]) != []  # ended twice
    assert shape_problems([*good[:-1], ("CHAN_START", "1.2", "1.1"), good[-1]]) != []  # a channel never hung up
    assert shape_problems([good[0], *good[3:]]) == []
    assert shape_problems([good[0], good[1], *good[3:]]) != []  # an application that never ended
    assert shape_problems([good[0], good[1], good[2], good[4], good[3], good[5]]) != []  # CHAN_END before HANGUP


@pytest.mark.parametrize("shape", ["factory", "mixed-stream"])
def test_generated_calls_keep_the_shape_rules(shape: str, tmp_path: Path) -> None:
    factory = ScenarioFactory(cel_cdr=True)
    if shape == "factory":
        scenarios = all_scenarios(factory)
        messages = scenario_cel(scenarios)
    else:  # overlapping calls, merged in time order as the PBX writes them
        scenarios = list(mixed_call_stream(60, seed=5, calls_per_second=5.0, factory=factory))
        messages = [e.message for e in stream_events(scenarios) if e.message["Event"] == "CEL"]
    written(tmp_path, messages)
    shape_rows = cel_shape(tmp_path / "master.db")
    assert len({linkedid for _, _, linkedid in shape_rows}) == len(scenarios)
    assert shape_problems(shape_rows) == []


# ---- the demo writes CEL and points the service at it ---------------------------------------------------------------


async def test_demo_config_reads_the_demo_pbx_cel(tmp_path: Path) -> None:
    smsc = SimulatedSmsc()
    await smsc.start()
    try:
        config = demo_config(tmp_path, 5038, "secret", smsc)
    finally:
        await smsc.stop()
    assert config.cel.enabled and config.cel.sqlite == tmp_path / CEL_FILE


async def test_demo_pbx_writes_every_calls_cel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await asyncio.wait_for(run_demo(tmp_path, 6, 400.0, seed=11, port=0), 60) == 0
    capsys.readouterr()
    shape_rows = cel_shape(tmp_path / CEL_FILE)
    ended = [linkedid for eventtype, _, linkedid in shape_rows if eventtype == "LINKEDID_END"]
    assert len(ended) == 6
    assert shape_problems(shape_rows) == []
