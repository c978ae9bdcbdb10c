"""SimulatedAriServer against the real Asterisk recordings, and its REST / fault behaviour.

Fidelity: for traces 11, 12, 29, 30, 31 the simulator is driven through the same steps as the recording (an inbound
call into Stasis, the phones behaving as meta.json says, and an app doing what acceptance/record_ari.py did, per the
traces README) with times scaled down; 33 and 34 likewise for presence and the restart. The WebSocket events are
compared with ari.jsonl after normalising ids, names and timestamps to roles ("caller", "100", "bridge"...):

- per role (each channel, the bridge, each endpoint and device), the sequence of (type, state, key fields: dial
  status, causes, soft, args, variable values, bridge members, endpoint / contact / device states) must be equal;
  the one order the recordings themselves vary (a leg's `Dial RINGING` vs its `ChannelStateChange Ringing`) is
  canonicalised;
- across roles, the order of everything but the ringing phase and device states must be equal (legs ringing at the
  same moment interleave differently from run to run, and device states come on their own topic).

RTPAUDIOQOS* variables (no media in the simulator) are left out, and in 33 all ChannelVarset (the dialplan's
DIAL* bookkeeping). REST answers are compared with ari-rest.jsonl: method, path, status, Asterisk's message and the
key parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callbuddy_pbx.asterisk.ari import AriClient, AriNotFound, AriServerError
from callbuddy_pbx.config.asterisk import AriConfig
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from tests.waiting import wait_until

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces" / "asterisk"
SCALE = 0.05  # recorded seconds -> test seconds
PASSWORD = "callbuddy-secret"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


MARKER = "TestMarker"  # a frame type Asterisk never sends


async def drained(
    sim: SimulatedAriServer, apps: dict[str, list[dict[str, Any]]], idle: Callable[[], bool] = lambda: True
) -> None:
    """Wait until no more events can come to `apps` (app name -> the events it received), then drop the markers.

    The simulated PBX has no channel or bridge left (so no timer of theirs can fire) and the receiving side has dealt
    with everything it got (`idle`); then a marker sent to each app's socket behind whatever is still queued there
    arrives, and the receiving side is idle again. Then an event that arrives late is counted, not missed."""
    await wait_until(lambda: not sim.pbx.channels and not sim.pbx.bridges and idle())
    for app in apps:
        sim.send_raw(app, json.dumps({"type": MARKER}))
    await wait_until(lambda: all(any(e["type"] == MARKER for e in events) for events in apps.values()) and idle())
    for events in apps.values():
        events[:] = [e for e in events if e["type"] != MARKER]


# -- normalisation --------------------------------------------------------------------------------------------------


class Roles:
    """Maps one run's ids, channel names and SIP call ids to roles, learned from the events and REST answers."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    @staticmethod
    def role_of_name(name: str) -> str:
        resource = name.split("/", 1)[1].rsplit("-", 1)[0]
        return "caller" if resource == "trunk" else resource

    def learn_channel(self, snapshot: dict[str, Any]) -> None:
        role = self.role_of_name(snapshot["name"])
        for key in ("id", "name", "protocol_id"):
            self.names[snapshot[key]] = role

    def learn(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            for key in ("channel", "caller", "peer"):
                snapshot = event.get(key)
                if isinstance(snapshot, dict) and "name" in snapshot:
                    self.learn_channel(snapshot)
            if isinstance(event.get("bridge"), dict):
                self.names[event["bridge"]["id"]] = "bridge"

    def learn_rest(self, body: Any) -> None:
        if isinstance(body, dict) and "name" in body and "protocol_id" in body:
            self.learn_channel(body)
        elif isinstance(body, dict) and "bridge_type" in body:
            self.names[body["id"]] = "bridge"

    def value(self, text: Any) -> Any:
        return self.names.get(text, text) if isinstance(text, str) else text

    def channel(self, snapshot: dict[str, Any]) -> str:
        return self.names.get(snapshot["id"]) or self.role_of_name(snapshot["name"])


Key = tuple[Any, ...]


def event_key(event: dict[str, Any], roles: Roles) -> tuple[str, Key]:
    """(group, key): the group is the role the event is about."""
    kind = event["type"]
    channel = event.get("channel") or (event.get("peer") if kind == "Dial" else None)
    key: list[Any] = [kind]
    group = ""
    if channel is not None:
        group = roles.channel(channel)
        ringing = kind == "Dial" and event["dialstatus"] == "RINGING"
        key += [group, "-" if ringing else channel["state"]]
    if kind == "Dial":
        caller = event.get("caller")
        key += [event["dialstatus"], event["dialstring"], roles.channel(caller) if caller else None]
    elif kind in ("ChannelHangupRequest", "ChannelDestroyed"):
        key += [event.get("cause"), event.get("soft"), event.get("tech_cause"), event.get("cause_txt")]
    elif kind == "StasisStart":
        key.append(tuple(roles.value(arg) for arg in event["args"]))
    elif kind == "ChannelVarset":
        key += [event["variable"], roles.value(event["value"])]
    elif kind == "ChannelConnectedLine":
        key.append(channel["connected"]["name"] if channel else None)
    elif kind == "ChannelDialplan":
        key.append(event["dialplan_app"])
    if isinstance(event.get("bridge"), dict):
        bridge = event["bridge"]
        group = group or "bridge"
        key += ["bridge", tuple(roles.value(c) for c in bridge["channels"]), bridge["bridge_class"]]
    if isinstance(event.get("endpoint"), dict) and channel is None:
        endpoint = event["endpoint"]
        group = f"endpoint {endpoint['resource']}"
        key += [endpoint["resource"], endpoint["state"], len(endpoint["channel_ids"])]
    if kind == "PeerStatusChange":
        key.append(event["peer"]["peer_status"])
    if "contact_info" in event:
        key += [event["contact_info"]["contact_status"], event["contact_info"]["uri"]]
    if "device_state" in event:
        group = f"device {event['device_state']['name']}"
        key += [event["device_state"]["name"], event["device_state"]["state"]]
    return group, tuple(key)


def keep(event: dict[str, Any], *, varsets: bool) -> bool:
    if event["type"] == "ChannelVarset":
        return varsets and not event["variable"].startswith("RTPAUDIOQOS")
    if event["type"] == "DeviceStateChanged":
        return not event["device_state"]["name"].startswith("Queue:")  # the simulator has no queues
    return True


def ring_phase(key: Key) -> bool:
    kind = key[0]
    return (
        (kind == "Dial" and key[3] in ("", "RINGING"))
        or (kind == "ChannelStateChange" and key[2] == "Ringing")
        or kind == "DeviceStateChanged"
    )


@dataclass
class Normalised:
    groups: dict[str, list[Key]]
    milestones: list[Key]
    sequence: list[Key]


def normalise(events: list[dict[str, Any]], roles: Roles, *, varsets: bool = True) -> Normalised:
    roles.learn(events)
    groups: dict[str, list[Key]] = {}
    milestones: list[Key] = []
    sequence: list[Key] = []
    for event in events:
        if not keep(event, varsets=varsets):
            continue
        group, key = event_key(event, roles)
        groups.setdefault(group, []).append(key)
        sequence.append(key)
        if not ring_phase(key):
            milestones.append(key)
    for keys in groups.values():  # Dial RINGING / ChannelStateChange Ringing come in either order (11 vs 12)
        for i in range(len(keys) - 1):
            first, second = keys[i], keys[i + 1]
            if first[0] == "Dial" and first[3] == "RINGING" and second[0] == "ChannelStateChange":
                keys[i], keys[i + 1] = second, first
    return Normalised(groups, milestones, sequence)


def assert_same(recorded: Normalised, simulated: Normalised) -> None:
    assert simulated.groups.keys() == recorded.groups.keys()
    for group, keys in recorded.groups.items():
        assert simulated.groups[group] == keys, f"events about {group} differ"
    assert simulated.milestones == recorded.milestones


RestKey = tuple[str, str, int, str | None, tuple[tuple[str, str], ...]]
_REST_PARAMS = ("endpoint", "app", "appArgs", "originator", "callerId", "reason", "type", "name", "channel")


def rest_key(method: str, path: str, query: dict[str, str], status: int, body: Any, roles: Roles) -> RestKey:
    path = path.split("/ari", 1)[1]
    segments = "/".join(str(roles.value(part)) for part in path.split("/"))
    message = body.get("message") or body.get("error") if isinstance(body, dict) and status >= 400 else None
    params = tuple(
        (name, ",".join(str(roles.value(v)) for v in query[name].split(","))) for name in _REST_PARAMS if name in query
    )
    return (method, segments, status, message, params)


def recorded_rest(trace: str, roles: Roles) -> list[RestKey]:
    rows = read_jsonl(TRACES / trace / "ari-rest.jsonl")
    for row in rows:
        roles.learn_rest(row["body"])
    keys = []
    for row in rows:
        path = row["url"].split("127.0.0.1:8088", 1)[1].split("?", 1)[0]
        keys.append(rest_key(row["method"], path, row["params"], row["status"], row["body"], roles))
    return keys


def simulated_rest(sim: SimulatedAriServer, roles: Roles) -> list[RestKey]:
    rows = [r for r in sim.requests if r.path != "/ari/events"]
    for row in rows:
        roles.learn_rest(row.body)
    return [rest_key(r.method, r.path, r.query, r.status, r.body, roles) for r in rows]


# -- the recorded test app, re-enacted ------------------------------------------------------------------------------


@dataclass
class RecordedStasisApp:
    """What acceptance/record_ari.py `stasis` did (traces README): ring the caller, originate to every endpoint;
    the first leg to enter Stasis wins (answer, mixing bridge, hang up the rest with answered_elsewhere); nobody
    left: hang up the caller with no_answer; the caller gone first: hang up the ringing legs (no reason); after a
    bridged call, hang up the winner and destroy the bridge."""

    endpoints: list[str]
    timeout_s: float
    client: AriClient | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    caller: str | None = None
    caller_number: str = ""
    caller_alive: bool = False
    legs: set[str] = field(default_factory=set)
    winner: str | None = None
    bridge: str | None = None
    bridged: asyncio.Event = field(default_factory=asyncio.Event)
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    handled: int = 0  # events handled to the end (with the requests they led to)

    def on_event(self, event: dict[str, Any], received_at: float) -> None:
        self.events.append(event)
        self.queue.put_nowait(event)

    def idle(self) -> bool:
        return self.handled == len(self.events)

    async def run(self) -> None:
        while True:
            await self.handle(await self.queue.get())
            self.handled += 1

    async def handle(self, event: dict[str, Any]) -> None:
        client = self.client
        assert client is not None
        kind, channel = event["type"], event.get("channel", {})
        if kind == "StasisStart" and event["args"][0] == "inbound":
            self.caller, self.caller_alive = channel["id"], True
            self.caller_number = channel["caller"]["number"]
            await client.ring(self.caller)
            for endpoint in self.endpoints:
                try:
                    leg = await client.originate(
                        endpoint,
                        app_args=["dialed", self.caller],
                        timeout_s=self.timeout_s,
                        caller_id=self.caller_number,
                        originator=self.caller,
                    )
                except AriServerError:
                    continue
                self.legs.add(leg["id"])
            if not self.legs:
                await client.hangup(self.caller, "no_answer")
        elif kind == "StasisStart" and event["args"][0] == "dialed":
            if self.winner is None and self.caller_alive and self.caller is not None:
                self.winner = channel["id"]
                self.legs.discard(self.winner)
                await client.answer(self.caller)
                self.bridge = (await client.create_bridge("callbuddy"))["id"]
                await client.add_to_bridge(self.bridge, [self.caller, self.winner])
                for other in sorted(self.legs):
                    await self._hangup(other, "answered_elsewhere")
                self.bridged.set()
        elif kind == "ChannelDestroyed" and channel["id"] in self.legs:
            self.legs.discard(channel["id"])
            if self.winner is None and not self.legs and self.caller_alive and self.caller is not None:
                await client.hangup(self.caller, "no_answer")
        elif kind == "StasisEnd" and channel["id"] == self.caller:
            self.caller_alive = False
            if self.winner is not None and self.bridge is not None:
                await self._hangup(self.winner)
                await client.destroy_bridge(self.bridge)
            else:
                for leg in sorted(self.legs):
                    await self._hangup(leg)

    async def _hangup(self, channel_id: str, reason: str | None = None) -> None:
        assert self.client is not None
        with contextlib.suppress(AriNotFound):  # it ended by itself meanwhile
            await self.client.hangup(channel_id, reason)


def config_for(sim: SimulatedAriServer, **overrides: Any) -> AriConfig:
    values: dict[str, Any] = {
        "url": sim.url,
        "password": PASSWORD,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "heartbeat_s": 2.0,
        "request_timeout_s": 2.0,
    }
    values.update(overrides)
    return AriConfig(**values)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedAriServer]:
    async with SimulatedAriServer(password=PASSWORD) as server:
        yield server


