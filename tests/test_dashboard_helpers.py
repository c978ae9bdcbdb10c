"""Shared by the dashboard tests (no tests here): a scenario in a real SQLite store, the figures worked out from it in
Python (never with SQL), an app with the dashboard and a stand-in for the login middleware, and HTML readers.

The stand-in sets the viewer from the `X-Test-User` header (a name of VIEWERS); without it the request has no viewer,
as if the login middleware were missing.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Middleware

from callbuddy_pbx.asterisk.devices_model import Device
from callbuddy_pbx.config import Business, WebUser
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.links import LinkStore, NewLink, insert_links, new_token
from callbuddy_pbx.store.messages import MessageStore, NewText, SendUpdate, Verdict
from callbuddy_pbx.store.recovery import RECOVERY_WINDOW_S, RecoveryStore
from callbuddy_pbx.web.dashboard import dashboard_routes
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.health import AmiHealth, GatewayHealth, HealthStatus
from callbuddy_pbx.web.viewer import ADMIN, BUSINESS, CSRF_KEY, VIEWER_KEY, Viewer
from tests.filled_db import filled_copy

GLOW, BOLT, GONE = "Glow Salon", "Bolt Garage", "Gone Ltd"  # GONE: calls of a business no longer configured
BUSINESSES = (
    Business(GLOW, ("+15550001000",), timezone="America/New_York"),
    Business(BOLT, ("+442070001000",), timezone="Europe/London"),
)
# 15:30 UTC on Friday 15 March 2024; the 30 days before it span the US start of DST (10 March).
NOW = datetime(2024, 3, 15, 15, 30, tzinfo=UTC).timestamp()
DAY = 86400.0
MISSED_OUTCOMES = [o for o in Outcome if o is not Outcome.ANSWERED]
FATES = ("none", "queued", "sent", "delivered", "failed_report", "failed_send", "cancelled")
XSS_NAME = "<script>alert(1)</script>\"'"
FORMULA_NAME = "=cmd|' /C calc'!A0"
CSRF = "csrf-token-for-tests"

# Made as the login middleware makes them, from the configured users.
VIEWERS = {
    "admin": Viewer.of(WebUser("admin", "scrypt$x", ADMIN)),  # every business, full numbers
    "glow": Viewer.of(WebUser("glow-owner", "scrypt$x", BUSINESS, (GLOW,), show_numbers=False)),  # mask_numbers
    "bolt": Viewer.of(WebUser("bolt-owner", "scrypt$x", BUSINESS, (BOLT,))),  # full numbers: the default
    "both": Viewer.of(WebUser("both-owner", "scrypt$x", BUSINESS, (GLOW, BOLT))),
}


def as_user(name: str) -> dict[str, str]:
    return {"X-Test-User": name}


@dataclass
class Call:
    record: CallRecord
    fate: str = "none"
    sent_at: float | None = None
    clicks: int = 0


@dataclass
class Scenario:
    calls: list[Call] = field(default_factory=list)
    opt_outs: dict[tuple[str, str], tuple[bool, float]] = field(default_factory=dict)  # (number, business) -> state
    inbound: list[tuple[str | None, float]] = field(default_factory=list)

    def call(self, linkedid: str) -> Call:
        return next(c for c in self.calls if c.record.linkedid == linkedid)


def make_record(n: int, business: str | None, outcome: Outcome, ended_at: float, name: str | None) -> CallRecord:
    answered = outcome is Outcome.ANSWERED
    # Leg 2 dials a mobile through the trunk: its endpoint holds a number (masked for a masked viewer).
    legs = (
        LegRecord(f"PJSIP/10{n % 3}-{n:08x}", f"PJSIP/10{n % 3}", "ANSWER" if answered else "NOANSWER", 16, answered,
                  ended_at - 30, ended_at),
        LegRecord(f"PJSIP/trunk-{n:08x}", "PJSIP/15557654321@trunk", "NOANSWER", 19, False, ended_at - 30,
                  ended_at - 5),
    )  # fmt: skip
    return CallRecord(
        linkedid=f"17100{n:05d}.{n}",
        business=business,
        did={GLOW: "+15550001000", BOLT: "+442070001000"}.get(business or "", "+15550009999"),
        caller=None if n % 37 == 5 else f"+1555{n:07d}",
        caller_raw=f"+1555{n:07d}",
        caller_name=name,
        outcome=outcome,
        answered_by="PJSIP/101" if answered else None,
        started_at=ended_at - 40,
        ring_at=ended_at - 35,
        answered_at=ended_at - 20 if answered else None,
        ended_at=ended_at,
        hangup_cause=16,
        legs=legs,
    )


async def fill(store: CallStore, seed: int = 11, count: int = 240) -> Scenario:
    """Calls over the 40 days before NOW (some of every outcome, business, text fate), clicks, opt-outs, replies.

    Rows are then dated as if recorded when each call ended (not now), so a live stream opened by a test sees
    only what the test adds."""
    rng = random.Random(seed)
    messages, links = MessageStore(store), LinkStore(store)
    scenario = Scenario()
    for n in range(count):
        business = rng.choice([GLOW, GLOW, BOLT, BOLT, None, GONE])
        outcome = Outcome.ANSWERED if rng.random() < 0.35 else rng.choice(MISSED_OUTCOMES)
        ended_at = NOW - 40 * DAY + rng.random() * 40 * DAY - 60
        name = {3: XSS_NAME, 4: FORMULA_NAME}.get(n, f"Caller {n:04d}" if n % 5 else None)
        call = Call(make_record(n, business, outcome, ended_at, name))
        if outcome.missed and business is not None:
            call.fate = rng.choice(FATES)
            if call.fate in ("sent", "delivered", "failed_report"):
                call.sent_at = ended_at + rng.uniform(2, 240)
            if call.fate == "delivered":
                call.clicks = rng.choice([0, 1, 3])
        scenario.calls.append(call)
    for n in (3, 4):  # the hostile names are on missed calls of GLOW, texted and failed with a hostile error
        scenario.calls[n] = Call(make_record(n, GLOW, Outcome.NO_ANSWER, NOW - 3 * DAY - n * 3600,
                                             scenario.calls[n].record.caller_name), fate="failed_send")  # fmt: skip

    textable = [c for c in scenario.calls if c.fate != "none"]
    verdicts = [Verdict(c.record.linkedid, True, "missed call, first text today") for c in textable]
    await messages.save_calls_with_texts([c.record for c in textable], verdicts, [], now=NOW - 50 * DAY)
    await store.save_calls([c.record for c in scenario.calls if c.fate == "none"])
    for c in textable:
        await _text(store, messages, links, scenario, c)
    for k in range(16):
        business = rng.choice([GLOW, BOLT])
        at = NOW - 35 * DAY + rng.random() * 35 * DAY
        number = f"+1444{k:07d}"
        await messages.set_opt_out(number, business, True, at)
        scenario.opt_outs[(number, business)] = (True, at)
        if k % 4 == 0:  # opted back in: no longer counted
            await messages.set_opt_out(number, business, False, at + 10)
            scenario.opt_outs[(number, business)] = (False, at + 10)
        reply_business = rng.choice([GLOW, BOLT, None])
        await messages.record_inbound("sim", number, "+15550001000", reply_business, "hi", "other", at + 1)
        scenario.inbound.append((reply_business, at + 1))
    async with store.transaction() as conn:
        await conn.execute("UPDATE calls SET recorded_at = ended_at + 1")
        await conn.execute("UPDATE messages SET updated_at = MIN(updated_at, ?)", (NOW - DAY,))
    await RecoveryStore(store).sweep(NOW)  # the service's sweep: the last week's clicked calls are got back
    return scenario


async def _text(store: CallStore, messages: MessageStore, links: LinkStore, scenario: Scenario, c: Call) -> None:
    r = c.record
    assert r.business is not None
    text = NewText(r.linkedid, "missed_call", r.caller or "+15550000000", "+15550001000", "sim", "Sorry we missed you",
                   r.ended_at + 1, business=r.business, linkedid=r.linkedid)  # fmt: skip
    await messages.enqueue([text], r.ended_at + 1)
    (row,) = await messages.list_messages(linkedid=r.linkedid)
    if c.fate == "cancelled":
        at = r.ended_at + 5
        await messages.set_opt_out(text.to, r.business, True, at)
        scenario.opt_outs[(text.to, r.business)] = (True, at)
        return
    if c.fate == "queued":
        return
    assert await messages.claim([row.id], r.ended_at + 1) == [row.id]
    if c.fate == "failed_send":
        error = "rejected: <b>bad</b> =SUM(A1)" if r.caller_name == FORMULA_NAME else "rejected by the gateway"
        await messages.apply_send_results([SendUpdate(row.id, "failed", 1, row.send_at, None, error, r.ended_at + 3)])
        return
    assert c.sent_at is not None
    await messages.apply_send_results([SendUpdate(row.id, "sent", 1, row.send_at, f"m-{r.linkedid}", None, c.sent_at)])
    if c.fate in ("delivered", "failed_report"):
        state = DeliveryState.DELIVERED if c.fate == "delivered" else DeliveryState.FAILED
        assert await messages.apply_report("sim", DeliveryReport(f"m-{r.linkedid}", state, c.sent_at + 4))
    token = new_token()
    async with store.transaction() as conn:
        await insert_links(conn, [NewLink(r.linkedid, token, "https://book.example", r.linkedid, r.business)],
                           {r.linkedid}, c.sent_at)  # fmt: skip
    for k in range(c.clicks):
        await links.record_click(token, c.sent_at + 60 + k, "Mozilla/5.0 <img src=x onerror=alert(1)>")


def in_scope(business: str | None, scope: Collection[str] | None) -> bool:
    return scope is None or business in scope


def expected(s: Scenario, since: float, until: float, scope: Collection[str] | None, tz: str) -> dict[str, object]:
    """The overview's figures, worked out from the scenario (scope None: every business, and calls without one)."""
    period = [c for c in s.calls if since <= c.record.ended_at < until and in_scope(c.record.business, scope)]
    missed = [c for c in period if c.record.missed]
    latencies = sorted(c.sent_at - c.record.ended_at for c in missed if c.sent_at is not None)
    figures: dict[str, object] = {
        "calls": len(period),
        "answered": len(period) - len(missed),
        "missed": len(missed),
        "texted": sum(c.fate not in ("none", "cancelled") for c in missed),
        "delivered": sum(c.fate == "delivered" for c in missed),
        "failed": sum(c.fate in ("failed_report", "failed_send") for c in missed),
        "clicked": sum(c.clicks > 0 for c in missed),
        "opted_out": sum(on and since <= at < until and in_scope(b, scope) for (_, b), (on, at) in s.opt_outs.items()),
        "replies": sum(since <= at < until and in_scope(b, scope) for b, at in s.inbound),
        "latency_samples": len(latencies),
        "latency_median_s": statistics.median(latencies) if latencies else None,
        "latency_p95_s": latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else None,
    }
    for outcome in MISSED_OUTCOMES:
        figures[f"missed_{outcome.value}"] = sum(c.record.outcome is outcome for c in missed)
    zone = ZoneInfo(tz)
    for hour in range(24):
        figures[f"missed_hour_{hour:02d}"] = sum(datetime.fromtimestamp(c.record.ended_at, zone).hour == hour
                                                 for c in missed)  # fmt: skip
    for number, day in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun")):
        figures[f"missed_weekday_{day}"] = sum(datetime.fromtimestamp(c.record.ended_at, zone).weekday() == number
                                               for c in missed)  # fmt: skip
    # Got back: only clicks are signs here (no caller replies or calls again); the sweep at NOW looked back a week.
    got_back = [c for c in missed if c.clicks and c.record.caller and c.record.ended_at >= NOW - RECOVERY_WINDOW_S]
    waits = [c.sent_at + 60 - c.record.ended_at for c in got_back if c.sent_at is not None]
    figures["recovered"] = len(got_back)
    figures["recovery_median_s"] = statistics.median(waits) if waits else None
    for how in ("called_back", "called_again", "replied"):
        figures[f"recovered_by_{how}"] = 0
    figures["recovered_by_booked"] = len(got_back)
    steps = {"replied": 0, "called_back": 0}
    for step in ("missed", "texted", "delivered", "replied", "clicked", "called_back", "recovered"):
        count = int(steps.get(step, figures.get(step, 0)))  # type: ignore[call-overload]
        figures[f"funnel_{step}"] = count
        figures[f"funnel_{step}_pct"] = round(100 * count / len(missed), 1) if missed else None
    return figures


