"""Calls judged from Asterisk's own CEL records (real recordings with `master.db`): from the rows alone, and through
the running service when the AMI stream is cut anywhere in a call and the CEL rows must complete it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callbuddy_pbx.asterisk.ami_protocol import iter_stream
from callbuddy_pbx.asterisk.cel import CelRow, complete_calls, event_time, extra_field, judge
from callbuddy_pbx.asterisk.cel_sqlite import CelSourceError, CelSqlite
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.commands.check import cel_check, summary
from callbuddy_pbx.config import AsteriskConfig, CelConfig, Config, StorageConfig, TextBack
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service import cel_reconcile
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.healthz import service_health
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.cel_db import SimulatedCelDb
from callbuddy_pbx.sim.scenarios import ScenarioFactory, mixed_call_stream
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.health import CelHealth
from tests.test_scenarios import all_scenarios
from tests.test_textback_e2e import salon_config
from tests.traces import Trace, cel_traces
from tests.waiting import wait_until

TRACES = cel_traces()
UTC = ZoneInfo("UTC")  # the recording PBX's zone


def expected(trace: Trace) -> dict[str, str]:
    """Caller digits -> expected outcome, for the inbound calls of a recording."""
    outcome = trace.meta.get("expected_outcome")
    if outcome is None:
        return {}
    if isinstance(outcome, dict):
        return {number: value for number, value in outcome.items() if value}
    return {trace.meta["caller_number"]: outcome}


def source(path: Path) -> CelSqlite:
    return CelSqlite(CelConfig(sqlite=path, timezone="UTC"))


def all_rows(path: Path) -> list[CelRow]:
    cel = source(path)
    try:
        return cel.rows(0, cel.last_id())
    finally:
        cel.close()


@pytest.mark.parametrize("trace", TRACES, ids=lambda t: t.name)
def test_every_recorded_call_is_judged_right_from_its_cel_rows_alone(trace: Trace) -> None:
    verdicts = judge(complete_calls(all_rows(trace.path / "master.db")), InboundMatcher())
    judged = {r.caller_raw: r.outcome.value for r in verdicts.values() if r is not None}
    assert judged == expected(trace)
    assert all(r.from_cel and r.observed_from_start for r in verdicts.values() if r is not None)


def test_both_eventtime_formats_give_the_same_moment() -> None:
    assert event_time("1796543878.250289", UTC) == pytest.approx(1796543878.250289)
    assert event_time("2026-12-06 07:57:58", UTC) == 1796543878.0
    assert event_time("2026-12-06 07:57:58", ZoneInfo("America/New_York")) == 1796543878.0 + 5 * 3600
    for bad in ("nan", "inf", "1e20", "", "yesterday", "0"):
        assert event_time(bad, UTC) is None


def test_a_call_not_over_yet_is_not_judged(tmp_path: Path) -> None:
    rows = all_rows(next(t for t in TRACES if t.name.startswith("01-")).path / "master.db")
    assert complete_calls(rows[:-1]) == {}  # everything but LINKEDID_END: the call may still change


def test_a_cel_table_without_linkedid_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "master.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE cel (AcctId INTEGER PRIMARY KEY, eventtype, eventtime, channame, uniqueid)")
    conn.close()
    with pytest.raises(CelSourceError, match="no column linkedid"):
        source(path).last_id()
    with pytest.raises(CelSourceError, match="no such file"):
        source(tmp_path / "missing.db").last_id()


def test_rows_are_bounded_as_they_are_read(tmp_path: Path) -> None:
    path = tmp_path / "master.db"
    shutil.copy(TRACES[0].path / "master.db", path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE cel SET cidname = ? WHERE eventtype = 'CHAN_START'", ("x" * 100_000,))
        conn.execute("UPDATE cel SET extra = ? WHERE eventtype = 'HANGUP'", ("{" + "[" * 50_000,))
    conn.close()
    rows = all_rows(path)
    assert max(len(row.cid_name) for row in rows) <= 256 and max(len(row.extra) for row in rows) <= 4096
    assert judge(complete_calls(rows), InboundMatcher())  # judged all the same: a bad extra is no extra


# ---- the running service: AMI cut anywhere, CEL completes the call ---------------------------------------------


def message_ends(raw: bytes) -> list[int]:
    """Byte offsets just after each event of a recorded stream (past the banner and the login)."""
    ends, position = [], raw.index(b"\r\n") + 2
    while (found := raw.find(b"\r\n\r\n", position)) >= 0:
        position = found + 4
        ends.append(position)
    return ends


@dataclass
class Setup:
    server: SimulatedAmiServer
    service: CallService
    store: CallStore
    cel_path: Path
    calls: list[CallRecord]


def empty_cel_table(recorded: Path, path: Path) -> None:
    """Asterisk's table as it created it, with no rows yet."""
    with sqlite3.connect(recorded) as conn:
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'cel'").fetchone()[0]
    conn.close()
    with sqlite3.connect(path) as conn:
        conn.execute(ddl)
    conn.close()