@dataclass(frozen=True)
class StasisTrace:
    name: str
    endpoints: list[str]
    timeout_s: float  # recorded originate timeout
    answers: dict[str, float] = field(default_factory=dict)  # desk -> answers after (recorded s)
    unregistered: tuple[str, ...] = ()
    hangup_after_bridged_s: float | None = None  # the caller's talk time
    hangup_after_start_s: float | None = None  # the caller gives up while ringing


STASIS_TRACES = [
    StasisTrace("11-stasis-ari-no-answer", ["PJSIP/100"], 10),
    StasisTrace("12-stasis-ari-answered", ["PJSIP/100"], 10, {"100": 3.0}, hangup_after_bridged_s=7.0),
    StasisTrace(
        "29-stasis-ring-all-second-answers",
        ["PJSIP/100", "PJSIP/101"],
        15,
        {"101": 3.0},
        hangup_after_bridged_s=3.0,
    ),
    StasisTrace("30-stasis-originate-unregistered", ["PJSIP/102"], 15, unregistered=("102",)),
    StasisTrace("31-stasis-caller-hangs-up-while-ringing", ["PJSIP/100", "PJSIP/101"], 15, hangup_after_start_s=4.0),
]


@pytest.mark.parametrize("trace", STASIS_TRACES, ids=lambda t: t.name[:2])
async def test_stasis_trace_events_and_rest_answers_match_the_recording(
    sim: SimulatedAriServer, trace: StasisTrace
) -> None:
    recorded_events = read_jsonl(TRACES / trace.name / "ari.jsonl")
    for desk in trace.unregistered:
        sim.unregister(desk)
    for desk, after in trace.answers.items():
        sim.phone_answers_after(desk, after * SCALE)
    app = RecordedStasisApp(trace.endpoints, round(trace.timeout_s * SCALE, 3))
    client = AriClient(config_for(sim), "callbuddy", app.on_event, event_sources=())  # as recorded: none
    app.client = client
    runner = asyncio.create_task(client.run())
    worker = asyncio.create_task(app.run())
    try:
        await wait_until(lambda: client.ready)
        sim.requests.clear()
        caller = sim.inbound_call()
        if trace.hangup_after_start_s is not None:
            await asyncio.sleep(trace.hangup_after_start_s * SCALE)
            sim.caller_hangs_up(caller)
        if trace.hangup_after_bridged_s is not None:
            await asyncio.wait_for(app.bridged.wait(), 5.0)
            await asyncio.sleep(trace.hangup_after_bridged_s * SCALE)
            sim.caller_hangs_up(caller)
        wanted = sum(1 for e in recorded_events if keep(e, varsets=True))
        await wait_until(lambda: sum(1 for e in app.events if keep(e, varsets=True)) >= wanted)
        await drained(sim, {"callbuddy": app.events}, app.idle)  # then an extra event is compared, not missed
    finally:
        worker.cancel()
        await client.close()
        await asyncio.wait_for(runner, 5.0)

    recorded_roles, simulated_roles = Roles(), Roles()
    assert_same(normalise(recorded_events, recorded_roles), normalise(app.events, simulated_roles))
    assert simulated_rest(sim, simulated_roles) == recorded_rest(trace.name, recorded_roles)
    assert not sim.pbx.channels and not sim.pbx.bridges  # every channel and bridge gone, as at the recording's end


