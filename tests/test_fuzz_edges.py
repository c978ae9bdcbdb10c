"""Fuzzing the other doors from outside (seeded, so every run is the same, and quick): ARI WebSocket frames into the
real ARI client and the routing service's handler, every webhook through the real HTTP server, and CEL rows into the
CEL judge, straight and through the SQLite reader. Each property: no crash, no hang, bounded sizes, a clear refusal
or a clean result."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import math
import random
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import MultiDict
from yarl import URL

from callbuddy_pbx.asterisk.ari import MAX_EVENT_CHARS, AriClient
from callbuddy_pbx.asterisk.cel import MAX_EXTRA_CHARS, CelRow, complete_calls, event_time, extra_field, judge
from callbuddy_pbx.asterisk.cel_sqlite import MAX_VALUE_CHARS, CelSqlite
from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import EARLIEST_TIME, LATEST_TIME
from callbuddy_pbx.config import CelConfig, Config, GatewayConfig, WebConfig
from callbuddy_pbx.config.asterisk import AriConfig
from callbuddy_pbx.config.pbx import NoAnswer, PbxConfig, Phone, RingGroup
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.routing.router import LEG_MARK
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.sms.gateway import DeliveryReport, InboundSms
from callbuddy_pbx.sms.http_common import HttpGateway
from callbuddy_pbx.sms.http_generic import GenericHttpGateway
from callbuddy_pbx.sms.http_kannel import KannelGateway
from callbuddy_pbx.sms.http_twilio import TwilioGateway, twilio_signature
from callbuddy_pbx.web.server import MAX_BODY_BYTES, create_app, start_web
from tests.servers import free_port
from tests.traces import cel_traces

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


class Captured(logging.Handler):
    """Every record of `callbuddy_pbx` while in use (hypothesis examples cannot use the caplog fixture)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_logs() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("callbuddy_pbx")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


# == 1. ARI WebSocket frames =========================================================================================

DID = "+15550001001"
ARI_PHONES = (Phone("100", "Desk 100", "Glow"), Phone("101", "Desk 101", "Glow"), Phone("102", "Desk 102", "Glow"))
ARI_GROUPS = (
    RingGroup(DID, ("100", "101"), "ring_all", 1, 10, NoAnswer("voicemail"), routing="callbuddy"),
    RingGroup("+15550001002", ("102", "100"), "in_order", 1, 3, NoAnswer("hangup"), routing="callbuddy"),
)
LEG = "<a live leg of ours>"  # in a generated event: replaced, as the frame is sent, by a leg id the router made


class OfflineAri(AriClient):
    """The real client (its frame handling, counters and logging) with REST answered in memory: every POST makes
    something with a fresh id, every GET lists nothing, every DELETE succeeds."""

    made = 0

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json_body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        await asyncio.sleep(0)
        if method == "GET":
            return []
        if method == "POST":
            OfflineAri.made += 1
            return {"id": f"made-{OfflineAri.made}"}
        return None


def ari_routing() -> tuple[RoutingService, list[Any]]:
    """The routing service on an OfflineAri, with every value its handler was given (in order)."""
    config = Config(
        pbx=PbxConfig(phones=ARI_PHONES, ring_groups=ARI_GROUPS), ari=AriConfig(url="http://127.0.0.1:9", password="p")
    )
    seen: list[Any] = []

    def factory(ari: AriConfig, app: str, on_event: Any, *args: Any, **kwargs: Any) -> AriClient:
        def tap(event: Any, received_at: float) -> None:
            seen.append(event)
            on_event(event, received_at)

        return OfflineAri(ari, app, tap, *args, **kwargs)

    return RoutingService(config, DeviceRegistry.from_config(config), client_factory=factory), seen


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and the infinities: json.dumps writes them as NaN / Infinity, which Python reads back
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=24,
)
ARI_TYPES = ["StasisStart", "StasisEnd", "ChannelStateChange", "ChannelDestroyed", "ChannelHangupRequest", "Dial",
             "ContactStatusChange", "EndpointStateChange", "PeerStatusChange", "DeviceStateChanged", "ChannelVarset",
             "ChannelEnteredBridge", "ChannelLeftBridge", "BridgeDestroyed", "ApplicationReplaced", "",
             "stasisstart"]  # fmt: skip
ODD_TEXT = st.sampled_from(["", " ", "1.1", "1.2", "PJSIP/100-00000001", "PJSIP/100", "PJSIP/trunk-00000003",
                            "Local/100@x-1;1", "inbound", "dialed", DID, DID[1:], "+15550001002", "Up", "Ring",
                            "Ringing", "Down", "online", "offline", "Reachable", "Unreachable", "Removed", "INUSE",
                            "RINGING", "NOT_INUSE", "\x00", "\x1b[2J", "\u202e", "\ud800", "x" * 300,
                            "1.1" + LEG_MARK + "abc-1"]) | st.text(max_size=10)  # fmt: skip
