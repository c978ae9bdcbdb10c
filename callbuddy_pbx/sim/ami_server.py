"""A simulated Asterisk AMI server over real TCP, for tests and the demo.

It answers like the Asterisk 22 recorded in shared/traces/asterisk/actions: the same banner, login responses,
`FullyBooted` + `SuccessfulAuth` after a login with events on, Ping, Getvar, CoreShowChannels (from the channels
its own events created), Logoff, and `Invalid/unknown command` for the rest. Events reach clients that logged in
with events on. Memory is bounded: writes wait for the client to drain, tracked channels and the action log are capped.

PJSIPShowEndpoints, PJSIPShowContacts and PJSIPShowRegistrationsOutbound answer from `server.pjsip` (a
SimulatedPjsip a test sets), with the field names, order and list framing of actions/pjsip*.raw; with `pjsip` None
(res_pjsip not loaded), or `registrations` None, they answer `Invalid/unknown command`.

DeviceStateList answers like actions/devicestatelist.raw: the PJSIP endpoints' states and every device state the
broadcast events set (`DeviceStateChange`, which the scripted calls emit as they ring, answer and hang up).
`register_phone` / `unregister_phone` add or remove a contact and emit what Asterisk 22 does (trace
33-ari-endpoint-and-contact-events): `PeerStatus`, `ContactStatus` and `DeviceStateChange`. Actions named in
`denied_actions` answer `Permission denied`, as for an AMI user without the class the action needs.

Originate (Async) answers `Originate successfully queued` and then plays the call back `originate_plan` describes
(sim/originate.py: the desk rings and answers or not, then the trunk leg to the caller); with `write_classes` set
and without `originate` in it, it answers `Permission denied` as Asterisk does for that manager.conf user.

With a `cel_db` (sim/cel_db.py) every `Event: CEL` that `broadcast` or `replay_raw` passes is written to it as
Asterisk's cel_sqlite3_custom would: also while no client is connected, since Asterisk writes CEL whoever listens.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from callbuddy_pbx.asterisk.ami_protocol import (
    BANNER_PREFIX,
    MAX_MESSAGE_BYTES,
    TERMINATOR,
    AmiMessage,
    AmiProtocolError,
    parse_message,
)
from callbuddy_pbx.sim.apns_server import ApnsServer
from callbuddy_pbx.sim.cel_db import SimulatedCelDb
from callbuddy_pbx.sim.fcm_server import FcmServer
from callbuddy_pbx.sim.mobile_phones import MobilePhones, MobileSoftphone
from callbuddy_pbx.sim.originate import QUEUED, OriginatePlan, originate_steps

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
WRITE_CHUNK_BYTES = 1 << 20  # a big broadcast is written in pieces, so each client's buffer stays near this size
Timing = list[tuple[float, int, int]]  # (unix time, byte offset, length) per recorded socket read

# Field order of a CoreShowChannel item, as Asterisk 22 sends it (actions/coreshowchannels-during-call.raw).
_SHOW_CHANNEL_FIELDS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
    "Application",
    "ApplicationData",
)
# The channel snapshot every channel event carries; later events refresh it.
_SNAPSHOT_FIELDS = _SHOW_CHANNEL_FIELDS[:14]
_SNAPSHOT_DEFAULTS = {"ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>", "Language": "en"}
_TRACKED_EVENTS = frozenset(
    {
        "Newchannel",
        "Newstate",
        "Newexten",
        "NewCallerid",
        "NewConnectedLine",
        "NewAccountCode",
        "Rename",
        "BridgeEnter",
        "BridgeLeave",
        "Hangup",
    }
)
_TRACKED_EVENT_BYTES = frozenset(name.encode() for name in (*_TRACKED_EVENTS, "DeviceStateChange"))
# Cheap whole-buffer test before splitting a large byte broadcast into messages.
_TRACK_MARKERS = (b"Event: New", b"Event: Hangup", b"Event: Bridge", b"Event: Rename", b"Event: DeviceStateChange")
_CEL_MARKER = b"Event: CEL\r\n"  # the first line of a CEL event (a block starting with it is one)
# EndpointList's DeviceState is in words (ast_devstate_str); DeviceStateChange uses tokens (ast_devstate2str).
_STATE_WORDS = {
    "NOT_INUSE": "Not in use",
    "INUSE": "In use",
    "BUSY": "Busy",
    "INVALID": "Invalid",
    "UNAVAILABLE": "Unavailable",
    "RINGING": "Ringing",
    "RINGINUSE": "Ring+Inuse",
    "ONHOLD": "On Hold",
    "UNKNOWN": "Unknown",
}
_STATE_TOKENS = {words: token for token, words in _STATE_WORDS.items()}
_RECORDED_LOGIN_EVENTS = frozenset({"FullyBooted", "SuccessfulAuth"})


@dataclass
class SimulatedEndpoint:
    """A PJSIP endpoint with an aor and (for phones) an auth of the same name, as `render` writes them."""

    name: str
    auths: str | None = None  # EndpointList `Auths:`; None: "<name>-auth" (as the recorded desks), "" for a trunk
    transport: str = "transport-udp"
    device_state: str | None = None  # None: "Not in use" with a contact, else "Unavailable"
    active_channels: int = 0
    static_contacts: list[str] = field(default_factory=list)  # an aor's `contact =` URIs (not in PJSIPShowContacts)


@dataclass
class SimulatedContact:
    """A contact of an endpoint's aor, as a registered phone leaves it."""

    endpoint: str
    uri: str  # "sip:100@192.0.2.10:5060"
    status: str = "NonQualified"  # Avail, Unavail, NonQualified, Unknown...
    user_agent: str = ""
    via: str = ""  # "address:port" the REGISTER came from; default: the URI's