def write_cel_rows(recorded: Path, path: Path) -> None:
    """Asterisk writing the call's rows while nobody listened on AMI."""
    with sqlite3.connect(path) as conn:
        conn.execute("ATTACH DATABASE ? AS recorded", (str(recorded),))
        conn.execute("INSERT INTO main.cel SELECT * FROM recorded.cel ORDER BY AcctId")
    conn.close()


@contextlib.asynccontextmanager
async def service_with_cel(tmp_path: Path, recorded: Path | None = None) -> AsyncIterator[Setup]:
    """The service with a CEL source at tmp_path/master.db (made empty from `recorded`'s table when given)."""
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    cel_path = tmp_path / "master.db"
    if recorded is not None:
        empty_cel_table(recorded, cel_path)
    config = Config(
        asterisk=AsteriskConfig(port=server.port, secret="s3cret", reconnect_min_s=0.05, reconnect_max_s=0.1),
        storage=StorageConfig(tmp_path / "calls.sqlite3"),
        cel=CelConfig(sqlite=cel_path, timezone="UTC", poll_s=0.05),
    )
    store = await CallStore.open(config.storage.path)
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append)
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.ami.connected and service.cel is not None and service.cel.sweeps > 0, 15)
        yield Setup(server, service, store, cel_path, calls)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 5)
        await store.close()
        await server.stop()


async def two_more_sweeps(service: CallService) -> None:
    assert service.cel is not None
    done = service.cel.sweeps
    await wait_until(lambda: service.cel is not None and service.cel.sweeps >= done + 2, 15)


