"""The objects of the simulated ARI (channels, bridges, endpoints, Stasis apps) and their JSON, as Asterisk 22
writes them in shared/traces/asterisk (ari.jsonl, ari-rest.jsonl, actions/ari-get-*.jsonl). No I/O here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

ASTERISK_ID = "02:fc:00:00:00:01"
ASTERISK_VERSION = "22.10.1"
ALL_CHANNELS = "__AST_CHANNEL_ALL_TOPIC"
ALL_BRIDGES = "__AST_BRIDGE_ALL_TOPIC"
ALL_ENDPOINTS = "__AST_ENDPOINT_ALL_TOPIC"
ALL_DEVICES = "__AST_DEVICE_STATE_ALL_TOPIC"

# Asterisk's ast_cause2str() for the causes CallBuddy meets.
CAUSE_TEXT = {
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    26: "Answered elsewhere",
    28: "Invalid number format (addr incomplete)",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    58: "Bearer capability not available",
    127: "Interworking, unspecified",
}
# DELETE /channels/{id}?reason=... (res/ari/resource_channels.c)
HANGUP_REASONS = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}
# ChannelHangupRequest's `cause` for a hangup the app asked for: the soft-hangup flag (AST_SOFTHANGUP_EXPLICIT), not
# the reason (traces 11, 12, 29, 30, 31 all show 32 with `soft: true`).
SOFT_HANGUP_EXPLICIT = 32


class AriRestError(Exception):
    """An HTTP error answer: `status` and Asterisk's JSON body ({"message": ...}, or {"error": ...} for 500)."""

    def __init__(self, status: int, message: str, key: str = "message") -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.body = {key: message}


def not_found(what: str) -> AriRestError:
    return AriRestError(404, f"{what} not found")


def dial_status_for(cause: int) -> str:
    """main/dial.c ast_hangup_cause_to_dial_status(): what the final Dial event says for a leg that hung up."""
    if cause == 17:
        return "BUSY"
    if cause == 34:
        return "CONGESTION"
    if cause in (3, 20):
        return "CHANUNAVAIL"
    return "NOANSWER"


def ari_time(when: float | None = None) -> str:
    """ARI's timestamp format: 2026-11-21T09:56:12.452+0000 (UTC, milliseconds)."""
    when = time.time() if when is None else when
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1000):03d}+0000"


@dataclass
class PhoneBehaviour:
    """How a desk phone reacts to an INVITE. Defaults: rings (180 after ring_after_s) and never answers."""

    answer_after_s: float | None = None  # 200 OK this long after the INVITE
    busy: bool = False  # 486 Busy Here at once: Dial BUSY, ChannelDestroyed cause 17
    decline_after_s: float | None = None  # 603 Decline this long after the INVITE (0: without ringing, as in 17)
    ring_after_s: float = 0.002  # 180 Ringing


@dataclass
class SimContact:
    uri: str  # "sip:102@127.0.0.1:5103"
    status: str = "NonQualified"  # no qualify configured (trace 33)


@dataclass
class SimEndpoint:
    resource: str  # "100", "trunk"
    caller_name: str = ""  # the endpoint's callerid name, "Desk 100"
    context: str = "from-internal"
    technology: str = "PJSIP"
    contacts: list[SimContact] = field(default_factory=list)
    static: bool = False  # a trunk with a configured contact: always online
    phone: PhoneBehaviour = field(default_factory=PhoneBehaviour)
    channel_ids: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.technology}/{self.resource}"

    @property
    def online(self) -> bool:
        return self.static or bool(self.contacts)

    def to_json(self) -> dict[str, Any]:
        return {
            "technology": self.technology,
            "resource": self.resource,
            "state": "online" if self.online else "offline",
            "channel_ids": list(self.channel_ids),
        }