ODD = ODD_TEXT | JSON_VALUES


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` four times in five, else `odd` (a plain `|` would weigh each of odd's many branches like usual)."""
    return st.integers(min_value=0, max_value=4).flatmap(lambda pick: usual if pick else odd)


CHANNEL_IDS = mostly(st.sampled_from(["1.1", "1.2", "2.1", LEG, "", "1.1" + LEG_MARK + "000000-1"]), ODD)


@st.composite
def ari_event(draw: st.DrawFn) -> dict[str, Any]:
    """An ARI-shaped event with any field odd or missing."""
    event: dict[str, Any] = {"type": draw(mostly(st.sampled_from(["StasisStart"] * 6 + ARI_TYPES), ODD))}
    shaped = st.fixed_dictionaries(
        {"id": CHANNEL_IDS},
        optional={
            "name": ODD_TEXT | ODD,
            "state": st.sampled_from(["Up", "Ring", "Ringing", "Down"]) | ODD,
            "caller": st.fixed_dictionaries({}, optional={"number": ODD, "name": ODD}) | ODD,
            "dialplan": st.fixed_dictionaries(
                {}, optional={"context": ODD, "exten": ODD, "app_name": ODD, "app_data": ODD}
            )
            | ODD_TEXT
            | ODD,
            "creationtime": ODD,
        },
    )
    channel = draw(mostly(shaped, ODD))
    event["channel"] = channel
    extra = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "args": mostly(
                    st.sampled_from([["inbound"], ["dialed"], [], ["inbound", ""], ["dialed", LEG]])
                    | st.tuples(
                        st.sampled_from(["inbound", "dialed"]), st.sampled_from([DID, DID[1:], "1.1", LEG])
                    ).map(list),
                    st.lists(ODD_TEXT, max_size=3) | ODD,
                ),
                "cause": st.sampled_from([16, 17, 19, 21, 26, 127]) | ODD,
                "peer": st.just(channel) | st.fixed_dictionaries({}, optional={"peer_status": ODD}) | ODD,
                "endpoint": st.fixed_dictionaries(
                    {},
                    optional={
                        "technology": st.sampled_from(["PJSIP", "SIP", ""]) | ODD,
                        "resource": st.sampled_from(["100", "101", "102", "trunk"]) | ODD,
                        "state": st.sampled_from(["online", "offline"]) | ODD,
                        "channel_ids": ODD,
                    },
                )
                | ODD,
                "contact_info": st.fixed_dictionaries(
                    {},
                    optional={"uri": ODD, "contact_status": ODD, "aor": ODD, "roundtrip_usec": ODD},
                )
                | ODD,
                "device_state": st.fixed_dictionaries({}, optional={"name": ODD, "state": ODD}) | ODD,
                "dialstatus": ODD,
                "application": ODD,
            },
        )
    )
    return event | extra


def _deep(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


_PADDED = json.dumps({"type": "ChannelVarset", "value": ""})
SPECIAL_FRAMES = [
    _deep(50_000),  # far beyond the recursion limit, well within the size limit
    '{"type":"StasisStart","channel":' + '{"a":' * 20_000 + "1" + "}" * 20_000 + "}",
    '{"type":"StasisStart","args":' + _deep(100) + "}",  # deep, but not too deep: an event
    json.dumps({"type": "ChannelVarset", "value": "x" * (MAX_EVENT_CHARS - len(_PADDED))}),  # exactly the limit
    json.dumps({"type": "ChannelVarset", "value": "x" * (MAX_EVENT_CHARS - len(_PADDED) + 1)}),  # one over
    "[" * (MAX_EVENT_CHARS + 1),
    '{"type":"Dial","n":' + "9" * 5000 + "}",  # past Python's int digits limit
    '{"type":"Dial","x":NaN,"y":-Infinity,"z":1e999}',
    '{"type":"Dial","type":7}',  # the last key wins
    '{"type":7}',
    '{"type":null}',
    '\ufeff{"type":"Dial"}',
    '{"type":"Dial"',
    "[]",
    "null",
    '"StasisStart"',
    "",
    '{"type":"StasisStart","channel":{"id":"9.9","dialplan":"from-trunk"},"args":["inbound"]}',
    '{"type":"StasisStart","channel":{"id":"9.8","dialplan":["x"]},"args":["inbound"]}',
]
FRAMES = st.one_of(
    ari_event().map(lambda event: ("event", event)),
    JSON_VALUES.map(lambda value: ("text", json.dumps(value))),
    st.text(max_size=60).map(lambda text: ("text", text)),
    st.sampled_from(SPECIAL_FRAMES).map(lambda text: ("text", text)),
)


def is_event(frame: str) -> bool:
    """What the client must make of a frame: an event (a JSON object with a string type) or a skipped frame."""
    if len(frame) > MAX_EVENT_CHARS:
        return False
    try:
        parsed = json.loads(frame)
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("type"), str)


def live_leg(service: RoutingService) -> str:
    legs = sorted(channel for channel in service.router._owners if LEG_MARK in channel)
    return legs[0] if legs else "no-leg-yet"


def with_legs(value: Any, leg: str) -> Any:
    if value == LEG:
        return leg
    if isinstance(value, dict):
        return {key: with_legs(item, leg) for key, item in value.items()}
    if isinstance(value, list):
        return [with_legs(item, leg) for item in value]
    return value


@FUZZ
@given(frames=st.lists(FRAMES, max_size=25))
def test_any_ari_frame_is_an_event_for_the_router_or_skipped_and_counted(frames: list[tuple[str, Any]]) -> None:
    """Through the real client into the handler RoutingService installs (router + device registry), REST answered
    in memory: nothing raises out of `_handle_text`, a frame that is not a JSON object with a string type (or too
    large, or nested too deep) is skipped and counted, every other is handed on as a dict, the handler never raises,
    nothing logged quotes more than a short excerpt, and stopping leaves no task behind."""

    async def run() -> None:
        service, seen = ari_routing()
        client = service.client
        events = 0
        sent: list[str] = []
        with captured_logs() as logs:
            for kind, item in frames:
                frame = json.dumps(with_legs(item, live_leg(service))) if kind == "event" else item
                sent.append(frame)
                events += is_event(frame)
                client._handle_text(frame)
                for _ in range(3):  # let the calls' REST round trips (in memory) and their reactions run
                    await asyncio.sleep(0)
            await asyncio.wait_for(service.stop(), 10)
        assert (client.events_received, client.malformed_events) == (events, len(frames) - events), [
            frame[:200] for frame in sent
        ]
        assert len(seen) == events and all(isinstance(event, dict) for event in seen)
        assert all(isinstance(event["type"], str) for event in seen)
        raised = [record.getMessage() for record in logs.records if record.exc_info]
        assert client.callback_errors == 0 and not raised, raised
        assert all(len(record.getMessage()) < 2000 for record in logs.records)  # an excerpt, never the frame
        assert service.router.active == 0
        assert [task for task in asyncio.all_tasks() if task is not asyncio.current_task()] == []

    asyncio.run(run())


# == 2. Webhooks through the real HTTP server ========================================================================

WEBHOOK_TOKEN = "webhook-token-5e6f7a8b9c0d"
TWILIO_TOKEN = "twilio-auth-token-9f8e7d6c5b4a"
PUBLIC_URL = "https://pbx.example.test"  # what Twilio signs; the server is reached on loopback whatever it says
ANSWERS = {200, 204, 400, 403, 404, 405, 413, 415}  # never 500
FIELDS = {
    ("twilio", "status"): ["MessageSid", "MessageStatus", "ErrorCode", "SmsSid", "SmsStatus", "AccountSid"],
    ("twilio", "inbound"): ["From", "To", "Body", "MessageSid", "SmsMessageSid", "NumMedia"],
    ("kannel", "status"): ["id", "status", "answer", "token"],
    ("kannel", "inbound"): ["from", "to", "text", "coding", "charset", "id", "token"],
    ("acme", "status"): ["id", "status", "error"],
    ("acme", "inbound"): ["from", "to", "text", "id"],
}
WELL_FORMED = {
    ("twilio", "status"): {"MessageSid": "SM{n}", "MessageStatus": "delivered"},
    ("twilio", "inbound"): {"From": "+15551234567", "To": "+15550001000", "Body": "STOP {n}", "MessageSid": "SM{n}"},
    ("kannel", "status"): {"id": "k{n}", "status": "1", "answer": "id:1 stat:DELIVRD err:000"},
    ("kannel", "inbound"): {"from": "+15551234567", "to": "+15550001000", "text": "hi {n}", "id": "k{n}"},
    ("acme", "status"): {"id": "a{n}", "status": "delivered"},
    ("acme", "inbound"): {"from": "+15551234567", "to": "+15550001000", "text": "hi {n}", "id": "a{n}"},
}
ODD_VALUES = ["", " ", "delivered", "failed", "sent", "DELIVRD", "undelivered", "1", "2", "16", "8", "30007", "0",
              "+15551234567", "15550001000", "1234", "²", "١", "٣٣", "\x00", "\x1b[31m", "\u202e", "\u2028", "nan",
              "Infinity", "-0", "1e999", "%d", "%%", "a&b=c", "é", "😀", "\ufeff", "\ud800"]  # fmt: skip
FORM = "application/x-www-form-urlencoded"
FORM_TYPES = [FORM, FORM, FORM, FORM, f"{FORM}; charset=utf-8", f"{FORM}; charset=latin-1", f"{FORM}; charset=nope-9",
              "application/json", "text/plain", ""]  # fmt: skip
JSON = "application/json"
JSON_TYPES = [JSON, JSON, JSON, JSON, f"{JSON}; charset=utf-8", f"{JSON}; charset=utf-16", f"{JSON}; charset=x9", FORM,
              "text/json", ""]  # fmt: skip
MULTIPART = "multipart/form-data"
NASTY_VALUES = ["\ud800", "\udfff", "x\ud83d", "²", "¹", "³", "\x00", "\u202e", "\ufeff", "\x7f", "\r\n"]  # fmt: skip
LONG_SIZES = [15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 159, 160, 161, 639, 640, 641, 5000, 70_000]


@dataclass
class Stored:
    """What the gateways handed to the service, stored in SQLite as the service stores receipts and replies."""

    db: sqlite3.Connection = field(default_factory=lambda: sqlite3.connect(":memory:"))
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.db.execute("CREATE TABLE received (gateway, kind, a, b, c, d)")

    def _store(self, row: tuple[Any, ...]) -> None:
        self.db.execute("INSERT INTO received VALUES (?, ?, ?, ?, ?, ?)", row)
        self.rows.append(row)

    async def on_report(self, gateway: str, report: DeliveryReport) -> None:
        self._store((gateway, "status", report.message_id, report.state.value, report.error_code, report.detail))

    async def on_inbound(self, gateway: str, sms: InboundSms) -> None:
        self._store((gateway, "inbound", sms.sender, sms.to, sms.text, sms.message_id))


@dataclass
class Shot:
    """One request: where, how, and whether it carries its gateway's right credential."""

    method: str
    path: str
    query: str = ""  # raw, already percent-encoded
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    authentic: bool = False
    no_content_type: bool = False
    note: str = ""


class Garbage:
    """A seeded stream of webhook requests (random.Random, not hypothesis: one server answers them all)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0

    def value(self) -> str:
        rng = self.rng
        pick = rng.random()
        if pick < 0.35:
            return rng.choice(ODD_VALUES)
        if pick < 0.5:
            return rng.choice(NASTY_VALUES)
        if pick < 0.65:
            return rng.choice("x9é") * rng.choice(LONG_SIZES)
        if pick < 0.85:
            return "".join(chr(rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0, 0x110000)]))
                           for _ in range(rng.randrange(0, 12)))  # fmt: skip
        return rng.choice(["+1555", "", "+"]) + str(rng.randrange(10**12))

    def fields(self, gateway: str, kind: str, *, forged: bool) -> list[tuple[str, str]]:
        """The gateway's fields, well formed or not; a forged one reads "stranger" wherever it names the text."""
        rng = self.rng
        self.n += 1
        marker = f"stranger{self.n}" if forged else str(self.n)
        if rng.random() < 0.5:
            good = {name: text.format(n=marker) for name, text in WELL_FORMED[(gateway, kind)].items()}
            if rng.random() < 0.4:  # one field spoilt
                good[rng.choice(list(good))] = rng.choice(NASTY_VALUES) if rng.random() < 0.5 else self.value()
            return list(good.items())
        names = FIELDS[(gateway, kind)]
        pairs = [(rng.choice([*names, self.value()]), self.value()) for _ in range(rng.randrange(0, 8))]
        if forged:
            pairs += [(name, marker) for name in names if name in ("id", "text", "MessageSid", "Body")]
        return pairs

    def json_value(self, depth: int = 0) -> str:
        rng = self.rng
        pick = rng.random()
        if pick < 0.5 or depth > 3:
            return json.dumps(self.value(), ensure_ascii=rng.random() < 0.7)
        if pick < 0.7:
            return rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-0.0", "9" * rng.choice([20, 4300, 5000]),
                               "true", "null", "12", "1.5", '"\\ud800"', '"\\u0000\\n\\t"', '"\\x"'])  # fmt: skip
        if pick < 0.85:
            return "[" + ",".join(self.json_value(depth + 1) for _ in range(rng.randrange(3))) + "]"
        return "{" + ",".join(f'"k{i}":{self.json_value(depth + 1)}' for i in range(rng.randrange(3))) + "}"

    def json_body(self, pairs: list[tuple[str, str]]) -> str:
        rng = self.rng
        pick = rng.random()
        if pick < 0.6:
            members = [
                f"{json.dumps(name)}:{json.dumps(value) if rng.random() < 0.6 else self.json_value()}"
                for name, value in pairs
            ]
            return "{" + ",".join(members) + "}"
        if pick < 0.75:
            depth = rng.choice([10, 900, 5000, 30_000])
            return "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth
        return rng.choice(["", "[]", "null", '"text"', "1", '{"from":', "\ufeff{}", "{'from': 1}", '{"a":1}{"b":2}',
                           self.json_value()])  # fmt: skip

    def encode(self, shot: Shot) -> None:
        """Maybe compress the body: valid, truncated, a bomb just past the limit, or an encoding nobody knows."""
        rng = self.rng
        pick = rng.random()
        body = shot.body or b""
        if pick < 0.6:
            return
        if pick < 0.7:
            shot.headers["Content-Encoding"] = "gzip"
            shot.body = gzip.compress(body)
        elif pick < 0.78:
            shot.headers["Content-Encoding"] = "deflate"
            shot.body = zlib.compress(body) if rng.random() < 0.5 else zlib.compress(body)[2:-4]  # zlib or raw
        elif pick < 0.84:
            shot.headers["Content-Encoding"] = rng.choice(["gzip", "deflate"])
            whole = gzip.compress(body) if shot.headers["Content-Encoding"] == "gzip" else zlib.compress(body)
            shot.body = whole[: rng.randrange(len(whole) + 1)]
        elif pick < 0.92:
            shot.headers["Content-Encoding"] = "gzip"
            over = MAX_BODY_BYTES + rng.randrange(1, 3000)
            shot.body = gzip.compress(body + b" " * max(0, over - len(body)))
            shot.note = "bomb"
        else:
            shot.headers["Content-Encoding"] = rng.choice(["br", "zstd", "x-bogus", "gzip, gzip", "identity"])
            shot.body = rng.randbytes(rng.randrange(64)) if rng.random() < 0.5 else body

    def shot(self) -> Shot:
        rng = self.rng
        gateway = rng.choice(["twilio", "kannel", "acme", "acme", "twilio", "kannel", "nobody"])
        kind = rng.choice(["status", "inbound", "status", "inbound", "other"])
        method = rng.choice(["POST"] * 8 + ["GET", "PUT"])
        credential = rng.choice(["right", "right", "wrong", "none"])
        known = (gateway if gateway != "nobody" else "acme", kind if kind != "other" else "status")
        pairs = self.fields(*known, forged=credential != "right")
        body_kind = rng.choice(["form", "form", "json", "json", "bytes", "query", "multipart"])
        if method == "GET":
            body_kind = "query"
        token = WEBHOOK_TOKEN if credential == "right" else rng.choice([WEBHOOK_TOKEN[:-1], WEBHOOK_TOKEN + "x", ""])
        if gateway == "kannel" and credential != "none":  # Kannel's token is one of its fields (URL or form)
            pairs.insert(rng.randrange(len(pairs) + 1), ("token", token))
        shot = Shot(method, f"/webhooks/{gateway}/{kind}")
        self.body(shot, pairs, body_kind)
        self.credential(shot, gateway, credential, token, pairs, body_kind)
        if shot.body is not None:
            self.encode(shot)
        shot.authentic = credential == "right" and gateway != "nobody" and kind != "other" and method != "PUT"
        return shot

    def body(self, shot: Shot, pairs: list[tuple[str, str]], body_kind: str) -> None:
        rng = self.rng
        if body_kind == "query":
            shot.query = urlencode(pairs, quote_via=quote, errors="surrogatepass")
        elif body_kind == "form":
            shot.body = urlencode(pairs, errors="surrogatepass").encode("ascii")
            shot.headers["Content-Type"] = rng.choice(FORM_TYPES)
        elif body_kind == "json":
            shot.body = self.json_body(pairs).encode("utf-8", "surrogatepass")
            shot.headers["Content-Type"] = rng.choice(JSON_TYPES)
        elif body_kind == "multipart":
            boundary = "b0undary"
            parts = [
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name[:20]}"\r\n\r\n{value}\r\n'
                for name, value in pairs
                if name.isascii() and name.isalnum()
            ]
            shot.body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8", "surrogatepass")
            shot.headers["Content-Type"] = rng.choice(
                [f"{MULTIPART}; boundary={boundary}", f"{MULTIPART}; boundary=x", MULTIPART]
            )
        else:
            shot.body = rng.randbytes(rng.choice([0, 1, 10, 100, 1000, MAX_BODY_BYTES - 1, MAX_BODY_BYTES + 1]))
            shot.headers["Content-Type"] = rng.choice(["application/json", "application/x-www-form-urlencoded",
                                                       "application/octet-stream"])  # fmt: skip
        if shot.headers.get("Content-Type") == "":
            del shot.headers["Content-Type"]
            shot.no_content_type = True

    def credential(
        self, shot: Shot, gateway: str, credential: str, token: str, pairs: list[tuple[str, str]], body_kind: str
    ) -> None:
        """Twilio's signature, or the webhook token in the query or a header (Kannel's is among its fields)."""
        if credential == "none" or gateway == "kannel":
            return
        if gateway == "twilio":
            url = f"{PUBLIC_URL}{shot.path}" + (f"?{shot.query}" if shot.query else "")
            signed: MultiDict[str] = MultiDict(pairs if body_kind != "query" else [])
            try:
                signature = twilio_signature(TWILIO_TOKEN if credential == "right" else "not-the-token", url, signed)
            except UnicodeEncodeError:  # a lone surrogate cannot be signed by anyone
                signature = "c2lnbmF0dXJl"
            shot.headers["X-Twilio-Signature"] = signature
            return
        where = self.rng.choice(["query", "header", "bearer"])
        if where == "query":
            shot.query = "&".join(part for part in (shot.query, f"token={quote(token)}") if part)
        elif where == "header":
            shot.headers["X-Webhook-Token"] = token
        else:
            shot.headers["Authorization"] = f"Bearer {token}"


async def send(client: aiohttp.ClientSession, base: str, shot: Shot) -> int:
    url = URL(base + shot.path + (f"?{shot.query}" if shot.query else ""), encoded=True)
    skip = ("Content-Type",) if shot.no_content_type else ()
    async with client.request(shot.method, url, data=shot.body, headers=shot.headers, skip_auto_headers=skip) as answer:
        await answer.read()
        return answer.status


async def test_every_webhook_answers_a_clear_status_and_only_the_authentic_ones_are_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twilio, Kannel and a generic gateway behind ONE real web server, sent a seeded stream of 800 requests from
    `random.Random(seed)` (not hypothesis: a server per example would be slow): random bytes, forms and JSON (deep,
    huge numbers, NaN, escaped surrogates, control characters, values around and far over the field limits), wrong
    or missing content types and charsets, gzip/deflate bodies (valid, truncated, a bomb just past the limit,
    unknown encodings), with the right, a wrong or no token/signature. Every answer is one of ANSWERS (never a 500),
    nothing is logged at ERROR or with a traceback, the server stays up, a request without the right credential never
    gets a 2xx nor stores anything, and afterwards well-formed receipts and replies are still accepted."""
    port = free_port()
    web = WebConfig(port=port, public_url=PUBLIC_URL, webhook_token=WEBHOOK_TOKEN)
    nowhere = "http://127.0.0.1:9"
    gateways: list[HttpGateway] = [
        TwilioGateway(GatewayConfig("twilio", "twilio", url=nowhere, account_sid="AC1", auth_token=TWILIO_TOKEN), web),
        KannelGateway(GatewayConfig("kannel", "kannel", url=nowhere, username="u", password="kannel-pass-77"), web),
        GenericHttpGateway(GatewayConfig("acme", "generic", url=nowhere, body=(("to", "{to}"),)), web),
    ]
    stored = Stored()
    for gateway in gateways:
        await gateway.start(partial(stored.on_report, gateway.name), partial(stored.on_inbound, gateway.name))
    runner = await start_web(create_app(webhook_gateways={g.name: g for g in gateways}), "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    garbage = Garbage(seed=8)  # a seed whose stream reaches every kind of problem found so far
    answers: list[tuple[int, Shot]] = []
    after: list[tuple[str, str, int]] = []
    caplog.set_level(logging.DEBUG)
    try:
        async with aiohttp.ClientSession() as client:
            for index in range(800):
                shot = garbage.shot()
                answers.append((await send(client, base, shot), shot))
                if index % 100 == 99:
                    async with client.get(f"{base}/healthz") as health:
                        assert (health.status, await health.text()) == (200, "ok")
            before = len(stored.rows)
            for (target, kind), template in WELL_FORMED.items():  # the server was not wedged by any of it
                pairs = [(name, text.format(n=f"after-{kind}")) for name, text in template.items()]
                shot = Shot("POST", f"/webhooks/{target}/{kind}")
                if target == "kannel":
                    shot.method, shot.query = "GET", urlencode([*pairs, ("token", WEBHOOK_TOKEN)], quote_via=quote)
                else:
                    shot.body = urlencode(pairs).encode("ascii")
                    shot.headers["Content-Type"] = "application/x-www-form-urlencoded"
                    garbage.credential(shot, target, "right", WEBHOOK_TOKEN, pairs, "form")
                after.append((target, kind, await send(client, base, shot)))
            stored_after = len(stored.rows) - before
    finally:
        for gateway in gateways:
            await gateway.close()
        await runner.cleanup()

    problems: dict[str, list[Any]] = {}
    problems["not 2xx with the right credential after the garbage"] = [a for a in after if a[2] not in (200, 204)]
    if stored_after != len(WELL_FORMED):
        problems["rows stored for the well-formed webhooks"] = [stored_after]
    problems["answers outside ANSWERS"] = [
        (status, shot.method, shot.path, shot.headers, (shot.body or b"")[:120], shot.query[:120])
        for status, shot in answers
        if status not in ANSWERS
    ]
    logged = {  # one of each kind
        f"{record.name}: {record.getMessage()}" + (f": {record.exc_info[1]!r}"[:160] if record.exc_info else ""): None
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info
    }
    problems["logged at ERROR or with a traceback"] = list(logged)
    problems["2xx without the right credential"] = [(s, x) for s, x in answers if 200 <= s < 300 and not x.authentic]
    accepted = sum(200 <= status < 300 for status, _ in answers)
    if len(stored.rows) != accepted + len(WELL_FORMED):  # one row per accepted webhook, none for any other
        problems["rows stored vs webhooks accepted"] = [(len(stored.rows), accepted + len(WELL_FORMED))]
    problems["rows from a forged webhook"] = [row for row in stored.rows if "stranger" in repr(row)]
    statuses = {status for status, _ in answers}
    if not {200, 400, 403, 404, 413} <= statuses or accepted < 20:  # the stream reached every kind of answer
        problems["stream too tame"] = [sorted(statuses), accepted]
    problems = {what: found for what, found in problems.items() if found}
    assert not problems, json.dumps({what: [repr(item)[:300] for item in found[:12]] + [f"{len(found)} in all"]
                                     for what, found in problems.items()}, indent=1, ensure_ascii=False)  # fmt: skip


# == 3. CEL rows =====================================================================================================

CEL_EVENTS = ["CHAN_START", "ANSWER", "APP_START", "BRIDGE_ENTER", "BRIDGE_EXIT", "HANGUP", "LINKEDID_END",
              "CHAN_END", "APP_END", "STREAM_BEGIN", "STREAM_END", "DTMF", "PARK_START", "LOCAL_OPTIMIZE", "",
              "hangup"]  # fmt: skip
CEL_IDS = ["1.1", "1.2", "1.3", "2.1", "2.2", ""]  # a small pool: calls and channels collide
CEL_CHANNELS = ["PJSIP/trunk-00000001", "PJSIP/100-00000002", "Local/100@x-00000003;1", "Local/100@x-00000003;2",
                "PJSIP/101-00000005", ""]  # fmt: skip
EXTRAS = ['{"hangupcause":16,"hangupsource":"PJSIP/trunk-00000001","dialstatus":""}',
          '{"hangupcause":17,"hangupsource":"","dialstatus":"BUSY"}', '{"hangupsource":"PJSIP/trunk-00000001\\"x"}',
          '{"hangupsource":"PJSIP\\/trunk-00000001"}', '{"hangupsource":"\\ud800"}', '{"hangupsource":"\\x"}',
          '{"hangupsource":"a\\', '{"bridge_id":"b1","bridge_technology":"simple_bridge"}',
          '{"bridge_id":"\\u0062\\u0031"}', '{"bridge_id":""}', '{"bridge_id":7}',
          '{"hangupcause":-99999999999999999999999}', '{"hangupcause":' + "9" * 4090 + "}",
          '{"hangupcause":' + "9" * 5000 + "}", '{"hangupcause":"16"}', "{", "null", ""]  # fmt: skip
TIME_TEXTS = st.one_of(
    st.floats(min_value=1.6e9, max_value=1.9e9).map(repr),
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "1e20",
            "-1e20",
            "-5",
            "0",
            "946684800",
            "4102444800",
            "4102444799.9",
            "2026-12-06 07:58:43",
            "2026-12-06T07:58:43+05:00",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2026-02-30 00:00:00",
            "yesterday",
            "",
            " 1796543878.25 ",
        ]
    ),
    st.text(max_size=20),
)
ZONES = st.sampled_from([None, "UTC", "America/New_York", "Pacific/Kiritimati"])


@st.composite
def cel_rows(draw: st.DrawFn) -> tuple[list[tuple[str, Any]], str | None]:
    """Rows as (time text, the other fields), and the PBX's zone the time texts are read in."""
    rows = []
    for _ in range(draw(st.integers(min_value=0, max_value=30))):
        uniqueid, linkedid = draw(st.sampled_from(CEL_IDS)), draw(st.sampled_from(CEL_IDS))
        text = st.sampled_from(["", "15557654321", "Anna", "15550001000", "from-trunk", "Dial", "Queue", "VoiceMail",
                                "PJSIP/100-00000002", "\x00", "x" * 300]) | st.text(max_size=8)  # fmt: skip
        rows.append(
            (
                draw(TIME_TEXTS),
                dict(
                    event=draw(st.sampled_from(CEL_EVENTS)),
                    channel=draw(st.sampled_from(CEL_CHANNELS) | st.text(max_size=6)),
                    uniqueid=uniqueid,
                    linkedid=linkedid,
                    cid_name=draw(text),
                    cid_num=draw(text),
                    exten=draw(text),
                    context=draw(text),
                    app=draw(text),
                    peer=draw(st.sampled_from(CEL_CHANNELS) | text),
                    extra=draw(st.sampled_from(EXTRAS) | st.text(max_size=40)),
                ),
            )
        )
    return rows, draw(ZONES)


def assert_sane(verdicts: dict[str, CallRecord | None], rows: list[CelRow]) -> None:
    ended = {row.linkedid for row in rows if row.event == "LINKEDID_END" and row.linkedid}
    assert set(verdicts) == ended  # only the calls that are over, each once
    for linkedid, record in verdicts.items():
        if record is None:
            continue
        assert record.linkedid == linkedid and record.from_cel
        times = [record.started_at, record.ended_at, record.ring_at, record.answered_at]
        times += [time for leg in record.legs for time in (leg.started_at, leg.ended_at)]
        assert all(math.isfinite(t) and EARLIEST_TIME <= t <= LATEST_TIME for t in times if t is not None), record


@FUZZ
@given(drawn=cel_rows())
def test_any_cel_rows_are_judged_without_raising_and_only_complete_calls(
    drawn: tuple[list[tuple[str, Any]], str | None],
) -> None:
    """Times are read as the reader reads them (`event_time`, in the PBX's zone or this host's); rows whose time is no
    clock reading are left out, as the reader leaves them out."""
    texts, zone_name = drawn
    zone = ZoneInfo(zone_name) if zone_name else None
    rows = []
    for index, (text, values) in enumerate(texts, start=1):
        at = event_time(text, zone)
        assert at is None or (math.isfinite(at) and EARLIEST_TIME < at < LATEST_TIME)
        if at is not None:
            rows.append(CelRow(id=index, time=at, **values))
    for row in rows:
        for key in ("hangupcause", "hangupsource", "bridge_id"):
            assert isinstance(extra_field(row, key), str | int | None)
    assert_sane(judge(complete_calls(rows), InboundMatcher()), rows)


CEL_DDL = (
    "CREATE TABLE cel (AcctId INTEGER PRIMARY KEY, eventtype,eventtime,cidname,cidnum,cidani,cidrdnis,ciddnid,exten,"
    "context,channame,appname,appdata,amaflags,accountcode,uniqueid,linkedid,peer,peeraccount,userfield,userdeftype,"
    "extra)"
)  # as Asterisk's cel_sqlite3_custom created it in the recordings (/work/shared/traces/asterisk-cel/*/master.db)
CEL_COLUMNS = ["eventtype", "eventtime", "cidname", "cidnum", "exten", "context", "channame", "appname", "uniqueid",
               "linkedid", "peer", "extra"]  # fmt: skip
SQL_ANY = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=40),
    st.text(max_size=20),
    st.sampled_from(["é" * 257, "x" * 5000, "é" * 20_000]),
    st.sampled_from([b"CHAN_START", b"1796543878.25", "1e999", "-1e999", " 1796543878 ", "2026-12-06 07:58:43"]),
)
SQL_VALUES = {
    "eventtype": st.sampled_from(CEL_EVENTS) | SQL_ANY,
    "eventtime": st.floats(min_value=1.6e9, max_value=1.9e9) | TIME_TEXTS | SQL_ANY,
    "uniqueid": st.sampled_from(CEL_IDS) | SQL_ANY,
    "linkedid": st.sampled_from(CEL_IDS) | SQL_ANY,
    "channame": st.sampled_from(CEL_CHANNELS) | SQL_ANY,
    "extra": st.sampled_from(EXTRAS)
    | SQL_ANY
    | st.sampled_from(['{"bridge_id":"' + "b" * n for n in (4070, 4200, 9000)]),
}


@FUZZ
@given(
    rows=st.lists(st.fixed_dictionaries({name: SQL_VALUES.get(name, SQL_ANY) for name in CEL_COLUMNS}), max_size=25),
    zone=ZONES,
)
def test_cel_sqlite_gives_well_typed_bounded_rows_whatever_the_table_holds(
    rows: list[dict[str, Any]], zone: str | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Asterisk's CEL table (its DDL gives the columns no type: any value is kept as given) filled with values of
    every SQLite type: `rows()` never raises and gives CelRow values of the declared types, bounded."""
    path: Path = tmp_path_factory.mktemp("cel") / "master.db"
    with sqlite3.connect(path) as conn:
        conn.execute(CEL_DDL)
        conn.executemany(
            f"INSERT INTO cel ({', '.join(CEL_COLUMNS)}) VALUES ({', '.join('?' * len(CEL_COLUMNS))})",
            [tuple(row[name] for name in CEL_COLUMNS) for row in rows],
        )
    conn.close()
    cel = CelSqlite(CelConfig(sqlite=path, timezone=zone))
    try:
        read = cel.rows(0, cel.last_id())
        cel.probe()
    finally:
        cel.close()
    for row in read:
        assert isinstance(row, CelRow)
        assert isinstance(row.id, int) and isinstance(row.time, float), row[:3]
        assert math.isfinite(row.time) and EARLIEST_TIME < row.time < LATEST_TIME
        texts = row[1:2] + row[3:]
        assert all(isinstance(value, str) for value in texts), row
        assert (
            all(len(value) <= MAX_VALUE_CHARS for value in row[1:2] + row[3:-1]) and len(row.extra) <= MAX_EXTRA_CHARS
        )
    assert_sane(judge(complete_calls(read), InboundMatcher()), read)


def test_the_ddl_is_the_one_asterisk_wrote_in_the_recordings() -> None:
    for trace in cel_traces():
        with sqlite3.connect(f"{(trace.path / 'master.db').as_uri()}?mode=ro", uri=True) as conn:
            ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'cel'").fetchone()[0]
        conn.close()
        assert ddl == CEL_DDL, trace.name