@dataclass
class SimulatedRegistration:
    """An outbound registration of a trunk. `password` is sent in the AuthDetail event, as Asterisk does."""

    name: str  # "trunk-reg"
    endpoint: str  # "trunk"
    server_uri: str  # "sip:sip.carrier.example"
    client_uri: str  # "sip:15550001000@sip.carrier.example"
    status: str = "Registered"  # Unregistered, Registered, Rejected, Stopped
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass
class SimulatedPjsip:
    """What the PJSIP AMI actions list. `registrations` None: res_pjsip_outbound_registration is not loaded."""

    endpoints: list[SimulatedEndpoint] = field(default_factory=list)
    contacts: list[SimulatedContact] = field(default_factory=list)
    registrations: list[SimulatedRegistration] | None = field(default_factory=list)


def recorded_pjsip() -> SimulatedPjsip:
    """What the recordings show: desks 100 and 101 registered, 102 not, an IP-authenticated trunk."""
    return SimulatedPjsip(
        endpoints=[
            SimulatedEndpoint("100"),
            SimulatedEndpoint("101"),
            SimulatedEndpoint("102"),
            SimulatedEndpoint("trunk", auths="", static_contacts=["sip:127.0.0.1:5090"]),
        ],
        contacts=[
            SimulatedContact(
                "100", "sip:100@127.0.0.1:5101", user_agent="CallBuddy-Test-Desk-100", via="127.0.0.1:5201"
            ),
            SimulatedContact(
                "101", "sip:101@127.0.0.1:5102", user_agent="CallBuddy-Test-Desk-101", via="127.0.0.1:5202"
            ),
        ],
        registrations=[],
    )


def encode_event(message: Mapping[str, str]) -> bytes:
    """Encode an event with `Event:` first. A value holding "\\n" (parse_message's repeated key) becomes one line
    per value again; CR in a key or value would corrupt the stream, so it is refused."""
    name = message.get("Event")
    if not name:
        raise AmiProtocolError("an event to send needs an 'Event' key")
    lines = [f"Event: {name}"]
    for key, value in message.items():
        if key == "Event":
            continue
        if "\r" in key or "\n" in key or "\r" in value:
            raise AmiProtocolError(f"event {name}: field {key!r} contains a line break")
        lines.extend(f"{key}: {part}" for part in value.split("\n"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _encode(lines: Iterable[tuple[str, str]]) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in lines) + "\r\n").encode("utf-8")


def parse_timing(text: str) -> Timing:
    """Parse an `ami.timing.jsonl` file: one `{"t", "off", "len"}` object per recorded socket read."""
    timing: Timing = []
    for line in text.splitlines():
        if line.strip():
            item = json.loads(line)
            timing.append((float(item["t"]), int(item["off"]), int(item["len"])))
    return timing