@dataclass(eq=False)
class SimChannel:
    id: str
    name: str
    endpoint: SimEndpoint
    state: str  # Down, Ring, Ringing, Up
    protocol_id: str
    caller: dict[str, str]
    connected: dict[str, str]
    dialplan: dict[str, Any]
    created: float = field(default_factory=time.time)
    inbound: bool = False  # a call from the trunk into the dialplan (not a leg something dialled)
    stasis_app: str | None = None  # the app whose Stasis() the channel is in
    originated_by: str | None = None  # the app that originated it: subscribed until the channel is destroyed
    dialing: bool = False  # an originated leg not answered yet (the dial API still owns it)
    was_in_stasis: bool = False
    bridge_id: str | None = None
    dial_string: str = ""
    app_args: list[str] = field(default_factory=list)  # originate's appArgs: StasisStart's args once answered
    hanging_up: bool = False  # no longer counts for its device's state
    timers: list[Any] = field(default_factory=list)  # asyncio.TimerHandle of scheduled phone behaviour
    gone: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": self.protocol_id,
            "caller": dict(self.caller),
            "connected": dict(self.connected),
            "accountcode": "",
            "dialplan": dict(self.dialplan),
            "creationtime": ari_time(self.created),
            "language": "en",
        }

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()


@dataclass(eq=False)
class SimBridge:
    id: str
    name: str
    bridge_type: str = "mixing"
    technology: str = "simple_bridge"
    channel_ids: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    stasis: bool = True  # False: a bridge the dialplan's Dial() made (class "basic", trace 33)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": "stasis" if self.stasis else "basic",
            "creator": "Stasis" if self.stasis else "",
            "name": self.name,
            "channels": sorted(self.channel_ids, key=_uniqueid_order),  # not the join order (33)
            "creationtime": ari_time(self.created),
            "video_mode": "talker" if self.stasis else "none",
        }


@dataclass(eq=False)
class SimApp:
    """A Stasis application. It exists while a WebSocket is connected for it, and (trace 33) also afterwards while
    it holds explicit subscriptions; only an app with a connected socket (`active`) receives events and calls."""

    name: str
    sockets: int = 0
    subscribe_all: bool = False
    channel_ids: list[str] = field(default_factory=list)
    bridge_ids: list[str] = field(default_factory=list)
    endpoint_ids: list[str] = field(default_factory=list)  # "PJSIP" (a whole technology) or "PJSIP/100"
    device_names: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.sockets > 0

    def holds_subscriptions(self) -> bool:
        return bool(self.endpoint_ids or self.device_names or self.bridge_ids or self.channel_ids)

    def to_json(self) -> dict[str, Any]:
        if self.subscribe_all:
            channels, bridges, endpoints, devices = [ALL_CHANNELS], [ALL_BRIDGES], [ALL_ENDPOINTS], [ALL_DEVICES]
        else:
            channels, bridges = list(self.channel_ids), list(self.bridge_ids)
            # Asterisk lists subscriptions from hash containers: the recordings show the newest first.
            endpoints, devices = list(reversed(self.endpoint_ids)), list(reversed(self.device_names))
        return {
            "name": self.name,
            "channel_ids": channels,
            "bridge_ids": bridges,
            "endpoint_ids": endpoints,
            "device_names": devices,
            "events_allowed": [],
            "events_disallowed": [],
        }

    def wants_channel(self, channel: SimChannel) -> bool:
        if self.subscribe_all or channel.id in self.channel_ids:
            return True
        return self.wants_endpoint(channel.endpoint)

    def wants_endpoint(self, endpoint: SimEndpoint) -> bool:
        return endpoint.technology in self.endpoint_ids or endpoint.name in self.endpoint_ids

    def wants_device(self, device: str) -> bool:
        return self.subscribe_all or device in self.device_names or ALL_DEVICES in self.device_names


def _uniqueid_order(channel_id: str) -> tuple[int, int, str]:
    """Asterisk unique ids are "<epoch>.<sequence>"; other ids (an app's channelId) sort after them."""
    head, _, tail = channel_id.partition(".")
    if head.isdigit() and tail.isdigit():
        return int(head), int(tail), ""
    return 1 << 62, 0, channel_id


def asterisk_info(started: float) -> dict[str, Any]:
    """GET /ari/asterisk/info, shaped like actions/ari-get-idle.jsonl."""
    return {
        "build": {"os": "Linux", "kernel": "sim", "machine": "x86_64", "options": "", "date": "", "user": "sim"},
        "system": {"version": ASTERISK_VERSION, "entity_id": ASTERISK_ID},
        "config": {"name": "", "default_language": "en", "setid": {"user": "", "group": ""}},
        "status": {"startup_time": ari_time(started), "last_reload_time": ari_time(started)},
    }
