"""AmiClient against SimulatedAmiServer over real loopback TCP."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.ami import (
    AmiActionError,
    AmiActionTimeout,
    AmiAuthError,
    AmiClient,
    AmiConnectError,
    AmiMessage,
    AmiNotConnected,
)
from callbuddy_pbx.asterisk.ami_protocol import MAX_MESSAGE_BYTES, iter_stream
from callbuddy_pbx.config import AsteriskConfig
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer, encode_event, parse_timing
from tests.waiting import wait_until

SECRET = "s3cr3t-Do-Not-Log-7f9a"
TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces" / "asterisk"


@dataclass
class Recorder:
    """Collects what the client hands to its callbacks."""

    events: list[tuple[AmiMessage, float]] = field(default_factory=list)
    connected: int = 0
    disconnects: list[str] = field(default_factory=list)

    def on_event(self, message: AmiMessage, received_at: float) -> None:
        self.events.append((message, received_at))

    async def on_connected(self, client: AmiClient) -> None:
        self.connected += 1

    def on_disconnected(self, reason: str) -> None:
        self.disconnects.append(reason)

    def names(self) -> list[str]:
        return [message["Event"] for message, _ in self.events]


def config_for(server: SimulatedAmiServer | int, **overrides: float | str) -> AsteriskConfig:
    base = AsteriskConfig(
        port=server if isinstance(server, int) else server.port,
        secret=SECRET,
        connect_timeout_s=2.0,
        action_timeout_s=2.0,
        ping_interval_s=30.0,
        ping_timeout_s=1.0,
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def running(client: AmiClient) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        await client.close()
        await asyncio.wait_for(task, 2.0)


@pytest.fixture
async def server() -> AsyncIterator[SimulatedAmiServer]:
    async with SimulatedAmiServer(secret=SECRET) as sim:
        yield sim


def make_client(config: AsteriskConfig, recorder: Recorder) -> AmiClient:
    return AmiClient(
        config,
        on_event=recorder.on_event,
        on_connected=recorder.on_connected,
        on_disconnected=recorder.on_disconnected,
    )


# -- login -----------------------------------------------------------------------------------------------------------


async def test_login_then_events_arrive_in_order_with_receipt_time(server: SimulatedAmiServer) -> None:
    rec = Recorder()
    client = make_client(config_for(server), rec)
    async with running(client):
        await wait_until(lambda: rec.connected == 1)
        assert client.connected and client.connects == 1 and server.logins == 1
        login = server.actions[0]
        assert (login["Action"], login["Username"], login["Events"]) == ("Login", "callbuddy", "on")
        await wait_until(lambda: len(rec.events) == 2)
        assert rec.names() == ["FullyBooted", "SuccessfulAuth"]  # what Asterisk sends after login
        before = time.time()
        await server.broadcast([{"Event": "Newchannel", "Channel": f"PJSIP/trunk-{i}"} for i in range(50)])
        await wait_until(lambda: len(rec.events) == 52)
        after = time.time()
        assert [m["Channel"] for m, _ in rec.events[2:]] == [f"PJSIP/trunk-{i}" for i in range(50)]
        assert all(before <= t <= after for _, t in rec.events[2:])
        assert client.events_received == 52


async def test_wrong_secret_raises_auth_error(server: SimulatedAmiServer) -> None:
    rec = Recorder()
    client = make_client(config_for(server, secret="wrong-secret-1234"), rec)
    with pytest.raises(AmiAuthError, match="Authentication failed") as raised:
        await client.connect()
    assert "callbuddy" in str(raised.value) and "wrong-secret-1234" not in str(raised.value)
    assert not client.connected and rec.connected == 0
    assert "Authentication failed" in client.last_error
    with pytest.raises(AmiNotConnected):
        await client.action("Ping")


async def test_wrong_secret_in_run_is_logged_once_per_attempt_and_not_retried_quickly(
    server: SimulatedAmiServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    config = config_for(server, secret="wrong", reconnect_min_s=0.001, reconnect_max_s=0.25)
    client = make_client(config, rec)

    def auth_errors() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "Authentication failed" in r.getMessage()]

    with caplog.at_level(logging.ERROR, logger="callbuddy_pbx.asterisk.ami"):
        async with running(client):
            # one log line per refused login: the two counts meet (logging twice, or not at all, never does)
            await wait_until(lambda: len(auth_errors()) >= 3 and len(auth_errors()) == server.login_failures)
    logged = auth_errors()
    assert all(r.levelno == logging.ERROR for r in logged)
    # The wait after a refused login is reconnect_max_s x 1.0-1.1, never the 1 ms minimum: a lower bound, which
    # load can only lengthen (less 1 ms for the log's wall clock against the loop's).
    gaps = [later.created - earlier.created for earlier, later in itertools.pairwise(logged[:3])]
    assert min(gaps) >= 0.25 - 0.001, gaps
    assert rec.connected == 0


async def test_unreachable_pbx_is_retried_until_it_comes_up(caplog: pytest.LogCaptureFixture) -> None:
    probe = SimulatedAmiServer(secret=SECRET)
    await probe.start()
    port = probe.port
    await probe.stop()
    rec = Recorder()
    client = make_client(config_for(port), rec)

    def refused() -> int:
        return sum("cannot connect" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)

    async with running(client):
        await wait_until(lambda: refused() >= 2)  # refused, and tried again
        assert rec.connected == 0 and "cannot connect" in client.last_error
        async with SimulatedAmiServer(secret=SECRET, port=port):
            await wait_until(lambda: rec.connected == 1)
            assert client.connected


# -- actions ---------------------------------------------------------------------------------------------------------


async def test_concurrent_actions_are_correlated_by_action_id(server: SimulatedAmiServer) -> None:
    server.variables = {f"V{i}": f"value-{i}" for i in range(20)}
    server.response_delays = {"getvar": 0.05}  # Getvar answers arrive after the Pings sent later
    client = make_client(config_for(server), Recorder())
    async with running(client):
        await wait_until(lambda: client.connected)
        finished: list[str] = []

        async def tracked(name: str, fields: dict[str, str] | None = None) -> AmiMessage:
            response = await client.action(name, fields)
            finished.append(name)
            return response

        getvars = [tracked("Getvar", {"Variable": f"V{i}"}) for i in range(20)]
        pings = [tracked("Ping") for _ in range(5)]
        results = await asyncio.gather(*getvars, *pings)
    assert finished[:5] == ["Ping"] * 5  # answered out of order...
    for i, response in enumerate(results[:20]):  # ...and still each caller got its own answer
        assert (response["Variable"], response["Value"]) == (f"V{i}", f"value-{i}")
    assert all(response["Ping"] == "Pong" for response in results[20:])
    sent_ids = [action["ActionID"] for action in server.actions if action["Action"] in ("Getvar", "Ping")]
    assert len(set(sent_ids)) == len(sent_ids) == 25
    assert [r["ActionID"] for r in results] == sent_ids


async def test_action_error_carries_asterisks_message(server: SimulatedAmiServer) -> None:
    client = make_client(config_for(server), Recorder())
    async with running(client):
        await wait_until(lambda: client.connected)
        with pytest.raises(AmiActionError, match="Invalid/unknown command") as raised:
            await client.action("NoSuchThing")
        assert raised.value.message == "Invalid/unknown command"
        assert client.connected


async def test_action_timeout_is_clear_and_the_late_answer_is_harmless(
    server: SimulatedAmiServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.response_delays = {"getvar": 0.4}  # 8x the timeout below: the timeout wins however busy the machine is
    rec = Recorder()
    client = make_client(config_for(server, action_timeout_s=10.0), rec)
    caplog.set_level(logging.DEBUG, logger="callbuddy_pbx.asterisk.ami")
    async with running(client):
        await wait_until(lambda: client.connected)
        started = time.monotonic()
        with pytest.raises(AmiActionTimeout, match=r"Getvar .*within 0.05 s"):
            await client.action("Getvar", {"Variable": "X"}, timeout=0.05)
        assert time.monotonic() - started >= 0.05  # not before its own timeout (had the answer won, no raise)
        await wait_until(lambda: "nobody waits for" in caplog.text)  # the late response arrived, and was dropped
        assert (await client.action("Ping"))["Ping"] == "Pong"
        assert client.connects == 1 and "Getvar" not in str(rec.names())


async def test_action_while_disconnected_raises_at_once(server: SimulatedAmiServer) -> None:
    client = make_client(config_for(server), Recorder())
    with pytest.raises(AmiNotConnected, match="not connected"):
        await client.action("Ping")
    assert server.actions_received == 0  # nothing was queued to be sent later


async def test_list_action_core_show_channels_during_a_call_in_on_connected(server: SimulatedAmiServer) -> None:
    raw = (TRACES / "01-ring-no-answer" / "ami.raw").read_bytes()
    ringing = raw[: raw.index(b"Event: DialEnd\r\n")]  # the call while both desks ring
    await server.replay_raw(ringing)  # no client yet: only the simulated PBX's channels change
    results: list[tuple[AmiMessage, list[AmiMessage]]] = []
    rec = Recorder()

    async def reconcile(client: AmiClient) -> None:
        results.append(await client.list_action("CoreShowChannels"))

    client = AmiClient(config_for(server), on_event=rec.on_event, on_connected=reconcile)
    async with running(client):
        await wait_until(lambda: bool(results))
    response, items = results[0]
    assert response["Response"] == "Success" and response["EventList"] == "start"
    assert sorted(item["Channel"] for item in items) == [
        "PJSIP/100-0000003c",
        "PJSIP/101-0000003d",
        "PJSIP/trunk-0000003b",
    ]
    assert {item["ActionID"] for item in items} == {response["ActionID"]}
    recorded = list(iter_stream((TRACES / "actions" / "coreshowchannels-during-call.raw").read_bytes()))
    recorded_item = next(m for m in recorded if m.get("Event") == "CoreShowChannel")
    assert all(list(item) == list(recorded_item) for item in items)  # same fields, same order as Asterisk 22
    trunk = next(item for item in items if item["Channel"].startswith("PJSIP/trunk"))
    assert (trunk["CallerIDNum"], trunk["Exten"], trunk["ChannelStateDesc"]) == ("15557654321", "15550001000", "Ring")
    assert (trunk["Application"], trunk["ApplicationData"]) == ("Dial", "PJSIP/100&PJSIP/101,15")
    desk = next(item for item in items if item["Channel"].startswith("PJSIP/100"))
    assert (desk["ChannelStateDesc"], desk["Linkedid"], desk["Application"]) == (
        "Ringing",
        trunk["Uniqueid"],
        "AppDial",
    )
    assert "CoreShowChannel" not in rec.names()  # list items go to the action, not to on_event


# -- keepalive and reconnects ------------------------------------------------------------------------------------------


async def test_idle_link_is_pinged_and_a_half_open_one_is_replaced(server: SimulatedAmiServer) -> None:
    rec = Recorder()
    interval, timeout = 0.1, 0.1
    # action_timeout_s far above: a Ping waiting on it instead of ping_timeout_s would take 10 s to notice
    config = config_for(server, ping_interval_s=interval, ping_timeout_s=timeout, action_timeout_s=10.0)
    client = make_client(config, rec)
    async with running(client):
        await wait_until(lambda: rec.connected == 1)
        await wait_until(lambda: sum(a["Action"] == "Ping" for a in server.actions) >= 3)
        assert rec.disconnects == [] and client.connects == 1  # answered pings keep the link
        silenced = time.monotonic()
        server.ignore_pings = True
        await wait_until(lambda: bool(rec.disconnects))
        detected = time.monotonic() - silenced
        assert "Ping" in rec.disconnects[0]
        # nominal: at most interval + timeout; the bound is 5x that, and still 1/20 of the action timeout
        assert detected <= 5 * (interval + timeout), detected
        await wait_until(lambda: rec.connected == 2)
        assert client.connected and server.clients == 1  # the half-open one was closed on our side


async def test_server_drop_reconnects_and_calls_on_connected_again(server: SimulatedAmiServer) -> None:
    rec = Recorder()
    client = make_client(config_for(server), rec)
    async with running(client):
        await wait_until(lambda: rec.connected == 1)
        server.drop_clients()
        await wait_until(lambda: rec.connected == 2)
        assert len(rec.disconnects) == 1 and "closed" in rec.disconnects[0]
        assert client.connects == 2 and server.logins == 2
        await server.broadcast([{"Event": "AfterReconnect"}])
        await wait_until(lambda: "AfterReconnect" in rec.names())


async def test_shutdown_event_is_logged_and_the_restart_reconnected(
    server: SimulatedAmiServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    client = make_client(config_for(server), rec)
    with caplog.at_level(logging.INFO, logger="callbuddy_pbx.asterisk.ami"):
        async with running(client):
            await wait_until(lambda: rec.connected == 1)
            await server.shutdown_clients(restart=True)
            await wait_until(lambda: rec.connected == 2)
    assert "Shutdown" in rec.names()
    assert rec.disconnects == ["Asterisk restarting"]
    shutdown_logs = [r for r in caplog.records if "shutting down" in r.getMessage()]
    assert len(shutdown_logs) == 1 and "Restart: True" in shutdown_logs[0].getMessage()


async def test_close_logs_off_and_stops_run(server: SimulatedAmiServer) -> None:
    rec = Recorder()
    client = make_client(config_for(server), rec)
    task = asyncio.create_task(client.run())
    await wait_until(lambda: client.connected)
    await client.close()
    await asyncio.wait_for(task, 1.0)
    assert server.actions[-1]["Action"] == "Logoff"
    assert not client.connected and rec.disconnects == []
    # run() has returned; no connect, reader or keepalive task of the client is left to log in again later
    await wait_until(lambda: not [t for t in asyncio.all_tasks() if t.get_name().startswith("ami-")])
    assert server.logins == 1  # no reconnect after close
    with pytest.raises(AmiNotConnected):
        await client.action("Ping")


# -- robustness of the event stream ------------------------------------------------------------------------------------


async def test_a_raising_callback_does_not_stop_later_events(
    server: SimulatedAmiServer, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[str] = []

    def on_event(message: AmiMessage, received_at: float) -> None:
        if message["Event"] == "Boom":
            raise RuntimeError("bug in a handler")
        received.append(message["Event"])

    client = AmiClient(config_for(server), on_event=on_event)
    with caplog.at_level(logging.ERROR, logger="callbuddy_pbx.asterisk.ami"):
        async with running(client):
            await wait_until(lambda: client.connected)
            # one write, so Boom and the events after it arrive in the same TCP read
            await server.broadcast([{"Event": "One"}, {"Event": "Boom"}, {"Event": "Two"}, {"Event": "Three"}])
            await wait_until(lambda: "Three" in received)
            assert client.connects == 1 and client.callback_errors == 1
    assert received[-3:] == ["One", "Two", "Three"]
    (failure,) = [r for r in caplog.records if "on_event callback raised" in r.getMessage()]
    assert failure.exc_info is not None and "bug in a handler" in str(failure.exc_info[1])


@pytest.mark.parametrize("split_inside", ["é", "\r\n\r\n"])
async def test_utf8_name_split_across_writes_arrives_intact(server: SimulatedAmiServer, split_inside: str) -> None:
    rec = Recorder()
    client = make_client(config_for(server), rec)
    data = encode_event({"Event": "Newchannel", "CallerIDName": "José", "CallerIDNum": "15557654321"})
    cut = data.index(split_inside.encode()) + 1  # after the first byte of é / of the terminator
    async with running(client):
        await wait_until(lambda: client.connected)
        await server.replay_raw(data, chunk_sizes=[cut])
        await wait_until(lambda: "Newchannel" in rec.names())
    message = next(m for m, _ in rec.events if m["Event"] == "Newchannel")
    assert message["CallerIDName"] == "José"


async def test_oversized_and_malformed_frames_are_logged_and_skipped(
    server: SimulatedAmiServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    client = make_client(config_for(server), rec)
    huge = b"Event: Huge\r\nData: " + b"x" * (MAX_MESSAGE_BYTES + 100) + b"\r\n\r\n"
    garbage = b"Foo: bar\r\nthis is not AMI\r\n\r\n"
    bad_line = b"Event: HalfBad\r\nno colon in this line\r\nCause: 16\r\n\r\n"
    with caplog.at_level(logging.ERROR):
        async with running(client):
            await wait_until(lambda: client.connected)
            await server.broadcast(huge + garbage + bad_line + b"Event: After\r\n\r\n")
            await wait_until(lambda: "After" in rec.names())
            assert client.connects == 1 and rec.disconnects == []
    assert "Huge" not in rec.names()
    half_bad = next(m for m, _ in rec.events if m["Event"] == "HalfBad")
    assert half_bad["Cause"] == "16"
    errors = " | ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "larger than" in errors
    assert "neither event nor response" in errors
    assert "no colon in this line" in errors and "this is not AMI" in errors


async def test_recorded_call_replayed_with_its_timing(server: SimulatedAmiServer) -> None:
    scenario = TRACES / "06-caller-hangs-up-immediately"
    raw = (scenario / "ami.raw").read_bytes()
    timing = parse_timing((scenario / "ami.timing.jsonl").read_text())
    rec = Recorder()
    client = make_client(config_for(server), rec)
    async with running(client):
        await wait_until(lambda: len(rec.events) == 2)
        began = time.time()
        await server.replay_raw(raw, timing=timing, speed=4.0)
        expected = json.loads((scenario / "meta.json").read_text())["ami_event_counts"]
        await wait_until(lambda: len(rec.events) == sum(expected.values()))
    assert Counter(rec.names()) == expected  # the recording's login events replaced by the simulator's own
    replayed = [t for _, t in rec.events[2:]]
    # The recorded events span 1.1375 .. 1.6414 s after connect: 0.504 s, 0.126 s at speed 4. The last one cannot
    # arrive sooner after the replay began (a lower bound load cannot beat); the span stays below 0.4 s, 3x the
    # nominal, which the recording's own pace (speed ignored: 0.504 s) does not.
    assert replayed[-1] - began >= 0.126 - 0.001
    assert replayed[-1] - replayed[0] < 0.4
    assert server.channels == []  # every channel of the call hung up


# -- secrets ---------------------------------------------------------------------------------------------------------


async def test_secret_never_appears_in_logs(server: SimulatedAmiServer, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "Wr0ng-Secret-Also-Private"
    caplog.set_level(logging.DEBUG)
    bad = make_client(config_for(server, secret=wrong), Recorder())
    async with running(bad):
        await wait_until(lambda: server.login_failures >= 1)
    rec = Recorder()
    config = config_for(server, ping_interval_s=0.1, ping_timeout_s=0.1)
    client = make_client(config, rec)
    async with running(client):
        await wait_until(lambda: rec.connected == 1)
        with pytest.raises(AmiActionError):
            await client.action("NoSuchThing")
        server.drop_clients()
        await wait_until(lambda: rec.connected == 2)
        server.ignore_pings = True
        await wait_until(lambda: rec.connected == 3)
    assert any(r.name.startswith("callbuddy_pbx.asterisk") for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        assert SECRET not in text and wrong not in text, record.getMessage()
    assert SECRET not in repr(config) and wrong not in bad.last_error
    assert all(action.get("Secret") == "********" for action in server.actions if action["Action"] == "Login")


async def test_connect_timeout_when_nothing_answers() -> None:
    handled = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # accept, never send a banner; returns when the client gives up
        finally:
            writer.close()
            handled.set()

    quiet = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = quiet.sockets[0].getsockname()[1]
    try:
        client = AmiClient(
            AsteriskConfig(port=port, secret=SECRET, connect_timeout_s=0.1), on_event=Recorder().on_event
        )
        started = time.monotonic()
        with pytest.raises(AmiConnectError, match=r"within 0\.1 s"):
            async with asyncio.timeout(5.0):  # without a connect timeout: TimeoutError here, and the test fails
                await client.connect()
        assert time.monotonic() - started >= 0.1  # it waited its timeout for the banner
        await asyncio.wait_for(handled.wait(), 5.0)  # the client closed its socket
    finally:
        quiet.close()
        await quiet.wait_closed()