# -- reading pages -----------------------------------------------------------------------------------------------


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.row_ids: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.elements.append((tag, found))
        if "data-figure" in found:
            self.figures[found["data-figure"] or ""] = found.get("data-value") or ""
        if tag == "tr" and (found.get("id") or "").startswith("call-"):
            self.row_ids.append((found["id"] or "")[len("call-") :])


def read_html(html: str) -> _Figures:
    parser = _Figures()
    parser.feed(html)
    parser.close()
    return parser


def figures(html: str) -> dict[str, float | None]:
    """Every data-figure on a page, as numbers (None for an empty value)."""
    return {name: float(value) if value else None for name, value in read_html(html).figures.items()}


def row_ids(html: str) -> list[str]:
    """The linkedids of the call rows (`<tr id="call-...">`), in page order."""
    return read_html(html).row_ids


def newest_first(calls: Sequence[Call]) -> list[Call]:
    return sorted(calls, key=lambda c: (c.record.ended_at, c.record.linkedid), reverse=True)


TEXT_STATE = {"none": "none", "queued": "queued", "sent": "sent", "delivered": "delivered",
              "failed_report": "failed", "failed_send": "failed", "cancelled": "cancelled"}  # fmt: skip


def feed_expected(
    s: Scenario,
    scope: Collection[str] | None,
    *,
    missed_only: bool = True,
    business: str | None = None,
    outcome: str | None = None,
    text: str | None = None,
    since: float | None = None,
    until: float | None = None,
    digits: str | None = None,
) -> list[str]:
    """The linkedids a feed shows, newest first, worked out from the scenario."""
    chosen = [
        c
        for c in s.calls
        if in_scope(c.record.business, scope)
        and (not missed_only or c.record.missed)
        and (business is None or c.record.business == business)
        and (outcome is None or c.record.outcome.value == outcome)
        and (text is None or TEXT_STATE[c.fate] == text)
        and (since is None or c.record.ended_at >= since)
        and (until is None or c.record.ended_at < until)
        and (digits is None or (c.record.caller is not None and digits in c.record.caller))
    ]
    return [c.record.linkedid for c in newest_first(chosen)]