async def test_trace_33_presence_events_subscriptions_and_the_left_over_app(sim: SimulatedAriServer) -> None:
    folder = TRACES / "33-ari-endpoint-and-contact-events"
    recorded = read_jsonl(folder / "ari.jsonl")
    recorded_all = read_jsonl(folder / "ari-subscribeall.jsonl")
    main_events: list[dict[str, Any]] = []
    all_events: list[dict[str, Any]] = []

    async def main_connected(client: AriClient) -> None:
        await client.get("applications/callbuddy")
        await client.get("endpoints")

    async def all_connected(client: AriClient) -> None:
        await client.get("applications/callbuddy-all")

    sources = ["endpoint:PJSIP", "deviceState:PJSIP/100", "deviceState:PJSIP/101", "deviceState:PJSIP/102"]
    main = AriClient(
        config_for(sim), "callbuddy", lambda e, t: main_events.append(e), main_connected, event_sources=sources
    )
    side = AriClient(
        config_for(sim),
        "callbuddy-all",
        lambda e, t: all_events.append(e),
        all_connected,
        event_sources=(),
        subscribe_all=True,
    )
    tasks = [asyncio.create_task(main.run()), asyncio.create_task(side.run())]
    await wait_until(lambda: main.ready and side.ready)
    sim.register("102", "sip:102@127.0.0.1:5103")
    await asyncio.sleep(0.05)
    sim.unregister("102")
    await asyncio.sleep(0.05)
    sim.phone_answers_after("100", 2.0 * SCALE)
    sim.internal_call("101", "100", talk_s=2.0 * SCALE)
    await wait_until(lambda: sum(e["type"] == "ChannelDestroyed" for e in main_events) == 2)
    await wait_until(lambda: sum(e["type"] == "ChannelDestroyed" for e in all_events) == 2)
    await drained(sim, {"callbuddy": main_events, "callbuddy-all": all_events})
    await main.get("endpoints")
    await main.close(unsubscribe=False)  # as the recording did: the app is left holding its subscriptions
    await side.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 5.0)

    # The endpoint-subscribed app: same events, in the same order (no ChannelVarset: dialplan bookkeeping).
    recorded_main = normalise(recorded, Roles(), varsets=False)
    simulated_main = normalise(main_events, Roles(), varsets=False)
    assert_same(recorded_main, simulated_main)
    assert simulated_main.sequence == recorded_main.sequence
    # subscribeAll: the same kinds minus EndpointStateChange, plus the Dial() bridge's events.
    assert_same(normalise(recorded_all, Roles(), varsets=False), normalise(all_events, Roles(), varsets=False))
    assert not any(e["type"] == "EndpointStateChange" for e in all_events)

    rest = [r for r in sim.requests if r.path != "/ari/events"]
    recorded_rest_rows = read_jsonl(folder / "ari-rest.jsonl")
    main_rest = [r for r in rest if "callbuddy-all" not in r.path]
    # Ours first asks what the app holds before subscribing (nothing, on a fresh app): not in the recording.
    assert (main_rest[0].method, main_rest[0].path, main_rest[0].body["endpoint_ids"]) == (
        "GET",
        "/ari/applications/callbuddy",
        [],
    )
    main_rest = main_rest[1:]
    assert [(r.method, r.path, r.status) for r in main_rest] == [
        (row["method"], row["url"].split(":8088", 1)[1].split("?", 1)[0], row["status"]) for row in recorded_rest_rows
    ]
    assert main_rest[0].query == recorded_rest_rows[0]["params"]
    assert main_rest[0].body == recorded_rest_rows[0]["body"]  # endpoint_ids ["PJSIP"], device_names newest first
    assert main_rest[1].body == recorded_rest_rows[1]["body"]
    for ours, theirs in zip(main_rest[2:], recorded_rest_rows[2:], strict=True):
        assert [(e["resource"], e["state"], e["channel_ids"]) for e in ours.body] == [
            (e["resource"], e["state"], e["channel_ids"]) for e in theirs["body"]
        ]
    side_rest = read_jsonl(folder / "ari-subscribeall-rest.jsonl")
    assert [r.body for r in rest if r.path == "/ari/applications/callbuddy-all"] == [side_rest[0]["body"]]

    # After the socket closed: still listed with its subscriptions; DELETE them (works without a socket); one more
    # connect + close; then gone (ari-after-close.jsonl).
    after = [row for row in read_jsonl(folder / "ari-after-close.jsonl") if "method" in row]
    auth = {"Authorization": aiohttp.encode_basic_auth("callbuddy", PASSWORD)}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.get(f"{sim.url}/ari/applications") as response:
            assert (response.status, await response.json()) == (after[0]["status"], after[0]["body"])
        async with http.delete(f"{sim.url}/ari/applications/callbuddy/subscription", params=after[1]["params"]) as r:
            assert (r.status, await r.json()) == (after[1]["status"], after[1]["body"])
        async with http.get(f"{sim.url}/ari/applications") as response:
            assert [a["name"] for a in await response.json()] == ["callbuddy"]  # not yet gone
        async with http.ws_connect(f"{sim.url}/ari/events", params={"app": "callbuddy"}) as ws:
            await ws.close()
        await wait_until(lambda: "callbuddy" not in sim.pbx.apps)
        async with http.get(f"{sim.url}/ari/applications") as response:
            assert (response.status, await response.json()) == (after[2]["status"], after[2]["body"])


