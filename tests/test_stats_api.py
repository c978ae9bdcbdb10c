"""Recovery statistics (store/stats.py, `callbuddy-pbx stats`) and the JSON API (/api/v1, web/api.py).

The figures are worked out here in Python from the scenario that fills the database, never with SQL, and compared
with what `recovery_stats` counts.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx import cli
from callbuddy_pbx.config import ConfigError, load_config
from callbuddy_pbx.config.web import ApiToken
from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.serialize import call_to_dict
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.links import LinkStore, NewLink, insert_links, new_token
from callbuddy_pbx.store.messages import MessageStore, NewText, SendUpdate, Verdict
from callbuddy_pbx.store.stats import RecoveryStats, recovery_stats
from callbuddy_pbx.web.api import MAX_LIMIT, api_routes
from callbuddy_pbx.web.server import create_app
from tests.filled_db import filled_copy

GLOW, BOLT = "Glow Salon", "Bolt Garage"
T0 = datetime(2023, 11, 1, tzinfo=UTC).timestamp()  # the period spans the US end of DST (5 November)
SINCE, UNTIL = T0, T0 + 14 * 86400
DAY = 86400.0
MISSED_OUTCOMES = [o for o in Outcome if o is not Outcome.ANSWERED]
# What becomes of a missed call's text.
FATES = ("none", "queued", "sent", "delivered", "failed_report", "failed_send", "cancelled")
ALL_TOKEN = "a" * 24 + "-all"
GLOW_TOKEN = "g" * 30
BOLT_TOKEN = "b" * 30


@dataclass
class Call:
    record: CallRecord
    fate: str = "none"
    sent_at: float | None = None
    clicks: int = 0


@dataclass
class Scenario:
    calls: list[Call] = field(default_factory=list)
    opt_outs: list[tuple[str, float]] = field(default_factory=list)  # (business, changed_at), STOP only
    inbound: list[tuple[str | None, float]] = field(default_factory=list)


def make_record(n: int, business: str | None, outcome: Outcome, ended_at: float) -> CallRecord:
    answered = outcome is Outcome.ANSWERED
    leg = LegRecord(f"PJSIP/10{n % 3}-{n:08x}", f"PJSIP/10{n % 3}", "ANSWER" if answered else "NOANSWER", 16,
                    answered, ended_at - 30, ended_at)  # fmt: skip
    return CallRecord(
        linkedid=f"call-{n:04d}",
        business=business,
        did="+15550001000" if business == GLOW else "+15550002000",
        caller=f"+1555{n:07d}",
        caller_raw=f"+1555{n:07d}",
        caller_name=None,
        outcome=outcome,
        answered_by="PJSIP/101" if answered else None,
        started_at=ended_at - 40,
        ring_at=ended_at - 35,
        answered_at=ended_at - 20 if answered else None,
        ended_at=ended_at,
        hangup_cause=16,
        legs=(leg,),
    )


async def fill(store: CallStore, seed: int = 7, count: int = 160) -> Scenario:
    rng = random.Random(seed)
    messages, links = MessageStore(store), LinkStore(store)
    scenario = Scenario()
    for n in range(count):
        business = rng.choice([GLOW, GLOW, BOLT, None])
        outcome = Outcome.ANSWERED if rng.random() < 0.35 else rng.choice(MISSED_OUTCOMES)
        ended_at = SINCE - 2 * DAY + rng.random() * 18 * DAY  # some before, some after the period
        call = Call(make_record(n, business, outcome, ended_at))
        if outcome.missed and business is not None:
            call.fate = rng.choice(FATES)
            if call.fate != "none":
                call.sent_at = ended_at + rng.uniform(2, 240)
                if call.fate in ("queued", "failed_send", "cancelled"):
                    call.sent_at = None
                if call.fate == "delivered":
                    call.clicks = rng.choice([0, 1, 3])
        scenario.calls.append(call)

    # Calls that could be texted are stored with the policy's verdict; the others as the tracker stores them.
    textable = [c for c in scenario.calls if c.record.missed and c.record.business is not None]
    verdicts = [Verdict(c.record.linkedid, c.fate != "none", "test" if c.fate != "none" else "quiet") for c in textable]
    await messages.save_calls_with_texts([c.record for c in textable], verdicts, [], now=T0)
    await store.save_calls([c.record for c in scenario.calls if c not in textable])
    for c in scenario.calls:
        r = c.record
        if c.fate == "none":
            continue
        text = NewText(r.linkedid, "missed_call", r.caller or "", "+15550001000", "sim", "Sorry we missed you",
                       r.ended_at + 1, business=r.business, linkedid=r.linkedid)  # fmt: skip
        await messages.enqueue([text], r.ended_at + 1)
        (row,) = [m for m in await messages.list_messages(limit=1000) if m.key == r.linkedid]
        if c.fate == "cancelled":
            assert r.business is not None
            at = r.ended_at + 5
            await messages.set_opt_out(r.caller or "", r.business, True, at)  # STOP cancels the queued text
            scenario.opt_outs.append((r.business, at))
            continue
        if c.fate == "queued":
            continue
        assert await messages.claim([row.id], r.ended_at + 1) == [row.id]
        if c.fate == "failed_send":
            await messages.apply_send_results([SendUpdate(row.id, "failed", 1, row.send_at, None, "rejected",
                                                          r.ended_at + 3)])  # fmt: skip
            continue
        assert c.sent_at is not None
        await messages.apply_send_results([SendUpdate(row.id, "sent", 1, row.send_at, f"m-{r.linkedid}", None,
                                                      c.sent_at)])  # fmt: skip
        if c.fate in ("delivered", "failed_report"):
            state = DeliveryState.DELIVERED if c.fate == "delivered" else DeliveryState.FAILED
            assert await messages.apply_report("sim", DeliveryReport(f"m-{r.linkedid}", state, c.sent_at + 4))
        token = new_token()
        async with store.transaction() as conn:
            await insert_links(conn, [NewLink(r.linkedid, token, "https://book.example", r.linkedid, r.business)],
                               {r.linkedid}, c.sent_at)  # fmt: skip
        for k in range(c.clicks):
            await links.record_click(token, c.sent_at + 60 + k, "test")
    # Opt-outs and replies that do not belong to a call; a START (opted back in) is not an opt-out.
    for k in range(12):
        business = rng.choice([GLOW, BOLT])
        at = SINCE - DAY + rng.random() * 16 * DAY
        await messages.set_opt_out(f"+1444{k:07d}", business, True, at)
        scenario.opt_outs.append((business, at))
        if k % 4 == 0:
            await messages.set_opt_out(f"+1444{k:07d}", business, False, at + 10)
            scenario.opt_outs.pop()
        reply_business = rng.choice([GLOW, BOLT, None])
        await messages.record_inbound("sim", f"+1444{k:07d}", "+15550001000", reply_business, "hi", "other", at + 1)
        scenario.inbound.append((reply_business, at + 1))
    return scenario


def expected(s: Scenario, business: str | None, tz: str = "UTC") -> dict[str, object]:
    """The figures, worked out from the scenario."""

    def mine(b: str | None) -> bool:
        return business is None or b == business

    period = [c for c in s.calls if SINCE <= c.record.ended_at < UNTIL and mine(c.record.business)]
    missed = [c for c in period if c.record.missed]
    texted = [c for c in missed if c.fate not in ("none", "cancelled")]
    latencies = sorted(c.sent_at - c.record.ended_at for c in missed if c.sent_at is not None)
    zone = ZoneInfo(tz)
    by_hour, by_weekday = [0] * 24, [0] * 7
    for c in missed:
        local = datetime.fromtimestamp(c.record.ended_at, zone)
        by_hour[local.hour] += 1
        by_weekday[local.weekday()] += 1
    outcomes: dict[str, int] = {}
    for c in missed:
        outcomes[c.record.outcome.value] = outcomes.get(c.record.outcome.value, 0) + 1
    return {
        "calls": len(period),
        "answered": len(period) - len(missed),
        "missed": len(missed),
        "missed_by_outcome": dict(sorted(outcomes.items())),
        "texted": len(texted),
        "delivered": sum(c.fate == "delivered" for c in missed),
        "failed": sum(c.fate in ("failed_report", "failed_send") for c in missed),
        "clicked": sum(c.clicks > 0 for c in missed),
        "opted_out": sum(SINCE <= at < UNTIL and mine(b) for b, at in s.opt_outs),
        "replies": sum(SINCE <= at < UNTIL and mine(b) for b, at in s.inbound),
        "latency_samples": len(latencies),
        "latency_median_s": statistics.median(latencies) if latencies else None,
        "latency_p95_s": latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else None,
        "missed_by_hour": tuple(by_hour),
        "missed_by_weekday": tuple(by_weekday),
    }


def figures_of(stats: RecoveryStats) -> dict[str, object]:
    return {key: getattr(stats, key) for key in expected(Scenario(), None)}


@pytest.fixture
async def filled(tmp_path: Path) -> AsyncIterator[tuple[CallStore, Scenario]]:
    store, scenario = await filled_copy("stats", fill, tmp_path / "calls.sqlite3")
    async with store:
        yield store, scenario


# -- recovery_stats --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("business", [None, GLOW, BOLT, "Nobody"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kathmandu"])
async def test_stats_match_the_rows(filled: tuple[CallStore, Scenario], business: str | None, tz: str) -> None:
    store, scenario = filled
    stats = await recovery_stats(store, since=SINCE, until=UNTIL, business=business, timezone=tz)
    want = expected(scenario, business, tz)
    got = figures_of(stats)
    for key in ("latency_median_s", "latency_p95_s"):
        assert got.pop(key) == pytest.approx(want.pop(key))
    assert got == want
    if business is None:  # the scenario exercises every figure
        assert all(want[key] for key in ("texted", "delivered", "failed", "clicked", "opted_out", "replies"))
        assert stats.latency_samples > 5


async def test_stats_funnel_and_edge_cases(tmp_path: Path) -> None:
    async with await CallStore.open(tmp_path / "empty.sqlite3") as store:
        stats = await recovery_stats(store, since=SINCE, until=UNTIL)
        assert (stats.calls, stats.missed, stats.latency_median_s, stats.latency_p95_s) == (0, 0, None, None)
        assert stats.funnel() == [
            ("missed", 0, None),
            ("texted", 0, None),
            ("delivered", 0, None),
            ("replied", 0, None),
            ("clicked", 0, None),
            ("called_back", 0, None),
            ("recovered", 0, None),
        ]
        with pytest.raises(ValueError, match="time zone"):
            await recovery_stats(store, since=SINCE, until=UNTIL, timezone="Mars/Olympus")
        with pytest.raises(ValueError, match="before"):
            await recovery_stats(store, since=UNTIL, until=SINCE)
        # Four latencies: the median is the mean of the middle two, p95 the largest (nearest rank 4 of 4).
        messages = MessageStore(store)
        for n, latency in enumerate([10.0, 20.0, 40.0, 100.0]):
            record = make_record(n, GLOW, Outcome.NO_ANSWER, SINCE + 3600 * (n + 1))
            await store.save_calls([record])
            text = NewText(record.linkedid, "missed_call", "+15550000000", "s", "sim", "b", 0, GLOW, record.linkedid)
            await messages.enqueue([text], record.ended_at)
            (row,) = [m for m in await messages.list_messages() if m.key == record.linkedid]
            await messages.claim([row.id], 0)
            await messages.apply_send_results([SendUpdate(row.id, "sent", 1, 0, "x", None, record.ended_at + latency)])
        stats = await recovery_stats(store, since=SINCE, until=UNTIL)
    assert (stats.latency_median_s, stats.latency_p95_s, stats.texted) == (30.0, 100.0, 4)
    assert stats.funnel()[1] == ("texted", 4, 100.0)
    assert stats.missed_by_hour[1:5] == (1, 1, 1, 1) and stats.missed_by_weekday[2] == 4  # 1 Nov 2023: Wednesday


# -- the command -----------------------------------------------------------------------------------------------------


async def _filled_file(path: Path) -> Scenario:
    async with await CallStore.open(path) as store:
        return await fill(store)


def test_stats_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "calls.sqlite3"
    scenario = asyncio.run(_filled_file(db))
    period = ["--since", "2023-11-01T00:00:00+00:00", "--until", "2023-11-15T00:00:00+00:00"]
    assert cli.main(["stats", "--db", str(db), *period, "--business", GLOW, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = expected(scenario, GLOW)
    assert got["missed"] == want["missed"] and got["clicked"] == want["clicked"]
    assert got["missed_by_hour"] == list(want["missed_by_hour"])  # type: ignore[call-overload]
    assert got["funnel"]["delivered"] == {
        "count": want["delivered"],
        "percent": round(100 * want["delivered"] / want["missed"], 1),  # type: ignore[operator]
    }

    assert cli.main(["stats", "--db", str(db), *period, "--tz", "Europe/London"]) == 0
    out = capsys.readouterr().out
    want = expected(scenario, None)
    assert "Recovery for all businesses, 2023-11-01 00:00 to 2023-11-15 00:00 (Europe/London)" in out
    assert f"Inbound calls {want['calls']}: answered {want['answered']}, missed {want['missed']}" in out
    texted_line = next(line for line in out.splitlines() if line.strip().startswith("texted"))
    assert texted_line.split()[1:] == [str(want["texted"]), f"{100 * want['texted'] / want['missed']:.1f}%"]  # type: ignore[operator]

    assert cli.main(["stats", "--db", str(db), "--since", "last tuesday"]) == 2
    assert cli.main(["stats", "--db", str(db), "--tz", "Nowhere/Else"]) == 2
    assert cli.main(["stats", "--db", str(tmp_path / "missing.sqlite3")]) == 1
    assert "no such database" in capsys.readouterr().err


# -- the API ---------------------------------------------------------------------------------------------------------

ApiFixture = tuple[TestClient, Scenario]  # type: ignore[type-arg]
TOKENS = (ApiToken("ops", ALL_TOKEN), ApiToken("glow", GLOW_TOKEN, (GLOW,)), ApiToken("bolt", BOLT_TOKEN, (BOLT,)))


@pytest.fixture
async def api(filled: tuple[CallStore, Scenario]) -> AsyncIterator[ApiFixture]:
    store, scenario = filled
    app = create_app(webhook_gateways={}, extra_routes=lambda app: api_routes(app, store, TOKENS, clock=lambda: UNTIL))
    async with TestClient(TestServer(app)) as client:
        yield client, scenario


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/api/v1/calls", "/api/v1/calls/call-0001", "/api/v1/messages", "/api/v1/stats"])
@pytest.mark.parametrize(
    "headers",
    [{}, bearer("x" * 30), bearer(ALL_TOKEN[:-1]), {"Authorization": f"Basic {ALL_TOKEN}"}, bearer("é" * 30)],
)
async def test_api_needs_a_valid_token(api: ApiFixture, path: str, headers: dict[str, str]) -> None:
    client, _ = api
    response = await client.get(path, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json()) == {"error": "a valid bearer token is required"}


async def test_api_calls_list_uses_call_to_dict(api: ApiFixture) -> None:
    client, scenario = api
    response = await client.get("/api/v1/calls", params={"limit": "500"}, headers=bearer(ALL_TOKEN))
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    newest = sorted((c.record for c in scenario.calls), key=lambda r: (r.ended_at, r.linkedid), reverse=True)
    assert (await response.json())["calls"] == [call_to_dict(r) for r in newest]

    response = await client.get("/api/v1/calls", params={"missed": "1", "limit": "5"}, headers=bearer(ALL_TOKEN))
    assert (await response.json())["calls"] == [call_to_dict(r) for r in newest if r.missed][:5]
    since = "2023-11-10T00:00:00+00:00"
    response = await client.get("/api/v1/calls", params={"since": since, "business": BOLT}, headers=bearer(ALL_TOKEN))
    cut = datetime.fromisoformat(since).timestamp()
    want = [call_to_dict(r) for r in newest if r.ended_at >= cut and r.business == BOLT][:100]
    assert (await response.json())["calls"] == want and want


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": str(MAX_LIMIT + 1)}, {"limit": "ten"}, {"missed": "maybe"},
                                   {"since": "yesterday"}])  # fmt: skip
async def test_api_rejects_bad_queries(api: ApiFixture, query: dict[str, str]) -> None:
    client, _ = api
    response = await client.get("/api/v1/calls", params=query, headers=bearer(ALL_TOKEN))
    assert response.status == 400
    assert next(iter(query)) in (await response.json())["error"]


async def test_api_business_token_sees_only_its_business(api: ApiFixture) -> None:
    client, scenario = api
    glow = bearer(GLOW_TOKEN)
    response = await client.get("/api/v1/calls", params={"limit": "500"}, headers=glow)
    listed = (await response.json())["calls"]
    assert {c["business"] for c in listed} == {GLOW}
    assert len(listed) == sum(c.record.business == GLOW for c in scenario.calls)
    assert (await client.get("/api/v1/calls", params={"business": BOLT}, headers=glow)).status == 403

    response = await client.get("/api/v1/messages", params={"limit": "500"}, headers=glow)
    rows = (await response.json())["messages"]
    assert rows and {row["business"] for row in rows} == {GLOW}
    assert (await client.get("/api/v1/messages", params={"business": BOLT}, headers=glow)).status == 403

    bolt_call = next(c for c in scenario.calls if c.record.business == BOLT and c.fate != "none")
    no_business = next(c for c in scenario.calls if c.record.business is None)
    for call in (bolt_call, no_business):
        response = await client.get(f"/api/v1/calls/{call.record.linkedid}", headers=glow)
        assert response.status == 404
    assert (await client.get("/api/v1/calls/call-9999", headers=glow)).status == 404
    response = await client.get(f"/api/v1/calls/{bolt_call.record.linkedid}", headers=bearer(BOLT_TOKEN))
    assert response.status == 200

    response = await client.get("/api/v1/stats", params={"business": BOLT}, headers=glow)
    assert response.status == 403
    response = await client.get("/api/v1/stats", params={"since": "2023-11-01T00:00:00+00:00"}, headers=glow)
    body = await response.json()
    assert body["business"] == GLOW and body["missed"] == expected(scenario, GLOW)["missed"]


async def test_api_call_detail(api: ApiFixture) -> None:
    client, scenario = api
    call = next(c for c in scenario.calls if c.fate == "delivered" and c.clicks == 3)
    response = await client.get(
        f"/api/v1/calls/{call.record.linkedid}",
        headers=bearer(GLOW_TOKEN if call.record.business == GLOW else BOLT_TOKEN),
    )
    assert response.status == 200
    body = await response.json()
    assert {k: v for k, v in body.items() if k not in ("verdict", "texts", "link_clicks")} == call_to_dict(call.record)
    assert len(body["legs"]) == 1 and body["link_clicks"] == 3
    (text,) = body["texts"]
    assert (text["state"], text["sent_at"], text["linkedid"]) == ("delivered", call.sent_at, call.record.linkedid)
    assert body["verdict"] == {"send": True, "reason": "test"}


async def test_api_stats(api: ApiFixture) -> None:
    client, scenario = api
    params = {"since": "2023-11-01T00:00:00+00:00", "tz": "America/New_York"}
    response = await client.get("/api/v1/stats", params=params, headers=bearer(ALL_TOKEN))
    body = await response.json()
    want = expected(scenario, None, "America/New_York")
    assert (body["until"], body["calls"], body["replies"], body["opted_out"]) == (
        UNTIL, want["calls"], want["replies"], want["opted_out"])  # fmt: skip
    assert body["missed_by_hour"] == list(want["missed_by_hour"])  # type: ignore[call-overload]
    assert body["latency"]["p95_s"] == pytest.approx(want["latency_p95_s"])
    response = await client.get("/api/v1/stats", params={"tz": "Mars/Olympus"}, headers=bearer(ALL_TOKEN))
    assert response.status == 400


async def test_api_two_business_token_must_name_one(filled: tuple[CallStore, Scenario]) -> None:
    store, _ = filled
    app = web.Application()
    api_routes(app, store, [ApiToken("both", GLOW_TOKEN, (GLOW, BOLT))])
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/api/v1/stats", headers=bearer(GLOW_TOKEN))).status == 400
        assert (await client.get("/api/v1/stats", params={"business": BOLT}, headers=bearer(GLOW_TOKEN))).status == 200
        response = await client.get("/api/v1/calls", params={"limit": "500"}, headers=bearer(GLOW_TOKEN))
        assert {c["business"] for c in (await response.json())["calls"]} == {GLOW, BOLT}


# -- configuration ---------------------------------------------------------------------------------------------------


def test_api_tokens_from_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", GLOW_TOKEN)
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(f"""\
        businesses:
          - {{name: {GLOW}, numbers: ["+15550001000"]}}
        web:
          api_tokens:
            - {{name: installer, token: "${{API_TOKEN}}", businesses: [{GLOW}]}}
            - {{name: ops, token: {ALL_TOKEN}}}
        """), encoding="utf-8")  # fmt: skip
    tokens = load_config(path).web.api_tokens
    assert tokens == (ApiToken("installer", GLOW_TOKEN, (GLOW,)), ApiToken("ops", ALL_TOKEN))
    assert GLOW_TOKEN not in repr(tokens)


def test_api_token_for_a_business_not_configured(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(f"""\
        businesses:
          - {{name: {GLOW}, numbers: ["+15550001000"]}}
        web:
          api_tokens:
            - {{name: installer, token: {ALL_TOKEN}, businesses: [Glow Salonn]}}
        """), encoding="utf-8")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:5: web.api_tokens[0].businesses") and "Glow Salonn" in problem


def test_api_token_problems(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(f"""\
        web:
          api_tokens:
            - {{name: a, token: short}}
            - {{name: b, token: {ALL_TOKEN}, businesses: []}}
            - {{token: {ALL_TOKEN}x}}
            - {{name: d, token: {ALL_TOKEN}, scope: all}}
            - {{name: d, token: {ALL_TOKEN}}}
        """), encoding="utf-8")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}:3: web.api_tokens[0].token: too short: at least 24 characters (e.g. from `openssl rand -hex 24`)",
        f"{path}:4: web.api_tokens[1].businesses: an empty list would allow nothing "
        "(leave the key out for every business)",
        f"{path}:5: web.api_tokens[2]: missing required key 'name'",
        f"{path}:6: web.api_tokens[3].scope: unknown key (expected one of: name, token, businesses)",
        f"{path}:6: web.api_tokens[3].token: the same token as on line 4",
        f"{path}:7: web.api_tokens[4].name: 'd' is already used (line 6)",
        f"{path}:7: web.api_tokens[4].token: the same token as on line 4",
    ]
    assert ALL_TOKEN not in "\n".join(info.value.problems)
