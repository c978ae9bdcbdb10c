"""AriClient against SimulatedAriServer over real loopback HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from callbuddy_pbx.asterisk.ari import (
    MAX_EVENT_CHARS,
    AriBadRequest,
    AriClient,
    AriClosed,
    AriConflict,
    AriConnectError,
    AriHttpError,
    AriNotFound,
    AriServerError,
    AriTimeout,
    AriUnauthorized,
    AriUnavailable,
    AriUnprocessable,
)
from callbuddy_pbx.config.asterisk import AriConfig
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from tests.waiting import wait_until

PASSWORD = "s3cr3t-ARI-Do-Not-Log-4c1d"


@dataclass
class Recorder:
    """Collects what the client hands to its callbacks; on_connected does the state rebuild GETs."""

    events: list[dict[str, Any]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    connected: list[AriClient] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)

    def on_event(self, event: dict[str, Any], received_at: float) -> None:
        self.events.append(event)
        self.received_at.append(received_at)

    async def on_connected(self, client: AriClient) -> None:
        self.connected.append(client)
        snapshot = {}
        for path in ("channels", "bridges", "endpoints", "deviceStates"):
            snapshot[path] = await client.get(path)
        self.snapshots.append(snapshot)

    def on_disconnected(self, reason: str) -> None:
        self.disconnects.append(reason)

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


def config_for(sim: SimulatedAriServer | str, **overrides: Any) -> AriConfig:
    values: dict[str, Any] = {
        "url": sim if isinstance(sim, str) else sim.url,
        "password": PASSWORD,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "heartbeat_s": 2.0,
        "request_timeout_s": 2.0,
    }
    values.update(overrides)
    return AriConfig(**values)


def make_client(config: AriConfig, recorder: Recorder, **kwargs: Any) -> AriClient:
    return AriClient(config, None, recorder.on_event, recorder.on_connected, recorder.on_disconnected, **kwargs)


@asynccontextmanager
async def running(client: AriClient) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        await client.close()
        await asyncio.wait_for(task, 5.0)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedAriServer]:
    async with SimulatedAriServer(password=PASSWORD) as server:
        yield server


# -- connecting, subscriptions, events -------------------------------------------------------------------------------


async def test_connects_subscribes_and_hands_over_events(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    sources = ("endpoint:PJSIP", "deviceState:PJSIP/102")
    client = make_client(config_for(sim), rec, event_sources=sources)
    assert not client.connected and client.last_event_at is None
    async with running(client):
        await wait_until(lambda: client.ready)
        assert client.connected and client.connects == 1 and len(rec.connected) == 1
        assert rec.connected[0] is client
        app = sim.pbx.apps["callbuddy"]
        assert (app.endpoint_ids, app.device_names) == (["PJSIP"], ["PJSIP/102"])
        subscription = next(r for r in sim.requests if r.path.endswith("/subscription"))
        assert subscription.method == "POST" and subscription.query == {"eventSource": ",".join(sources)}
        before = time.time()
        sim.register("102")
        await wait_until(lambda: len(rec.events) == 4)
        after = time.time()
        assert rec.types() == ["EndpointStateChange", "PeerStatusChange", "ContactStatusChange", "DeviceStateChanged"]
        assert rec.events[0]["endpoint"] == {
            "technology": "PJSIP",
            "resource": "102",
            "state": "online",
            "channel_ids": [],
        }
        assert all(before <= t <= after for t in rec.received_at)
        assert client.events_received == 4 and client.last_event_at == rec.received_at[-1]


async def test_subscriptions_are_never_stacked_on_reconnect_and_are_tidied_on_stop(sim: SimulatedAriServer) -> None:
    """The app outlives its socket with its subscriptions (trace 33): a reconnect must not subscribe again (every
    event would come twice on a real Asterisk), and stopping must leave no app behind to take calls into."""
    rec = Recorder()
    client = make_client(config_for(sim), rec, event_sources=("endpoint:PJSIP",))

    def posts() -> int:
        return sum(r.method == "POST" and r.path.endswith("/subscription") for r in sim.requests)

    async with running(client):
        await wait_until(lambda: client.ready)
        await sim.drop_websockets()  # the socket drops; Asterisk keeps the app and its subscription
        await wait_until(lambda: client.connects == 2 and client.ready)
        assert posts() == 1 and sim.pbx.apps["callbuddy"].endpoint_ids == ["PJSIP"]
    deletes = [r for r in sim.requests if r.method == "DELETE" and r.path.endswith("/subscription")]
    assert [r.query for r in deletes] == [{"eventSource": "endpoint:PJSIP"}]
    assert sim.pbx.apps.get("callbuddy") is None or not sim.pbx.apps["callbuddy"].holds_subscriptions


async def test_subscribe_and_unsubscribe_at_runtime_survive_reconnects(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    client = make_client(config_for(sim), rec)
    async with running(client):
        await wait_until(lambda: client.ready)
        app = await client.subscribe(["deviceState:PJSIP/100", "deviceState:PJSIP/101"])
        assert app["device_names"] == ["PJSIP/101", "PJSIP/100"]
        await client.unsubscribe(["deviceState:PJSIP/101"])
        assert client.event_sources == ("endpoint:PJSIP", "deviceState:PJSIP/100")
        sim.restart(booting_s=0.05)  # Asterisk forgets every subscription
        await wait_until(lambda: client.connects == 2 and client.ready)
        app_after = sim.pbx.apps["callbuddy"]
        assert (app_after.endpoint_ids, app_after.device_names) == (["PJSIP"], ["PJSIP/100"])


async def test_a_failed_subscription_is_logged_and_the_socket_kept(
    sim: SimulatedAriServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    client = make_client(config_for(sim), rec, event_sources=("endpoint:PJSIP/999",))
    async with running(client):
        await wait_until(lambda: client.ready)
        assert client.connected and "Event source does not exist" in client.last_error
        assert "422" in caplog.text and "will not arrive" in caplog.text


async def test_subscriptions_failing_transiently_start_the_connection_over(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    client = make_client(config_for(sim), rec)
    sim.fail_next(503, "Asterisk not booted", path="/ari/applications/callbuddy/subscription", times=3)
    async with running(client):
        await wait_until(lambda: client.connects == 2 and client.ready)
        assert "subscriptions failed" in rec.disconnects[0] and "503" in rec.disconnects[0]
        assert len(rec.connected) == 1  # the state rebuild ran once, on the connection that got its subscriptions
        assert sim.pbx.apps["callbuddy"].endpoint_ids == ["PJSIP"] and sim.max_open_websockets == 1


# -- REST ------------------------------------------------------------------------------------------------------------


async def test_rest_errors_carry_asterisks_status_and_message(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    client = make_client(config_for(sim), rec, event_sources=())
    async with running(client):
        await wait_until(lambda: client.ready)
        caller = sim.inbound_call()
        await wait_until(lambda: "StasisStart" in rec.types())
        with pytest.raises(AriServerError) as failed:
            await client.originate("PJSIP/102", app_args=["dialed", caller], originator=caller)
        assert (failed.value.status, failed.value.message) == (500, "Allocation failed")  # trace 30: {"error": ...}
        assert "POST /channels?endpoint=PJSIP/102" in str(failed.value) and "Allocation failed" in str(failed.value)
        with pytest.raises(AriNotFound) as missing:
            await client.get("channels/nope")
        assert (missing.value.status, missing.value.message, missing.value.method) == (404, "Channel not found", "GET")
        outside = sim.pbx.inbound_call(app="nobody")  # failed over to the dialplan: not in Stasis
        with pytest.raises(AriConflict) as conflict:
            await client.answer(outside)
        assert conflict.value.message == "Channel not in Stasis application"
        bridge = await client.create_bridge("callbuddy")
        with pytest.raises(AriUnprocessable) as unusable:
            await client.add_to_bridge(bridge["id"], [caller, outside])
        assert unusable.value.status == 422
        with pytest.raises(AriBadRequest):
            await client.hangup(caller, "bogus")
        assert isinstance(failed.value, AriHttpError) and failed.value.body == {"error": "Allocation failed"}
        sim.restart(booting_s=1.0)
        with pytest.raises(AriUnavailable) as booting:
            await client.get("channels")
        assert (booting.value.status, booting.value.message) == (503, "Asterisk not booted")


async def test_helpers_drive_a_call_end_to_end(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    sim.phone_answers_after("101", 0.05)
    client = make_client(config_for(sim), rec, event_sources=())
    async with running(client):
        await wait_until(lambda: client.ready)
        caller = sim.inbound_call()
        await wait_until(lambda: "StasisStart" in rec.types())
        await client.ring(caller)
        leg = await client.originate("PJSIP/101", app_args=["dialed", caller], originator=caller, timeout_s=5)
        assert leg["state"] == "Down" and leg["name"].startswith("PJSIP/101-")
        await wait_until(lambda: rec.types().count("StasisStart") == 2)
        await client.answer(caller)
        bridge = await client.create_bridge("callbuddy")
        await client.add_to_bridge(bridge["id"], [caller, leg["id"]])
        sim.caller_hangs_up(caller)
        await wait_until(lambda: "StasisEnd" in rec.types())
        await client.hangup(leg["id"])
        await client.destroy_bridge(bridge["id"])
        await wait_until(lambda: rec.types()[-1] == "BridgeDestroyed")  # events and answers use separate sockets
        assert await client.get("channels") == [] and await client.get("bridges") == []


async def test_wrong_password_on_rest_is_unauthorized(sim: SimulatedAriServer) -> None:
    client = AriClient(config_for(sim, password="wrong"))
    try:
        with pytest.raises(AriUnauthorized) as refused:
            await client.get("channels")
        assert (refused.value.status, refused.value.message) == (401, "Authentication required")
    finally:
        await client.close()


async def test_unreachable_server_and_silent_server_raise_clear_errors() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AriClient(config_for(f"http://127.0.0.1:{port}", request_timeout_s=0.2))
    try:
        with pytest.raises(AriTimeout, match=r"GET /channels: no answer within 0.2 s"):
            await client.get("channels")
    finally:
        await client.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    client = AriClient(config_for(f"http://127.0.0.1:{port}"))  # nothing listens there any more
    try:
        with pytest.raises(AriConnectError, match="cannot reach"):
            await client.get("channels")
    finally:
        await client.close()


# -- drops, reconnects, heartbeats -----------------------------------------------------------------------------------


async def test_a_socket_ending_without_close_frame_is_a_drop_and_state_is_rebuilt(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    client = make_client(config_for(sim), rec)
    async with running(client):
        await wait_until(lambda: client.ready)
        caller = sim.inbound_call()
        await sim.drop_websockets()  # bare FIN, like trace 34
        await wait_until(lambda: client.connects == 2 and client.ready)
        assert "without a close frame (code 1006)" in rec.disconnects[0]
        assert client.last_error == rec.disconnects[0]
        # on_connected ran again and saw the call in progress (the state rebuild); subscriptions were renewed
        assert len(rec.connected) == 2 and [c["id"] for c in rec.snapshots[1]["channels"]] == [caller]
        assert [e["resource"] for e in rec.snapshots[1]["endpoints"]] == ["trunk", "102", "101", "100"]
        assert sim.pbx.apps["callbuddy"].endpoint_ids == ["PJSIP"]
        await sim.drop_websockets(close_frame=True)
        await wait_until(lambda: client.connects == 3 and client.ready)
        assert "closed the WebSocket (code 1011" in rec.disconnects[1]
        assert len(rec.connected) == len(rec.snapshots) == 3
        assert sim.max_open_websockets == 1


async def test_503_while_booting_is_retried_with_capped_backoff(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    low, cap, booting = 0.02, 0.16, 8  # the backoff reaches its cap at the 3rd gap; 8 attempts are refused
    client = make_client(config_for(sim, reconnect_min_s=low, reconnect_max_s=cap), rec)
    async with running(client):
        await wait_until(lambda: client.ready)
        # Booting for a number of attempts rather than a time: a busy machine makes fewer attempts per second.
        sim.fail_next(503, "Asterisk not booted", path="/ari/events", times=booting)
        sim.restart(booting_s=0)  # the socket ends without a close frame, as in trace 34
        await wait_until(lambda: client.connects == 2 and client.ready)
    attempts = [r for r in sim.requests if r.path == "/ari/events" and r.status == 503]
    assert len(attempts) == booting and all(r.body == {"message": "Asterisk not booted"} for r in attempts)
    assert client.connect_failures == booting
    assert "1006" in rec.disconnects[0] and "503" in client.last_error
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    # The wait before attempt k+1 is at least d/2, d doubling from 2 x reconnect_min_s up to the cap: lower bounds a
    # busy machine can only exceed (less 1 ms of timer rounding). Without growth the later gaps stay near 0.02 s.
    floors = [min(cap, low * 2 ** (k + 1)) / 2 for k in range(len(gaps))]
    assert all(gap >= floor - 0.001 for gap, floor in zip(gaps, floors, strict=True)), (gaps, floors)
    # Capped: every gap is at most the cap plus the attempt itself, bounded here at 4x the cap. Uncapped, the wait
    # doubles on to >= 0.64 s by the 6th gap and >= 1.28 s by the 7th.
    assert max(gaps) < 4 * cap, gaps


async def test_restart_that_refuses_tcp_first_is_survived(
    sim: SimulatedAriServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    client = make_client(config_for(sim, reconnect_min_s=0.02, reconnect_max_s=0.05), rec)
    async with running(client):
        await wait_until(lambda: client.ready)
        sim.restart(down_s=0.3, booting_s=0.2)
        await wait_until(lambda: client.connects == 2 and client.ready, within=5.0)
    # It got in (above) after at least one attempt found nothing listening: a refused connect is retried too.
    refused = [r for r in caplog.records if "cannot connect" in r.getMessage() and "retrying" in r.getMessage()]
    assert refused, "no attempt met the closed port"


async def test_heartbeat_detects_a_silent_server_within_seconds(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    heartbeat = 0.2
    client = make_client(config_for(sim, heartbeat_s=heartbeat, request_timeout_s=10.0), rec)
    async with running(client):
        await wait_until(lambda: client.ready)
        sim.silent = True  # half-open: no pongs, no events
        silenced = time.monotonic()
        await wait_until(lambda: bool(rec.disconnects))
        detected_after = time.monotonic() - silenced
        assert "ping" in rec.disconnects[0]
        # nominal: a ping after heartbeat_s of silence, its pong due within half of it (0.3 s); bound at 5x that
        assert detected_after < 5 * 1.5 * heartbeat, detected_after
        await wait_until(lambda: client.connects == 2 and client.ready)
        sim.register("102")  # the new socket works
        await wait_until(lambda: "EndpointStateChange" in rec.types())


async def test_never_two_listeners(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    client = make_client(config_for(sim), rec)
    async with running(client):
        await wait_until(lambda: client.ready)
        with pytest.raises(RuntimeError, match="already running"):
            await client.run()
        for _ in range(3):
            await asyncio.gather(client.reconnect("test"), client.reconnect("test"), sim.drop_websockets())
            await wait_until(lambda: client.ready)
        assert sim.max_open_websockets == 1 and sim.open_websockets == 1
        sim.register("102")
        # A marker queued behind the registration's events on the one socket: once it is here, so is all before it.
        sim.send_raw("callbuddy", '{"type": "TestMarker"}')
        await wait_until(lambda: "TestMarker" in rec.types())
        assert rec.types().count("EndpointStateChange") == 1  # no duplicate delivery
        assert rec.types().count("TestMarker") == 1


async def test_close_sends_a_close_frame_and_the_client_cannot_be_reused(sim: SimulatedAriServer) -> None:
    rec = Recorder()
    client = make_client(config_for(sim), rec)
    task = asyncio.create_task(client.run())
    await wait_until(lambda: client.ready)
    await client.close()
    await asyncio.wait_for(task, 2.0)
    assert not client.connected and rec.disconnects == []  # our own close is not a drop
    await wait_until(lambda: sim.open_websockets == 0)
    with pytest.raises(AriClosed):
        await client.get("channels")
    with pytest.raises(AriClosed):
        await client.run()


async def test_wrong_password_on_the_websocket_waits_the_longest_backoff(
    sim: SimulatedAriServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    longest = 0.3
    client = make_client(config_for(sim, password="wrong-pass-1234", reconnect_max_s=longest), rec)
    async with running(client):
        await wait_until(lambda: client.connect_failures >= 2)
    refused = [r for r in sim.requests if r.path == "/ari/events" and r.status == 401]
    # reconnect_max_s x 1.0-1.1 between attempts, not the 0.05 s minimum: a lower bound load can only lengthen
    assert len(refused) >= 2 and refused[1].at - refused[0].at >= longest - 0.001
    assert client.connects == 0
    assert "401" in client.last_error and "callbuddy" in client.last_error
    assert "wrong-pass-1234" not in caplog.text and "wrong-pass-1234" not in client.last_error
    assert any("retrying in" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


# -- frames and callbacks --------------------------------------------------------------------------------------------


async def test_malformed_frames_are_logged_with_an_excerpt_and_skipped(
    sim: SimulatedAriServer, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    client = make_client(config_for(sim), rec)
    async with running(client):
        await wait_until(lambda: client.ready)
        sim.send_raw("callbuddy", "this is not json at all")
        sim.send_raw("callbuddy", "[1, 2, 3]")
        sim.send_raw("callbuddy", '{"no": "type"}')
        sim.send_raw("callbuddy", '{"type": "Huge", "pad": "' + "x" * MAX_EVENT_CHARS + '"}')
        sim.register("102")
        await wait_until(lambda: len(rec.events) == 3)
        assert rec.types()[0] == "EndpointStateChange" and client.malformed_events == 4
        assert client.connected and client.connects == 1
    assert "this is not json" in caplog.text and "not an event object" in caplog.text
    assert max(len(r.getMessage()) for r in caplog.records) < 400  # excerpts, not whole frames


async def test_a_frame_nested_thousands_deep_is_skipped_and_the_link_stays_up(sim: SimulatedAriServer) -> None:
    """2 KB of brackets: within the size limit, but too deep for the JSON parser. It killed the link for good."""
    rec = Recorder()
    client = make_client(config_for(sim), rec)
    async with running(client):
        await wait_until(lambda: client.ready)
        sim.send_raw("callbuddy", "[" * 1500 + "]" * 1500)
        sim.send_raw("callbuddy", '{"type": "Deep", "x": ' + "[" * 1500 + "]" * 1500 + "}")
        sim.register("102")
        await wait_until(lambda: rec.types()[:1] == ["EndpointStateChange"])
        assert client.malformed_events == 2
        assert client.connected and client.connects == 1


async def test_a_raising_callback_does_not_break_the_stream(
    sim: SimulatedAriServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def on_event(event: dict[str, Any], received_at: float) -> None:
        seen.append(event["type"])
        if len(seen) == 1:
            raise ValueError("bug in a consumer")

    client = AriClient(config_for(sim), "callbuddy", on_event)
    async with running(client):
        await wait_until(lambda: client.ready)
        sim.register("102")
        await wait_until(lambda: len(seen) == 3)
        assert client.callback_errors == 1 and client.events_received == 3 and client.connected
    assert "bug in a consumer" in caplog.text


# -- secrets ---------------------------------------------------------------------------------------------------------


async def test_the_password_never_reaches_logs_errors_or_reprs(
    sim: SimulatedAriServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = base64.b64encode(f"callbuddy:{PASSWORD}".encode()).decode()
    rec = Recorder()
    client = make_client(config_for(sim), rec)
    texts = [repr(client._config)]
    async with running(client):
        await wait_until(lambda: client.ready)
        try:
            await client.originate("PJSIP/102")
        except AriHttpError as exc:
            texts.append(str(exc))
        await sim.drop_websockets()
        await wait_until(lambda: client.connects == 2)
        sim.restart(booting_s=0.2)
        await wait_until(lambda: client.connects == 3 and client.ready)
        texts.append(client.last_error)
    bad = AriClient(config_for(sim, password=PASSWORD + "-typo"), None, rec.on_event, event_sources=())
    async with running(bad):
        await wait_until(lambda: bad.connect_failures >= 1)
    texts.append(bad.last_error)
    everything = caplog.text + "\n".join(texts) + "\n".join(str(r.query) for r in sim.requests)
    assert PASSWORD not in everything and token not in everything
    assert "api_key" not in everything


def test_url_forms() -> None:
    plain = AriClient(AriConfig(url="http://pbx.example:8088/ari/"))
    assert plain.base_url == "http://pbx.example:8088" and str(plain._ws_url) == "ws://pbx.example:8088/ari/events"
    tls = AriClient(AriConfig(url="https://pbx.example:8089"))
    assert str(tls._ws_url) == "wss://pbx.example:8089/ari/events"
    assert "secret-xyz" not in repr(AriConfig(password="secret-xyz"))