async def test_trace_34_restart_drops_without_close_frame_then_503_then_reconnects(
    sim: SimulatedAriServer,
) -> None:
    folder = TRACES / "34-ari-websocket-drop-on-restart"
    recorded_rest_rows = read_jsonl(folder / "ari-rest.jsonl")
    connection_log = read_jsonl(folder / "ari-connection.jsonl")
    events: list[dict[str, Any]] = []
    disconnects: list[str] = []
    bodies: list[Any] = []

    async def on_connected(client: AriClient) -> None:
        bodies.append(await client.get("applications"))

    client = AriClient(
        config_for(sim, reconnect_min_s=0.2, reconnect_max_s=1.0),
        "callbuddy",
        lambda e, t: events.append(e),
        on_connected,
        disconnects.append,
        event_sources=(),
    )
    runner = asyncio.create_task(client.run())
    await wait_until(lambda: len(bodies) == 1)
    sim.restart(booting_s=0.3)
    await wait_until(lambda: len(bodies) == 2, within=5.0)
    await client.close()
    await asyncio.wait_for(runner, 5.0)

    assert events == []  # Asterisk sent no WebSocket message at all, before or after
    assert bodies == [row["body"] for row in recorded_rest_rows]
    # aiohttp saw CLOSED with code 1006 and no close frame; the next attempt got 503; the one after connected.
    assert connection_log[1]["close_code"] == 1006 and "1006" in disconnects[0] and "close frame" in disconnects[0]
    assert connection_log[3]["status"] == 503
    attempts = [r for r in sim.requests if r.path == "/ari/events"]  # logged as each ends
    assert [r.status for r in attempts] == [101, 503, 101]
    refused = next(r for r in attempts if r.status == 503)
    assert refused.body == {"message": "Asterisk not booted"}
    assert client.connects == 2 and sim.max_open_websockets == 1