# -- the app -----------------------------------------------------------------------------------------------------

DEVICES = (
    Device("PJSIP/101", "101", "NOT_INUSE", True, ("sip:101@10.0.0.5:5060",), "Yealink <b>T46</b>", "Ann",
           NOW - 3600, NOW - 600),
    Device("PJSIP/102", "102", "UNAVAILABLE", False, (), "", "", None, None),
    Device("PJSIP/103", "103", "UNKNOWN", None),
)  # fmt: skip
# The configured phones: 101 and 102 by name (101 with its person), 100 and 103 not configured.
PHONES = (Phone("101", "Front desk", GLOW, person="Ann"), Phone("102", "Back room", BOLT))
HEALTH = HealthStatus(
    AmiHealth(False, "connection refused <by> firewall"),
    {"smpp-main": GatewayHealth(True, "bound"), "twilio": GatewayHealth(False, "last send failed: <timeout>")},
)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def viewer_middleware() -> Middleware:
    """The login middleware's stand-in (the real one and its tests are elsewhere)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.headers.get("X-Test-User")
        if name is not None:
            request[VIEWER_KEY] = VIEWERS[name]
            request[CSRF_KEY] = CSRF
        return await handler(request)

    return middleware


def make_context(store: CallStore, **overrides: object) -> DashboardContext:
    values: dict[str, object] = {
        "store": store,
        "businesses": BUSINESSES,
        "health": lambda: HEALTH,
        "devices": lambda: DEVICES,
        "phones": PHONES,
        "ami_last_event_at": lambda: NOW - 12,
        "version": "9.9.9-test",
        "clock": lambda: NOW,
        "live_poll_s": 0.05,
    } | overrides
    return DashboardContext(**values)  # type: ignore[arg-type]


def make_app(ctx: DashboardContext) -> web.Application:
    app = web.Application(middlewares=[viewer_middleware()])
    dashboard_routes(app, ctx)
    return app


@dataclass
class Site:
    client: TestClient  # type: ignore[type-arg]
    store: CallStore
    scenario: Scenario
    ctx: DashboardContext

    async def page(self, path: str, user: str | None = "admin", **params: str) -> tuple[int, str]:
        headers = as_user(user) if user else {}
        response = await self.client.get(path, params=params, headers=headers)
        return response.status, await response.text()


@pytest.fixture(name="filled")
async def filled_fixture(tmp_path: Path) -> AsyncIterator[tuple[CallStore, Scenario]]:
    store, scenario = await filled_copy("dashboard", fill, tmp_path / "calls.sqlite3")
    async with store:
        yield store, scenario


@pytest.fixture(name="site")
async def site_fixture(filled: tuple[CallStore, Scenario]) -> AsyncIterator[Site]:
    store, scenario = filled
    ctx = make_context(store)
    async with TestClient(TestServer(make_app(ctx))) as client:
        yield Site(client, store, scenario, ctx)