class _Client:
    __slots__ = ("events", "logged_in", "peer", "silent", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.logged_in = False
        self.events = False
        self.silent = False  # half-open: nothing written to this connection arrives
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class _Channel:
    __slots__ = ("fields", "started")

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        self.started = time.monotonic()


class SimulatedAmiServer:
    """Asterisk's AMI as far as CallBuddy uses it. `await start()`, then connect to `port`."""

    def __init__(
        self,
        username: str = "callbuddy",
        secret: str = "callbuddy-secret",  # noqa: S107 (the test PBX's documented secret)
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        track_channels: bool = True,
        max_channels: int = 10_000,
        write_timeout_s: float = 10.0,
        cel_db: SimulatedCelDb | None = None,
    ) -> None:
        self.username = username
        self.secret = secret
        self.host = host
        self._requested_port = port
        self.track_channels = track_channels  # a benchmark pushing raw bytes may turn the parsing off
        self.max_channels = max_channels
        self.write_timeout_s = write_timeout_s  # a client that does not read for this long is dropped
        self.cel_db = cel_db  # where the CEL events that pass are written (Asterisk's master.db), if anywhere
        # Test controls (and ignore_pings below)
        self._ignore_pings = False
        self.reject_logins = False
        self.response_delays: dict[str, float] = {}  # lower-case action name -> seconds (answered out of order)
        self.variables: dict[str, str] = {}  # global variables for Getvar
        self.systemname = ""  # asterisk.conf `systemname`, as CoreSettings tells it ("" : not set)
        self.pjsip: SimulatedPjsip | None = None  # what the PJSIPShow* actions list (None: res_pjsip not loaded)
        self.denied_actions: set[str] = set()  # lower-case action names answered `Permission denied`
        self.write_classes: set[str] | None = None  # manager.conf `write` (None: all); Originate needs `originate`
        self.originate_plan = OriginatePlan()  # how the next originated call backs go
        # Mobile softphones that sleep and register again after a push (sim/mobile_phones.py; see mobile_softphone)
        self.mobiles = MobilePhones(self._register_soon, self._unregister_soon)
        # Counters
        self.logins = 0
        self.login_failures = 0
        self.actions_received = 0
        self.actions: deque[AmiMessage] = deque(maxlen=1000)  # latest actions, Secret masked
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._connection_tasks: set[asyncio.Task[None]] = set()
        self._delayed_tasks: set[asyncio.Task[None]] = set()
        self._channels: dict[str, _Channel] = {}
        self._device_states: dict[str, str] = {}  # device -> state token, from the DeviceStateChange events sent
        self._started = time.monotonic()
        self._session_ids = itertools.count(0x7F0000001000, 0x1A0)
        self._handlers: dict[str, Callable[[_Client, AmiMessage], Awaitable[bool]]] = {
            "login": self._login,
            "logoff": self._logoff,
            "ping": self._ping,
            "getvar": self._getvar,
            "coresettings": self._core_settings,
            "coreshowchannels": self._core_show_channels,
            "pjsipshowendpoints": self._pjsip_show_endpoints,
            "pjsipshowcontacts": self._pjsip_show_contacts,
            "pjsipshowregistrationsoutbound": self._pjsip_show_registrations_outbound,
            "devicestatelist": self._device_state_list,
            "originate": self._originate,
        }

    # -- lifecycle --------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self._requested_port, limit=MAX_MESSAGE_BYTES)
        self._started = time.monotonic()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("SimulatedAmiServer is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)  # a connection accepted just before close() starts its handler now
        self.drop_clients()
        self.mobiles.cancel_all()
        for task in self._delayed_tasks:
            task.cancel()
        # Connection handlers end by themselves once their transport is aborted. They are not cancelled: on 3.11
        # asyncio's start_server done-callback calls task.exception() on them, which raises for a cancelled task.
        tasks = self._connection_tasks | self._delayed_tasks
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        await asyncio.sleep(0)  # let the aborted transports run connection_lost and close their sockets
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SimulatedAmiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def ignore_pings(self) -> bool:
        return self._ignore_pings

    @ignore_pings.setter
    def ignore_pings(self, value: bool) -> None:
        """True makes the current connections half-open: no Ping answers, no responses, no events. A client that
        reconnects gets a working connection (as when a NAT or firewall dropped the old flow)."""
        self._ignore_pings = value
        for client in self._clients:
            client.silent = value

    @property
    def clients(self) -> int:
        """Connections that are logged in."""
        return sum(1 for client in self._clients if client.logged_in)

    @property
    def channels(self) -> list[dict[str, str]]:
        """Copies of the live channels' fields, oldest first."""
        return [dict(channel.fields) for channel in self._channels.values()]

    # -- test controls ----------------------------------------------------------------------------------------------

    async def broadcast(self, messages: Iterable[AmiMessage] | bytes) -> None:
        """Send events to every client logged in with events on. Dicts are encoded `Event:` first; bytes go out
        verbatim in one write per client (fast enough for benchmarks of hundreds of thousands of events)."""
        if isinstance(messages, bytes | bytearray | memoryview):
            data = bytes(messages)
            track = self.track_channels and any(marker in data for marker in _TRACK_MARKERS)
            if track or (self.cel_db is not None and _CEL_MARKER in data):
                for block in data.split(TERMINATOR):
                    if track:
                        self._track_block(block)
                    self._write_cel_block(block)
        else:
            parts = []
            cel_db = self.cel_db
            for message in messages:
                parts.append(encode_event(message))
                if self.track_channels:
                    self._track(message)
                if cel_db is not None and message.get("Event") == "CEL":
                    cel_db.write(message)
            data = b"".join(parts)
        await self._send_events(data)

    async def replay_raw(
        self,
        data: bytes,
        *,
        speed: float | None = None,
        timing: Timing | None = None,
        chunk_sizes: Sequence[int] | None = None,
    ) -> None:
        """Send the events of a recorded `ami.raw` to the logged-in clients.

        The recording's banner, Login response, FullyBooted and SuccessfulAuth are skipped (this server sent its
        own). With `timing` each recorded socket read becomes one write (same boundaries); with `speed` as well the
        writes keep the recorded spacing divided by `speed`. `chunk_sizes` splits the writes at chosen byte counts
        (the rest goes in one last write), e.g. inside a UTF-8 character.
        """
        if speed is not None and (timing is None or speed <= 0):
            raise ValueError("speed needs timing (the recording's ami.timing.jsonl) and must be positive")
        if timing is not None and chunk_sizes is not None:
            raise ValueError("give timing or chunk_sizes, not both")
        start = _replay_start(data)
        chunks: list[tuple[float, int, int]] = []  # (recorded time, start, end)
        if timing is not None:
            for t, offset, length in timing:
                begin, end = max(offset, start), min(offset + length, len(data))
                if end > begin:
                    chunks.append((t, begin, end))
        elif chunk_sizes is not None:
            position = start
            for size in chunk_sizes:
                if position >= len(data):
                    break
                chunks.append((0.0, position, min(position + size, len(data))))
                position += size
            if position < len(data):
                chunks.append((0.0, position, len(data)))
        else:
            chunks.append((0.0, start, len(data)))
        # Track channels (and write CEL rows) as each message is completely sent, so CoreShowChannels mid-replay shows
        # that moment.
        ends = _message_ends(data, start) if self.track_channels or self.cel_db is not None else []
        tracked = 0
        loop = asyncio.get_running_loop()
        began = loop.time()
        first_t = chunks[0][0] if chunks else 0.0
        for t, begin, end in chunks:
            if speed is not None:
                delay = began + (t - first_t) / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif chunk_sizes is not None and begin > start:
                await asyncio.sleep(0.005)  # let the client read each piece separately
            await self._send_events(data[begin:end])
            while tracked < len(ends) and ends[tracked][1] + len(TERMINATOR) <= end:
                block = data[ends[tracked][0] : ends[tracked][1]]
                if self.track_channels:
                    self._track_block(block)
                self._write_cel_block(block)
                tracked += 1

    async def register_phone(self, endpoint: str, uri: str | None = None, *, user_agent: str = "") -> None:
        """A phone REGISTERs: a contact of `endpoint`'s aor, and the events Asterisk 22 sends for it (trace 33: the
        endpoint coming online is `PeerStatus Reachable`, `ContactStatus NonQualified`, `DeviceStateChange NOT_INUSE`).
        """
        pjsip = self._pjsip_endpoint(endpoint)
        uri = uri or f"sip:{endpoint}@192.0.2.10:5060"
        was_online = any(contact.endpoint == endpoint for contact in pjsip.contacts)
        pjsip.contacts = [c for c in pjsip.contacts if not (c.endpoint == endpoint and c.uri == uri)]
        pjsip.contacts.append(SimulatedContact(endpoint, uri, user_agent=user_agent))
        events = [] if was_online else [_peer_status(endpoint, "Reachable")]
        events.append(_contact_status(endpoint, uri, "NonQualified"))
        if not was_online:
            events.append(_device_state_change(f"PJSIP/{endpoint}", "NOT_INUSE"))
        await self.broadcast(events)

    async def unregister_phone(self, endpoint: str, uri: str | None = None) -> None:
        """The phone un-REGISTERs (Expires: 0) one contact, or every contact without `uri`. The last one gone takes
        the endpoint offline: `PeerStatus Unreachable`, `DeviceStateChange UNAVAILABLE`, then `ContactStatus Removed`.
        """
        pjsip = self._pjsip_endpoint(endpoint)
        gone = [c for c in pjsip.contacts if c.endpoint == endpoint and (uri is None or c.uri == uri)]
        pjsip.contacts = [c for c in pjsip.contacts if c not in gone]
        events: list[AmiMessage] = []
        if gone and not any(contact.endpoint == endpoint for contact in pjsip.contacts):
            events += [_peer_status(endpoint, "Unreachable"), _device_state_change(f"PJSIP/{endpoint}", "UNAVAILABLE")]
        events += [_contact_status(endpoint, contact.uri, "Removed") for contact in gone]
        await self.broadcast(events)

    def mobile_softphone(self, phone: MobileSoftphone) -> MobileSoftphone:
        """A mobile softphone on an endpoint of `pjsip`: it registers now with its RFC 8599 Contact URI;
        `mobile_sleeps` removes that registration, and a call push its service hands it (`wake_on`) makes it
        register again from a new port, each with the events `register_phone` / `unregister_phone` send."""
        return self.mobiles.add(phone)

    def mobile_sleeps(self, phone: MobileSoftphone) -> None:
        self.mobiles.sleep(phone)

    def wake_on(self, service: ApnsServer | FcmServer) -> None:
        """The mobile softphones receive the pushes this simulated APNs or FCM takes."""
        self.mobiles.listen_to(service)

    def _register_soon(self, endpoint: str, uri: str) -> None:
        self._spawn(self.register_phone(endpoint, uri))

    def _unregister_soon(self, endpoint: str, uri: str) -> None:
        self._spawn(self.unregister_phone(endpoint, uri))

    def _pjsip_endpoint(self, endpoint: str) -> SimulatedPjsip:
        if self.pjsip is None or not any(e.name == endpoint for e in self.pjsip.endpoints):
            raise ValueError(f"no simulated PJSIP endpoint {endpoint!r} (set server.pjsip first)")
        return self.pjsip

    def drop_clients(self) -> None:
        """Close every connection abruptly, without a Shutdown event (a crash or a network drop)."""
        for client in list(self._clients):
            client.writer.transport.abort()

    async def shutdown_clients(self, *, restart: bool = True) -> None:
        """Like `core restart now`: `Event: Shutdown` to event clients, then close every connection."""
        event = _encode(
            [
                ("Event", "Shutdown"),
                ("Privilege", "system,all"),
                ("Timestamp", f"{time.time():.6f}"),
                ("Shutdown", "Cleanly"),
                ("Restart", "True" if restart else "False"),
            ]
        )
        await self._send_events(event)
        for client in list(self._clients):
            client.writer.close()
        self._channels.clear()  # a restart ends every call
        self._device_states.clear()  # and forgets device states (phones stay registered: contacts persist)
        self._started = time.monotonic()

    def clear_channels(self) -> None:
        """Forget every live channel (as after a crash)."""
        self._channels.clear()

    # -- connections ------------------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connection_tasks.add(task)
        client = _Client(writer)
        self._clients.add(client)
        try:
            writer.write(BANNER)
            while True:
                try:
                    block = await reader.readuntil(TERMINATOR)
                except asyncio.LimitOverrunError:
                    log.error("sim AMI %s: action larger than %d bytes; closing", client.peer, MAX_MESSAGE_BYTES)
                    break
                action = parse_message(block[:-4], where=f"sim AMI {client.peer}")
                if not action:
                    continue
                self.actions_received += 1
                self.actions.append({k: ("********" if k.lower() == "secret" else v) for k, v in action.items()})
                delay = self.response_delays.get(action.get("Action", "").lower())
                if delay:
                    self._spawn(self._delayed(client, action, delay))
                elif not await self._dispatch(client, action):
                    break
            writer.close()  # our own decision (Logoff, failed login): flush the last response, then FIN
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(client)
            if not writer.is_closing():
                writer.transport.abort()
            self._connection_tasks.discard(task)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._delayed_tasks.add(task)
        task.add_done_callback(self._delayed_tasks.discard)

    async def _delayed(self, client: _Client, action: AmiMessage, delay: float) -> None:
        await asyncio.sleep(delay)
        if client in self._clients and not await self._dispatch(client, action):
            client.writer.close()

    async def _dispatch(self, client: _Client, action: AmiMessage) -> bool:
        """Answer one action; False closes the connection."""
        name = action.get("Action")
        if name is None:
            await self._reply(client, _response(action, "Error", Message="Missing action in request"))
            return True
        key = name.lower()
        if not client.logged_in and key not in ("login", "logoff", "challenge"):
            await self._reply(client, _response(action, "Error", Message="Permission denied"))
            return True
        if key in self.denied_actions:
            await self._reply(client, _response(action, "Error", Message="Permission denied"))
            return True
        handler = self._handlers.get(key)
        if handler is None:
            await self._reply(client, _response(action, "Error", Message="Invalid/unknown command"))
            return True
        return await handler(client, action)

    async def _reply(self, client: _Client, data: bytes) -> None:
        writer = client.writer
        if client.silent or writer.is_closing():
            return
        writer.write(data)
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            writer.transport.abort()

    async def _send_events(self, data: bytes) -> None:
        targets = [c for c in self._clients if c.logged_in and c.events and not c.silent and not c.writer.is_closing()]
        if not targets:
            return
        view = memoryview(data)
        for offset in range(0, len(view), WRITE_CHUNK_BYTES):
            piece = view[offset : offset + WRITE_CHUNK_BYTES]
            for client in targets:
                if not client.writer.is_closing():
                    client.writer.write(piece)
            await asyncio.gather(*(self._drain(client) for client in targets))

    async def _drain(self, client: _Client) -> None:
        try:
            async with asyncio.timeout(self.write_timeout_s):
                await client.writer.drain()
        except TimeoutError:
            log.warning("sim AMI %s: client stopped reading for %.1f s; dropped", client.peer, self.write_timeout_s)
            client.writer.transport.abort()
        except ConnectionError:
            client.writer.transport.abort()

    # -- actions ----------------------------------------------------------------------------------------------------

    async def _login(self, client: _Client, action: AmiMessage) -> bool:
        if client.logged_in:
            await self._reply(client, _response(action, "Success", Message="Already authenticated"))
            return True
        if self.reject_logins or action.get("Username") != self.username or action.get("Secret") != self.secret:
            self.login_failures += 1
            await self._reply(client, _response(action, "Error", Message="Authentication failed"))
            return False  # Asterisk closes the connection right after
        self.logins += 1
        client.logged_in = True
        client.events = action.get("Events", "on").strip().lower() != "off"
        data = _response(action, "Success", Message="Authentication accepted")
        if client.events:
            data += self._login_events(client)
        await self._reply(client, data)
        return True

    def _login_events(self, client: _Client) -> bytes:
        uptime = str(int(time.monotonic() - self._started))
        now = time.time()
        tv = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}+0000"
        sockname = client.writer.get_extra_info("sockname")
        local = f"IPV4/TCP/{sockname[0]}/{sockname[1]}" if isinstance(sockname, tuple) else "IPV4/TCP/0.0.0.0/0"
        remote = "IPV4/TCP/" + client.peer.replace(":", "/")
        booted = _encode(
            [
                ("Event", "FullyBooted"),
                ("Privilege", "system,all"),
                ("Uptime", uptime),
                ("LastReload", uptime),
                ("Status", "Fully Booted"),
            ]
        )
        auth = _encode(
            [
                ("Event", "SuccessfulAuth"),
                ("Privilege", "security,all"),
                ("Timestamp", f"{now:.6f}"),
                ("EventTV", tv),
                ("Severity", "Informational"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("AccountID", self.username),
                ("SessionID", hex(next(self._session_ids))),
                ("LocalAddress", local),
                ("RemoteAddress", remote),
                ("UsingPassword", "0"),
                ("SessionTV", tv),
            ]
        )
        return booted + auth

    async def _logoff(self, client: _Client, action: AmiMessage) -> bool:
        await self._reply(client, _response(action, "Goodbye", Message="Thanks for all the fish."))
        return False

    async def _ping(self, client: _Client, action: AmiMessage) -> bool:
        await self._reply(client, _response(action, "Success", Ping="Pong", Timestamp=f"{time.time():.6f}"))
        return True

    async def _core_settings(self, client: _Client, action: AmiMessage) -> bool:
        """As manager.c answers it (SystemName empty when asterisk.conf sets none)."""
        fields = {"AMIversion": "10.0.0", "AsteriskVersion": "22.1.0", "SystemName": self.systemname}
        await self._reply(client, _response(action, "Success", **fields, CoreMaxCalls="0", CoreRunUser="asterisk"))
        return True

    async def _getvar(self, client: _Client, action: AmiMessage) -> bool:
        variable = action.get("Variable", "")
        channel = action.get("Channel")
        if not variable:
            reply = _response(action, "Error", Message="No variable specified")
        elif channel and not any(c.fields["Channel"] == channel for c in self._channels.values()):
            reply = _response(action, "Error", Message="No such channel")
        else:
            reply = _response(action, "Success", Variable=variable, Value=self.variables.get(variable, ""))
        await self._reply(client, reply)
        return True

    async def _core_show_channels(self, client: _Client, action: AmiMessage) -> bool:
        action_id = action.get("ActionID")
        id_line = [("ActionID", action_id)] if action_id is not None else []
        parts = [_response(action, "Success", EventList="start", Message="Channels will follow")]
        now = time.monotonic()
        for channel in list(self._channels.values()):
            fields = channel.fields
            seconds = int(now - channel.started)
            duration = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            lines = [("Event", "CoreShowChannel"), *id_line]
            lines += [(name, fields.get(name, "")) for name in _SHOW_CHANNEL_FIELDS]
            lines += [("Duration", duration), ("BridgeId", fields.get("BridgeId", ""))]
            parts.append(_encode(lines))
        complete = [("EventList", "Complete"), ("ListItems", str(len(parts) - 1))]
        parts.append(_encode([("Event", "CoreShowChannelsComplete"), *id_line, *complete]))
        await self._reply(client, b"".join(parts))
        return True

    async def _pjsip_show_endpoints(self, client: _Client, action: AmiMessage) -> bool:
        pjsip = self.pjsip
        if pjsip is None:
            return await self._unknown_command(client, action)
        message = "A listing of Endpoints follows, presented as EndpointList events"
        items = []
        for endpoint in pjsip.endpoints:
            contacts = [contact for contact in pjsip.contacts if contact.endpoint == endpoint.name]
            uris = endpoint.static_contacts + [contact.uri for contact in contacts]
            listed = "".join(f"{endpoint.name}/{uri}," for uri in uris)
            state = endpoint.device_state or _STATE_WORDS[self._endpoint_state(endpoint, pjsip)]
            auths = f"{endpoint.name}-auth" if endpoint.auths is None else endpoint.auths
            items.append(
                [
                    ("ObjectType", "endpoint"),
                    ("ObjectName", endpoint.name),
                    ("Transport", endpoint.transport),
                    ("Aor", endpoint.name),
                    ("Auths", auths),
                    ("OutboundAuths", ""),
                    ("Contacts", listed),
                    ("DeviceState", state),
                    ("ActiveChannels", str(endpoint.active_channels)),
                ]
            )
        await self._reply(client, _list_reply(action, message, "EndpointList", items, "EndpointListComplete"))
        return True

    async def _pjsip_show_contacts(self, client: _Client, action: AmiMessage) -> bool:
        pjsip = self.pjsip
        if pjsip is None:
            return await self._unknown_command(client, action)
        message = "A listing of Contacts follows, presented as ContactList events"
        expires = str(int(time.time()) + 3600)
        items = []
        for number, contact in enumerate(pjsip.contacts, 1):
            via_addr, _, via_port = (contact.via or _host_port(contact.uri)).rpartition(":")
            tag = hashlib.sha256(f"{contact.endpoint}/{contact.uri}".encode()).hexdigest()[:32]
            items.append(
                [
                    ("ObjectType", "contact"),
                    ("ObjectName", f"{contact.endpoint};@{tag}"),
                    ("ViaAddr", via_addr),
                    ("QualifyTimeout", "3.000000"),
                    ("Qualify2xxOnly", "false"),
                    ("CallId", f"{number}-{20000 + number}@{via_addr}"),
                    ("RegServer", ""),
                    ("PruneOnBoot", "no"),
                    ("Path", ""),
                    ("Endpoint", contact.endpoint),
                    ("ViaPort", via_port),
                    ("AuthenticateQualify", "no"),
                    ("Uri", contact.uri),
                    ("QualifyFrequency", "0"),
                    ("UserAgent", contact.user_agent),
                    ("ExpirationTime", expires),
                    ("OutboundProxy", ""),
                    ("Status", contact.status),
                    ("RoundtripUsec", "N/A"),
                ]
            )
        await self._reply(client, _list_reply(action, message, "ContactList", items, "ContactListComplete"))
        return True

    async def _pjsip_show_registrations_outbound(self, client: _Client, action: AmiMessage) -> bool:
        """Asterisk's framing (res_pjsip_outbound_registration.c): an AuthDetail event after each registration, and a
        complete event with Registered/NotRegistered counts instead of ListItems."""
        if self.pjsip is None or self.pjsip.registrations is None:
            return await self._unknown_command(client, action)
        action_id = action.get("ActionID")
        id_line = [("ActionID", action_id)] if action_id is not None else []
        parts = [_response(action, "Success", EventList="start", Message=_REGISTRATIONS_MESSAGE)]
        registered = 0
        for registration in self.pjsip.registrations:
            registered += registration.status == "Registered"
            auth = f"{registration.endpoint}-auth"
            fields = dict(_REGISTRATION_DEFAULTS)
            fields.update(
                ObjectName=registration.name,
                ClientUri=registration.client_uri,
                ServerUri=registration.server_uri,
                Endpoint=registration.endpoint,
                OutboundAuth=auth,
                Status=registration.status,
                NextReg="0" if registration.status != "Registered" else "3590",
            )
            parts.append(_encode([("Event", "OutboundRegistrationDetail"), *id_line, *fields.items()]))
            auth_fields = dict(_AUTH_DEFAULTS)
            auth_fields.update(ObjectName=auth, Username=registration.username, Password=registration.password)
            parts.append(_encode([("Event", "AuthDetail"), *id_line, *auth_fields.items()]))
        count = len(self.pjsip.registrations)
        complete = [
            ("EventList", "Complete"),
            ("Registered", str(registered)),
            ("NotRegistered", str(count - registered)),
        ]
        parts.append(_encode([("Event", "OutboundRegistrationDetailComplete"), *id_line, *complete]))
        await self._reply(client, b"".join(parts))
        return True

    async def _device_state_list(self, client: _Client, action: AmiMessage) -> bool:
        """Every device with a state: the PJSIP endpoints first, then the other devices events named."""
        pjsip = self.pjsip or SimulatedPjsip()
        states = {f"PJSIP/{e.name}": self._endpoint_state(e, pjsip) for e in pjsip.endpoints}
        states.update((device, state) for device, state in self._device_states.items() if device not in states)
        items = [[("Device", device), ("State", state)] for device, state in states.items()]
        message = "Device State Changes will follow"
        await self._reply(client, _list_reply(action, message, "DeviceStateChange", items, "DeviceStateListComplete"))
        return True

    def _endpoint_state(self, endpoint: SimulatedEndpoint, pjsip: SimulatedPjsip) -> str:
        """A PJSIP endpoint's device state token: UNAVAILABLE without a contact (whatever events said before), else
        the last state events gave it (a call ringing it, in progress), else NOT_INUSE."""
        if endpoint.device_state:
            return _STATE_TOKENS.get(endpoint.device_state, "UNKNOWN")
        if not endpoint.static_contacts and not any(c.endpoint == endpoint.name for c in pjsip.contacts):
            return "UNAVAILABLE"
        tracked = self._device_states.get(f"PJSIP/{endpoint.name}")
        return tracked if tracked in _STATE_WORDS and tracked != "UNAVAILABLE" else "NOT_INUSE"

    async def _originate(self, client: _Client, action: AmiMessage) -> bool:
        if self.write_classes is not None and "originate" not in self.write_classes:
            await self._reply(client, _response(action, "Error", Message="Permission denied"))
            return True
        await self._reply(client, _response(action, "Success", Message=QUEUED))
        self._spawn(self._play_originate(originate_steps(action, self.originate_plan)))
        return True

    async def _play_originate(self, steps: Sequence[tuple[float, AmiMessage]]) -> None:
        batch: list[AmiMessage] = []  # events Asterisk sends back to back go out in one write, as they would
        for wait, event in steps:
            if wait and batch:
                await self.broadcast(batch)
                batch = []
            if wait:
                await asyncio.sleep(wait)
            batch.append(event)
        await self.broadcast(batch)

    async def _unknown_command(self, client: _Client, action: AmiMessage) -> bool:
        await self._reply(client, _response(action, "Error", Message="Invalid/unknown command"))
        return True

    # -- channel tracking -------------------------------------------------------------------------------------------

    def _track_block(self, block: bytes) -> None:
        if not block.startswith(b"Event: "):
            return
        end = block.find(b"\r\n")
        name = block[7:end] if end >= 0 else block[7:]
        if name in _TRACKED_EVENT_BYTES:
            self._track(parse_message(block, where="sim AMI broadcast"))

    def _write_cel_block(self, block: bytes) -> None:
        if self.cel_db is not None and block.startswith(_CEL_MARKER):
            self.cel_db.write(parse_message(block, where="sim AMI CEL"))

    def _track_device(self, message: Mapping[str, str]) -> None:
        device, state = message.get("Device"), message.get("State")
        if not device or not state:
            return
        if device not in self._device_states and len(self._device_states) >= self.max_channels:
            return  # bounded like the channels; a benchmark's endless devices are not listed
        self._device_states[device] = state

    def _track(self, message: Mapping[str, str]) -> None:
        name = message.get("Event")
        if name == "DeviceStateChange":
            self._track_device(message)
            return
        if name not in _TRACKED_EVENTS:
            return
        uniqueid = message.get("Uniqueid")
        if not uniqueid:
            return
        if name == "Newchannel":
            if uniqueid not in self._channels and len(self._channels) >= self.max_channels:
                oldest = next(iter(self._channels))
                del self._channels[oldest]
                log.warning("sim AMI: more than %d live channels; forgot %s", self.max_channels, oldest)
            fields = {key: message.get(key, _SNAPSHOT_DEFAULTS.get(key, "")) for key in _SNAPSHOT_FIELDS}
            fields.update(Application="", ApplicationData="", BridgeId="")
            self._channels[uniqueid] = _Channel(fields)
            return
        channel = self._channels.get(uniqueid)
        if channel is None:
            return
        if name == "Hangup":
            del self._channels[uniqueid]
            return
        fields = channel.fields
        for key in _SNAPSHOT_FIELDS:
            value = message.get(key)
            if value is not None:
                fields[key] = value
        if name == "Newexten":
            fields["Application"] = message.get("Application", "")
            fields["ApplicationData"] = message.get("AppData", "")
        elif name == "BridgeEnter":
            fields["BridgeId"] = message.get("BridgeUniqueid", "")
        elif name == "BridgeLeave":
            fields["BridgeId"] = ""
        elif name == "Rename":
            fields["Channel"] = message.get("Newname", fields["Channel"])


def _peer_status(endpoint: str, status: str) -> AmiMessage:
    return {
        "Event": "PeerStatus",
        "Privilege": "system,all",
        "Timestamp": f"{time.time():.6f}",
        "ChannelType": "PJSIP",
        "Peer": f"PJSIP/{endpoint}",
        "PeerStatus": status,
    }


def _contact_status(endpoint: str, uri: str, status: str) -> AmiMessage:
    return {
        "Event": "ContactStatus",
        "Privilege": "system,all",
        "Timestamp": f"{time.time():.6f}",
        "URI": uri,
        "ContactStatus": status,
        "AOR": endpoint,
        "EndpointName": endpoint,
        "RoundtripUsec": "0",
    }


def _device_state_change(device: str, state: str) -> AmiMessage:
    return {
        "Event": "DeviceStateChange",
        "Privilege": "call,all",
        "Timestamp": f"{time.time():.6f}",
        "Device": device,
        "State": state,
    }


def _response(action: Mapping[str, str], response: str, **fields: str) -> bytes:
    """`Response:`, the action's ActionID if it had one, then the fields: Asterisk's order."""
    lines = [("Response", response)]
    action_id = action.get("ActionID")
    if action_id is not None:
        lines.append(("ActionID", action_id))
    lines.extend(fields.items())
    return _encode(lines)


_REGISTRATIONS_MESSAGE = "Following are Events for each Outbound registration"
# OutboundRegistrationDetail fields in the order of Asterisk's documentation of the event; the values are the
# defaults of res_pjsip_outbound_registration (per-registration values are filled in).
_REGISTRATION_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("ObjectType", "registration"),
    ("ObjectName", ""),
    ("MaxRetries", "10"),
    ("ClientUri", ""),
    ("SecurityNegotiation", "no"),
    ("AuthRejectionPermanent", "true"),
    ("ServerUri", ""),
    ("MaxRandomInitialDelay", "10"),
    ("SupportPath", "false"),
    ("RetryInterval", "60"),
    ("ContactHeaderParams", ""),
    ("Expiration", "3600"),
    ("Transport", "transport-udp"),
    ("Line", "true"),
    ("ContactUser", "s"),
    ("Endpoint", ""),
    ("ForbiddenRetryInterval", "600"),
    ("OutboundAuth", ""),
    ("OutboundProxy", ""),
    ("FatalRetryInterval", "0"),
    ("SupportOutbound", "no"),
    ("Status", ""),
    ("NextReg", "0"),
)
# AuthDetail fields as in actions/pjsipshowendpoint-100.raw (without EndpointName: a registration's auth has none).
_AUTH_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("ObjectType", "auth"),
    ("ObjectName", ""),
    ("OauthSecret", ""),
    ("PasswordDigest", ""),
    ("SupportedAlgorithmsUas", "MD5"),
    ("RefreshToken", ""),
    ("Username", ""),
    ("Md5Cred", ""),
    ("Realm", ""),
    ("AuthType", "userpass"),
    ("Password", ""),
    ("SupportedAlgorithmsUac", "MD5"),
    ("NonceLifetime", "32"),
    ("OauthClientid", ""),
)