# -- REST behaviour and scenario controls ---------------------------------------------------------------------------


async def rest(sim: SimulatedAriServer, method: str, path: str, **params: str) -> tuple[int, Any]:
    auth = {"Authorization": aiohttp.encode_basic_auth("callbuddy", PASSWORD)}
    async with (
        aiohttp.ClientSession(headers=auth) as http,
        http.request(method, f"{sim.url}/ari/{path}", params=params) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body


async def test_idle_gets_have_the_recorded_shapes(sim: SimulatedAriServer) -> None:
    recorded = {row["url"].split("/ari/", 1)[1]: row for row in read_jsonl(TRACES / "actions" / "ari-get-idle.jsonl")}
    for path, row in recorded.items():
        status, body = await rest(sim, "GET", path)
        assert status == row["status"] == 200
        if isinstance(row["body"], dict):  # asterisk/info
            assert body.keys() == row["body"].keys()
        else:  # endpoints (trunk, 102 offline, 101, 100), channels, deviceStates, applications
            assert body == row["body"]
    during = read_jsonl(TRACES / "actions" / "ari-get-during-call.jsonl")
    recorded_channel = during[0]["body"][0]
    async with SimulatedStasisClient(sim) as client:
        caller = sim.inbound_call()
        await wait_until(lambda: client.events)
        await client.ari.originate("PJSIP/100", app_args=["dialed", caller], originator=caller)
        status, channels = await rest(sim, "GET", "channels")
        assert status == 200 and [c["name"][:10] for c in channels] == ["PJSIP/100-", "PJSIP/trun"]  # newest first
        assert channels[0].keys() == recorded_channel.keys()
        assert channels[0]["dialplan"].keys() == recorded_channel["dialplan"].keys()
        status, endpoints = await rest(sim, "GET", "endpoints")
        assert [len(e["channel_ids"]) for e in endpoints] == [1, 0, 0, 1]


@dataclass
class SimulatedStasisClient:
    """An AriClient with no extra subscriptions, connected for the duration of a `async with`."""

    sim: SimulatedAriServer
    events: list[dict[str, Any]] = field(default_factory=list)
    sources: tuple[str, ...] = ()

    async def __aenter__(self) -> SimulatedStasisClient:
        self.ari = AriClient(
            config_for(self.sim), "callbuddy", lambda e, t: self.events.append(e), event_sources=self.sources
        )
        self._task = asyncio.create_task(self.ari.run())
        await wait_until(lambda: self.ari.ready)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.ari.close(unsubscribe=False)  # left as a crash leaves it: what Asterisk does then is tested
        await asyncio.wait_for(self._task, 5.0)

    def types(self, channel_name_prefix: str = "") -> list[str]:
        return [
            e["type"]
            for e in self.events
            if (e.get("channel") or e.get("peer") or {}).get("name", "").startswith(channel_name_prefix)
        ]


async def test_errors_are_asterisks_status_codes_and_messages(sim: SimulatedAriServer) -> None:
    async with SimulatedStasisClient(sim) as client:
        assert await rest(sim, "GET", "channels/nope") == (404, {"message": "Channel not found"})
        assert await rest(sim, "DELETE", "bridges/nope") == (404, {"message": "Bridge not found"})
        assert await rest(sim, "POST", "channels", app="callbuddy") == (400, {"message": "Endpoint must be specified"})
        assert await rest(sim, "POST", "channels", endpoint="PJSIP/102", app="callbuddy") == (
            500,
            {"error": "Allocation failed"},
        )
        assert await rest(sim, "POST", "channels", endpoint="PJSIP/999", app="callbuddy") == (
            500,
            {"error": "Allocation failed"},
        )
        assert not sim.pbx.channels  # a failed originate creates nothing
        outside = sim.pbx.inbound_call(app="nobody")  # no such app: the call fails over, it is not in Stasis
        assert await rest(sim, "POST", f"channels/{outside}/answer") == (
            409,
            {"message": "Channel not in Stasis application"},
        )
        bridge = (await rest(sim, "POST", "bridges", type="mixing"))[1]["id"]
        assert await rest(sim, "POST", f"bridges/{bridge}/addChannel", channel=outside) == (
            422,
            {"message": "Channel not in Stasis application"},
        )
        assert await rest(sim, "POST", f"bridges/{bridge}/addChannel", channel="nope") == (
            400,
            {"message": "Channel not found"},
        )
        assert await rest(sim, "DELETE", f"channels/{outside}", reason="bogus") == (
            400,
            {"message": "Invalid reason for hangup provided"},
        )
        path = "applications/callbuddy/subscription"
        assert await rest(sim, "POST", path, eventSource="endpoint:PJSIP/999") == (
            422,
            {"message": "Event source does not exist"},
        )
        assert await rest(sim, "POST", path, eventSource="foo:bar") == (
            400,
            {"message": "Invalid event source URI scheme"},
        )
        assert await rest(sim, "POST", "applications/nope/subscription", eventSource="endpoint:PJSIP") == (
            404,
            {"message": "Application not found"},
        )
        assert client.events == []  # none of this reached the app


async def test_wrong_credentials_get_401_with_a_basic_challenge(sim: SimulatedAriServer) -> None:
    auth = {"Authorization": aiohttp.encode_basic_auth("callbuddy", "wrong")}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.get(f"{sim.url}/ari/channels") as response:
            assert response.status == 401
            assert await response.json() == {"message": "Authentication required"}
            assert response.headers["WWW-Authenticate"] == 'Basic realm="Asterisk REST Interface"'
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{sim.url}/ari/events", params={"app": "callbuddy"})
        assert refused.value.status == 401
    api_key = {"api_key": f"callbuddy:{PASSWORD}"}  # works too (the recorder used both)
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/ari/channels", params=api_key) as response:
        assert response.status == 200
    assert all("api_key" not in r.query for r in sim.requests)


async def test_busy_phone_answers_200_then_the_leg_dies_with_cause_17(sim: SimulatedAriServer) -> None:
    sim.phone_busy("100")
    async with SimulatedStasisClient(sim) as client:
        caller = sim.inbound_call()
        leg = await client.ari.originate("PJSIP/100", app_args=["dialed", caller], originator=caller)
        assert leg["state"] == "Down"
        await wait_until(lambda: "ChannelDestroyed" in client.types("PJSIP/100"))
        legs = [e for e in client.events if (e.get("channel") or e.get("peer") or {}).get("id") == leg["id"]]
        summary = [(e["type"], e.get("dialstatus"), e.get("cause"), e.get("tech_cause")) for e in legs]
        assert summary == [
            ("Dial", "", None, None),
            ("ChannelHangupRequest", None, 17, 486),
            ("Dial", "BUSY", None, None),
            ("ChannelDestroyed", None, 17, 486),
        ]
        assert legs[-1]["cause_txt"] == "User busy"
        assert sim.in_stasis(caller)  # the caller is untouched


async def test_declining_phone_rings_then_ends_with_cause_21(sim: SimulatedAriServer) -> None:
    sim.phone_declines("101", after_s=0.05)
    async with SimulatedStasisClient(sim) as client:
        caller = sim.inbound_call()
        await client.ari.originate("PJSIP/101", app_args=["dialed", caller], originator=caller)
        await wait_until(lambda: "ChannelDestroyed" in client.types("PJSIP/101"))
        leg = [(e["type"], e.get("dialstatus"), e.get("cause")) for e in client.events if e["type"] != "StasisStart"]
        assert leg == [
            ("Dial", "", None),
            ("ChannelStateChange", None, None),
            ("Dial", "RINGING", None),
            ("ChannelHangupRequest", None, 21),
            ("Dial", "NOANSWER", None),
            ("ChannelDestroyed", None, 21),
        ]


async def test_timed_out_leg_ends_with_cause_19_and_no_final_dial(sim: SimulatedAriServer) -> None:
    async with SimulatedStasisClient(sim) as client:
        caller = sim.inbound_call()
        await client.ari.originate("PJSIP/100", app_args=["dialed", caller], originator=caller, timeout_s=0.1)
        await wait_until(lambda: "ChannelDestroyed" in client.types("PJSIP/100"))
        dials = [e["dialstatus"] for e in client.events if e["type"] == "Dial"]
        destroyed = next(e for e in client.events if e["type"] == "ChannelDestroyed")
        assert dials == ["", "RINGING"]
        assert (destroyed["cause"], destroyed["tech_cause"], destroyed["channel"]["state"]) == (19, 480, "Ringing")


async def test_no_connected_app_fails_over_with_no_events(sim: SimulatedAriServer) -> None:
    """Trace 32: Stasis() with no app gives STASISSTATUS=FAILED and nothing on ARI; GET /applications is []."""
    assert await rest(sim, "GET", "applications") == (200, [])
    caller = sim.inbound_call()
    assert not sim.in_stasis(caller) and sim.pbx.stasis_failures == 1
    assert sim.channel(caller)["dialplan"]["app_name"] == "Dial"  # on in the dialplan: the fail-open ring group
    async with SimulatedStasisClient(sim) as client:
        sim.caller_hangs_up(caller)
        sim.send_raw("callbuddy", json.dumps({"type": MARKER}))  # behind anything the hangup sent the app
        await wait_until(lambda: bool(client.events))
        assert [e["type"] for e in client.events] == [MARKER]
    assert not sim.pbx.channels


async def test_presence_controls_and_endpoint_subscription(sim: SimulatedAriServer) -> None:
    sources = ("endpoint:PJSIP", "deviceState:PJSIP/102")
    async with SimulatedStasisClient(sim, sources=sources) as client:
        sim.register("102")
        sim.register("102")  # a refresh: nothing
        sim.unregister("102")
        await wait_until(lambda: len(client.events) == 8)
        kinds = [(e["type"], e.get("endpoint", {}).get("state")) for e in client.events]
        assert kinds[:4] == [
            ("EndpointStateChange", "online"),
            ("PeerStatusChange", "online"),
            ("ContactStatusChange", "online"),
            ("DeviceStateChanged", None),
        ]
        assert [e["device_state"]["state"] for e in client.events if "device_state" in e] == [
            "NOT_INUSE",
            "UNAVAILABLE",
        ]
        assert client.events[-1]["contact_info"]["contact_status"] == "Removed"


async def test_an_app_with_subscriptions_stays_listed_after_its_socket_closed(sim: SimulatedAriServer) -> None:
    async with SimulatedStasisClient(sim, sources=("endpoint:PJSIP",)):
        pass
    assert await rest(sim, "GET", "applications") == (200, [sim.pbx.apps["callbuddy"].to_json()])
    assert (sim.pbx.apps["callbuddy"].endpoint_ids, sim.pbx.apps["callbuddy"].active) == (["PJSIP"], False)
    caller = sim.inbound_call()  # listed, not active: Stasis() fails (res_stasis: "not active")
    assert not sim.in_stasis(caller)
    async with SimulatedStasisClient(sim, sources=()):  # reconnecting re-activates it with its subscriptions
        assert sim.pbx.apps["callbuddy"].endpoint_ids == ["PJSIP"]
    async with SimulatedStasisClient(sim, sources=()):
        pass
    assert (await rest(sim, "GET", "applications"))[1] != []
    async with SimulatedStasisClient(sim, sources=()):
        pass
    async with SimulatedStasisClient(sim, sources=()) as client:
        await client.ari.unsubscribe(["endpoint:PJSIP"])
    assert await rest(sim, "GET", "applications") == (200, [])


async def test_restart_can_refuse_tcp_first(sim: SimulatedAriServer) -> None:
    down_s, booting_s = 0.15, 0.3
    loop = asyncio.get_running_loop()
    began = loop.time()
    sim.restart(down_s=down_s, booting_s=booting_s)
    answers: list[tuple[float, Any]] = []  # (when, (status, body) or "refused"), asked until Asterisk is up
    async with asyncio.timeout(5.0):
        while not answers or answers[-1][1] != (200, []):
            try:
                answer: Any = await rest(sim, "GET", "channels")
            except aiohttp.ClientConnectionError:
                answer = "refused"
            answers.append((loop.time(), answer))
            await asyncio.sleep(0.01)
    phases = [answer for i, (_, answer) in enumerate(answers) if i == 0 or answers[i - 1][1] != answer]
    booting = (503, {"message": "Asterisk not booted"})
    # (a request served before the listener closes meets the boot already: 503)
    assert phases in (["refused", booting, (200, [])], [booting, "refused", booting, (200, [])]), phases
    # Each phase lasts at least its time (lower bounds: load only makes the answers later); their order is above.
    refused_from = next(i for i, (_, answer) in enumerate(answers) if answer == "refused")
    back = next(at for at, answer in answers[refused_from:] if answer != "refused")
    assert back - began >= down_s
    assert answers[-1][0] - began >= down_s + booting_s