def cut_points(trace: Trace) -> list[int]:
    """Where to cut each recording's AMI stream: early, in the middle, just before the end, and at the very end."""
    ends = message_ends(trace.raw)
    return sorted({ends[1], ends[len(ends) // 3], ends[(2 * len(ends)) // 3], ends[-2]})


CASES = [(t, cut) for t in TRACES if "/" not in t.name for cut in cut_points(t)]


@pytest.mark.parametrize(("trace", "cut"), CASES, ids=[f"{t.name}@{cut}" for t, cut in CASES])
async def test_a_call_cut_off_from_ami_anywhere_is_completed_from_cel(tmp_path: Path, trace: Trace, cut: int) -> None:
    recorded = trace.path / "master.db"
    async with service_with_cel(tmp_path, recorded) as setup:
        await setup.server.replay_raw(trace.raw[:cut])
        await setup.service.ami.action("Ping")  # every event sent before the cut was read
        await asyncio.sleep(0.05)
        await setup.service.wait_stored()
        seen_through = {r.linkedid for r in setup.calls}  # calls AMI saw end before the cut
        setup.server.drop_clients()  # the link drops; the calls go on and end while it is down
        setup.server.clear_channels()
        write_cel_rows(recorded, setup.cel_path)
        want = expected(trace)
        await wait_until(lambda: len(setup.calls) >= len(want), 15)
        await two_more_sweeps(setup.service)  # nothing is stored twice
        await setup.service.wait_stored()
        got = {r.caller_raw: r.outcome.value for r in setup.calls}
        assert got == want and len(setup.calls) == len(want)
        assert all(r.observed_from_start and r.from_cel != (r.linkedid in seen_through) for r in setup.calls)


def no_processes(*args: object, **kwargs: object) -> None:
    raise OSError("[Errno 38] Function not implemented")  # what a host without working semaphores says


@pytest.mark.parametrize("workers", ["none", "spawned", "unavailable"])
async def test_calls_that_happened_while_the_service_was_stopped_are_found_on_start(
    tmp_path: Path, workers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found on start; a long gap is read and judged in worker processes, in slices whose edges cut calls in two,
    or in the service itself where processes cannot be started."""
    if workers != "none":
        monkeypatch.setattr(cel_reconcile, "WORKER_ROWS", 10)
    if workers == "unavailable":
        monkeypatch.setattr(cel_reconcile, "ProcessPoolExecutor", no_processes)
    traces = [t for t in TRACES if "/" not in t.name]
    async with service_with_cel(tmp_path, traces[0].path / "master.db"):
        pass  # the first start notes where CEL is: rows from before CallBuddy ever ran are not its to judge
    for trace in traces:  # the service is stopped; Asterisk goes on taking calls
        write_cel_rows(trace.path / "master.db", tmp_path / "master.db")
    want = {(t.name, number): outcome for t in traces for number, outcome in expected(t).items()}
    async with service_with_cel(tmp_path) as setup:
        await wait_until(lambda: len(setup.calls) >= len(want), 20)
        await two_more_sweeps(setup.service)
        await setup.service.wait_stored()
        assert sorted(r.outcome.value for r in setup.calls) == sorted(want.values())
        assert len({r.linkedid for r in setup.calls}) == len(setup.calls)
        assert all(r.from_cel for r in setup.calls)
    async with service_with_cel(tmp_path) as setup:  # and a restart finds nothing new
        await two_more_sweeps(setup.service)
        assert setup.calls == []


# ---- telling the installer: check and /healthz ------------------------------------------------------------------


def cel_config(tmp_path: Path, path: Path) -> Config:
    return Config(cel=CelConfig(sqlite=path, timezone="UTC"), storage=StorageConfig(tmp_path / "calls.sqlite3"))


def test_check_says_whether_cel_rows_are_being_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = TRACES[0].path / "master.db"
    path = tmp_path / "master.db"
    empty_cel_table(recorded, path)
    assert cel_check(cel_config(tmp_path, path)) == 0
    assert "WARNING no rows yet" in capsys.readouterr().out
    write_cel_rows(recorded, path)
    newest = max(row.time for row in all_rows(path))
    assert cel_check(cel_config(tmp_path, path), now=newest + 12) == 0
    assert "ok, 12 rows, newest LINKEDID_END 12 s ago" in capsys.readouterr().out
    assert cel_check(cel_config(tmp_path, path), now=newest + 3 * 86400) == 0
    assert "WARNING no row for 72 h" in capsys.readouterr().out


def test_check_fails_on_a_cel_source_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cel_check(cel_config(tmp_path, tmp_path / "missing.db")) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "no such file" in out
    path = tmp_path / "master.db"
    with sqlite3.connect(path) as conn:  # the sample cel_sqlite3_custom.conf Asterisk ships: no linkedid
        conn.execute("CREATE TABLE cel (AcctId INTEGER PRIMARY KEY, eventtype, eventtime, channame, uniqueid)")
    conn.close()
    assert cel_check(cel_config(tmp_path, path)) == 1
    assert "has no column linkedid" in capsys.readouterr().out
    assert "CEL:        off" in summary(Config())
    assert "texted when they ended less than 30 min ago" in summary(cel_config(tmp_path, path))


async def test_healthz_fails_while_cel_cannot_be_read_and_recovers(tmp_path: Path) -> None:
    recorded = TRACES[0].path / "master.db"
    async with service_with_cel(tmp_path, recorded) as setup:
        with sqlite3.connect(setup.cel_path) as conn:  # someone "cleans up" Asterisk's CEL table
            conn.execute("ALTER TABLE cel RENAME TO cel_old")
        conn.close()
        assert setup.service.cel is not None
        setup.service.cel.connected()  # wake a sweep now
        await wait_until(lambda: setup.service.cel is not None and setup.service.cel.last_error is not None, 15)
        status = service_health(setup.service, {})
        assert not status.ok and status.to_json()["cel"]["readable"] is False
        assert "no such table: cel" in str(status.to_json()["cel"]["last_error"])
        with sqlite3.connect(setup.cel_path) as conn:
            conn.execute("ALTER TABLE cel_old RENAME TO cel")
        conn.close()
        setup.service.cel.connected()
        await wait_until(lambda: service_health(setup.service, {}).cel == CelHealth(True, None, 0, 0), 15)


# ---- found calls and their texts ----------------------------------------------------------------------------------


def write_cel_rows_shifted(recorded: Path, path: Path, ended_ago_s: float) -> None:
    """The recorded rows as if the call had ended `ended_ago_s` before now (times shifted, text kept)."""
    rows = all_rows(recorded)
    shift = time.time() - ended_ago_s - max(row.time for row in rows)
    with sqlite3.connect(recorded) as source, sqlite3.connect(path) as conn:
        for raw in source.execute("SELECT * FROM cel ORDER BY AcctId"):
            values = list(raw[1:])
            values[1] = f"{float(values[1]) + shift:.6f}"  # eventtime
            conn.execute(f"INSERT INTO cel VALUES (NULL, {', '.join('?' * len(values))})", values)
    source.close()
    conn.close()


async def test_a_missed_call_found_in_cel_is_texted_once_unless_found_too_late(tmp_path: Path) -> None:
    fresh, late = (next(t for t in TRACES if t.name.startswith(n)) for n in ("01-", "18-"))
    cel_path = tmp_path / "master.db"
    empty_cel_table(fresh.path / "master.db", cel_path)
    gateway = SimulatedGateway("sim")
    config = salon_config(1, tmp_path / "calls.sqlite3", gateway.name, "simulated", TextBack(hold_off_s=0.0))
    config = dataclasses.replace(config, cel=CelConfig(sqlite=cel_path, timezone="UTC", poll_s=0.2))
    store = await CallStore.open(config.storage.path)
    text_back = TextBackService(config, store, {gateway.name: gateway})
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append, text_back=text_back)  # AMI never reachable: port 1
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.cel is not None and service.cel.sweeps > 0, 15)
        write_cel_rows_shifted(fresh.path / "master.db", cel_path, ended_ago_s=60)
        write_cel_rows_shifted(late.path / "master.db", cel_path, ended_ago_s=2 * 3600)
        await wait_until(lambda: len(calls) == 2, 15)  # judged on the second sweep that finds them unstored
        await wait_until(lambda: len(gateway.sent) == 1, 15)
        await asyncio.sleep(0.5)
        assert [sms.to for sms in gateway.sent] == ["+15557654321"]
        reasons = {c.linkedid: (await text_back.messages.verdict(c.linkedid)) for c in calls}
        assert sorted(v.reason for v in reasons.values() if v is not None) == ["found_late", "send"]
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await store.close()


def test_extra_fields_are_read_as_asterisk_writes_them() -> None:
    def row(extra: str) -> CelRow:
        return CelRow(1, "HANGUP", 1796543878.0, "PJSIP/a-1", "1.1", "1.1", extra=extra)

    written = '{"hangupcause":16,"hangupsource":"PJSIP/trunk-0000003a","dialstatus":"ANSWER"}'
    assert extra_field(row(written), "hangupcause") == 16
    assert extra_field(row(written), "hangupsource") == "PJSIP/trunk-0000003a"
    assert extra_field(row('{"hangupsource":"Local/a\\"b;1"}'), "hangupsource") == 'Local/a"b;1'
    assert extra_field(row('{"hangupsource":"bad \\x escape"}'), "hangupsource") == "bad \\x escape"
    assert extra_field(row("not json"), "hangupcause") is None
    assert extra_field(row('{"hangupcause":' + "9" * 5000 + "}"), "hangupcause") is None  # over the bound: no extra


def write_first_cel_rows(recorded: Path, path: Path, count: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("ATTACH DATABASE ? AS recorded", (str(recorded),))
        conn.execute("INSERT INTO main.cel SELECT * FROM recorded.cel ORDER BY AcctId LIMIT ?", (count,))
    conn.close()


async def test_progress_waits_for_a_call_in_progress_but_not_for_one_asterisk_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call still going on keeps its rows to be read again; one Asterisk dropped when it crashed (no LINKEDID_END
    will ever come, no channel is left) does not hold progress back once AMI's view of it has waited HOLD_S."""
    monkeypatch.setattr(cel_reconcile, "HOLD_S", 0.3)
    trace = next(t for t in TRACES if t.name.startswith("01-"))
    recorded = trace.path / "master.db"
    async with service_with_cel(tmp_path, recorded) as setup:
        cut = message_ends(trace.raw)[len(message_ends(trace.raw)) // 2]
        await setup.server.replay_raw(trace.raw[:cut])  # ringing: AMI follows it
        await setup.service.ami.action("Ping")
        write_first_cel_rows(recorded, setup.cel_path, 4)
        await two_more_sweeps(setup.service)
        await two_more_sweeps(setup.service)
        source = source_name(setup)
        assert await setup.store.cel_progress(source) == 0  # held before the call's first row
        setup.server.drop_clients()  # Asterisk crashes: the call is gone with no end in CEL
        setup.server.clear_channels()
        await wait_until(lambda: setup.service.ami.connected and setup.service.tracker.active_calls == 0, 15)
        await wait_until(lambda: setup.service.cel is not None and setup.service.cel.held == 0, 15)
        await two_more_sweeps(setup.service)
        await two_more_sweeps(setup.service)
        assert await setup.store.cel_progress(source) == 4


def source_name(setup: Setup) -> str:
    assert setup.service.cel is not None
    return CelSqlite(CelConfig(sqlite=setup.cel_path)).name


def test_a_caller_name_that_is_not_utf8_is_read_not_a_failed_sweep(tmp_path: Path) -> None:
    path = tmp_path / "master.db"
    shutil.copy(TRACES[0].path / "master.db", path)
    with sqlite3.connect(path) as conn:  # Latin-1 bytes from a carrier, stored as TEXT by Asterisk
        conn.execute("UPDATE cel SET cidname = CAST(X'4A6F73E9' AS TEXT) WHERE uniqueid = linkedid")
    conn.close()
    rows = all_rows(path)
    (record,) = [r for r in judge(complete_calls(rows), InboundMatcher()).values() if r is not None]
    assert record.caller_name == "Jos\ufffd" and record.outcome.value == "no_answer"


def test_every_generated_call_shape_is_judged_right_from_the_cel_rows_the_simulated_pbx_writes(tmp_path: Path) -> None:
    """The simulated PBX (demo, fault suite) writes CEL as Asterisk does: judged from those rows alone, every shape it
    makes (the recorded ones and the mixed stream's variations) gets the outcome it was made with."""
    factory = ScenarioFactory(cel_cdr=True)
    scenarios = all_scenarios(factory) + list(mixed_call_stream(60, seed=5, factory=factory))
    database = SimulatedCelDb(tmp_path / "master.db")
    for scenario in scenarios:
        for event in scenario.events:
            if event.message.get("Event") == "CEL":
                database.write(event.message)
    database.close()
    verdicts = judge(complete_calls(all_rows(tmp_path / "master.db")), InboundMatcher())
    wrong = [
        (s.name, s.expected_outcome, r.outcome.value if (r := verdicts.get(s.linkedid)) else None)
        for s in scenarios
        if (r.outcome.value if (r := verdicts.get(s.linkedid)) else None) != s.expected_outcome
    ]
    assert wrong == []


@pytest.mark.parametrize("trace", [t for t in TRACES if "/" not in t.name], ids=lambda t: t.name)
def test_wherever_the_ami_stream_is_cut_ami_never_vouches_for_a_wrong_verdict(trace: Trace) -> None:
    """Cut each recording's AMI stream after every event and drop the link there: a call AMI judges as fully observed
    has its right outcome; every other call it judges is marked not fully observed (so it is judged from CEL, which
    `test_every_recorded_call_is_judged_right_from_its_cel_rows_alone` shows gets it right)."""
    messages = [m for m in iter_stream(trace.raw) if "Event" in m]
    want = expected(trace)
    for cut in range(len(messages) + 1):
        tracker = CallTracker(InboundMatcher())
        records: list[CallRecord] = []
        for message in messages[:cut]:
            records += tracker.feed(message, float(message.get("Timestamp", "0") or 0))
        tracker.disconnected()
        records += tracker.reconcile([], 4_000_000_000.0)  # the calls are over when the link comes back
        for record in records:
            assert not record.observed_from_start or want.get(record.caller_raw) == record.outcome.value, (cut, record)