def _list_reply(
    action: Mapping[str, str], message: str, item_event: str, items: Iterable[Sequence[tuple[str, str]]], done: str
) -> bytes:
    """A list answer framed like Asterisk's: `EventList: start`, the items, then `EventList: Complete` + ListItems."""
    action_id = action.get("ActionID")
    id_line = [("ActionID", action_id)] if action_id is not None else []
    parts = [_response(action, "Success", EventList="start", Message=message)]
    count = 0
    for item in items:
        parts.append(_encode([("Event", item_event), *id_line, *item]))
        count += 1
    parts.append(_encode([("Event", done), *id_line, ("EventList", "Complete"), ("ListItems", str(count))]))
    return b"".join(parts)


def _host_port(uri: str) -> str:
    """'host:port' of a SIP URI (port 5060 when it has none)."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split("@", 1)[-1].split(";", 1)[0]
    host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    return f"{host}:{port or '5060'}"


def _replay_start(data: bytes) -> int:
    """Offset of the first message of a recording that is not the recorder's own login."""
    position = 0
    if data.startswith(BANNER_PREFIX):
        end = data.find(b"\r\n")
        position = len(data) if end < 0 else end + 2
    while True:
        end = data.find(TERMINATOR, position)
        if end < 0:
            return position
        message = parse_message(data[position:end], where="recording")
        if "Response" not in message and message.get("Event") not in _RECORDED_LOGIN_EVENTS:
            return position
        position = end + len(TERMINATOR)


def _message_ends(data: bytes, start: int) -> list[tuple[int, int]]:
    """(start, end) of every complete message from `start` on, end excluding the terminator."""
    spans: list[tuple[int, int]] = []
    position = start
    while (end := data.find(TERMINATOR, position)) >= 0:
        spans.append((position, end))
        position = end + len(TERMINATOR)
    return spans
