"""The owner's daily digest: figures against rows inserted by hand, local days across DST, and at most once per day
across restarts (sent late the same day, never for a day already past)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from callbuddy_pbx.config import Business, Config, DigestConfig, GatewayConfig, TextBack
from callbuddy_pbx.message_text import segments
from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.service.digest import DigestScheduler, digest_text, due_day, local_midnight
from callbuddy_pbx.service.notify import Notifier
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.stats import RecoveryStats
from callbuddy_pbx.web.server import bound_port, start_web
from tests.conftest import OpenStore

NEW_YORK = ZoneInfo("America/New_York")
OWNER = "+15550109999"
GLOW = Business(
    "Glow Salon",
    ("+15550001000",),
    "America/New_York",
    booking_url="https://glow.example/book",
    text_back=TextBack(gateway="sim", track_clicks=True),
    digest=DigestConfig(time="08:00", sms_to=(OWNER,)),
)
DENTAL = Business("Bright Dental", ("+15550003000",), "America/New_York", text_back=TextBack(gateway="sim"))
CONFIG = Config(businesses=(GLOW, DENTAL), gateways=(GatewayConfig("sim", "simulated"),))
_ids = itertools.count(1)


def local(*parts: int, fold: int = 0, zone: ZoneInfo = NEW_YORK) -> float:
    return datetime(*parts, tzinfo=zone, fold=fold).timestamp()  # type: ignore[misc]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(open_store: OpenStore) -> AsyncIterator[CallStore]:
    opened = await open_store()
    yield opened
    await opened.close()


@pytest.fixture
async def notifier_and_gateway() -> AsyncIterator[tuple[Notifier, SimulatedGateway]]:
    gateway = SimulatedGateway("sim", receipt_delay_s=-1)
    notifier = Notifier({"sim": gateway}, service="pbx-1", retry_delay_s=0.0)
    yield notifier, gateway
    await notifier.close()


async def add_call(
    store: CallStore, business: str, ended_at: float, outcome: Outcome = Outcome.NO_ANSWER, *, text: str | None = None
) -> str:
    """One call, and for a missed one optionally its text in state `text`."""
    linkedid = f"call-{next(_ids)}"
    record = CallRecord(
        linkedid=linkedid,
        business=business,
        did="+15550001000",
        caller="+15557654321",
        caller_raw="15557654321",
        caller_name=None,
        outcome=outcome,
        answered_by="PJSIP/100" if outcome is Outcome.ANSWERED else None,
        started_at=ended_at - 20,
        ring_at=ended_at - 18,
        answered_at=ended_at - 10 if outcome is Outcome.ANSWERED else None,
        ended_at=ended_at,
        hangup_cause=16,
    )
    await store.save_calls([record])
    if text is not None:
        async with store.transaction() as conn:
            await conn.execute(
                "INSERT INTO messages (key, kind, linkedid, business, to_number, sender, gateway, body, state,"
                " send_at, created_at, updated_at) VALUES (?, 'missed_call', ?, ?, '+15557654321', '+15550001000',"
                " 'sim', 'hi', ?, ?, ?, ?)",
                (linkedid, linkedid, business, text, ended_at, ended_at, ended_at),
            )
    return linkedid


async def add_click(store: CallStore, linkedid: str, at: float, times: int = 1) -> None:
    async with store.transaction() as conn:
        token = f"tok-{linkedid}"
        await conn.execute(
            "INSERT INTO link_tokens (token, linkedid, business, url, created_at) VALUES (?, ?, 'Glow Salon', 'u', ?)",
            (token, linkedid, at),
        )
        for _ in range(times):
            await conn.execute("INSERT INTO link_clicks (token, clicked_at) VALUES (?, ?)", (token, at))


async def digest_keys(store: CallStore) -> list[str]:
    async with store.connection.execute("SELECT key FROM notifications ORDER BY key") as cursor:
        return [row[0] for row in await cursor.fetchall()]


# -- figures ---------------------------------------------------------------------------------------------------------


async def test_the_text_counts_yesterdays_rows_of_this_business_only(store, notifier_and_gateway) -> None:
    notifier, gateway = notifier_and_gateway
    # Tuesday 9 June 2026 in New York: 4 missed (texts: 2 delivered, 1 failed, 1 cancelled), 2 answered.
    m1 = await add_call(store, "Glow Salon", local(2026, 6, 9, 0, 0, 5), text="delivered")
    await add_call(store, "Glow Salon", local(2026, 6, 9, 9, 30), Outcome.BUSY, text="delivered")
    await add_call(store, "Glow Salon", local(2026, 6, 9, 13, 0), Outcome.ABANDONED, text="failed")
    await add_call(store, "Glow Salon", local(2026, 6, 9, 23, 59, 59), text="cancelled")
    await add_call(store, "Glow Salon", local(2026, 6, 9, 10, 0), Outcome.ANSWERED)
    await add_call(store, "Glow Salon", local(2026, 6, 9, 11, 0), Outcome.ANSWERED)
    await add_click(store, m1, local(2026, 6, 9, 12, 0), times=2)  # two visits: one caller who clicked
    # Not counted: the evening before, the first second of today, another business.
    await add_call(store, "Glow Salon", local(2026, 6, 8, 23, 59, 59), text="delivered")
    await add_call(store, "Glow Salon", local(2026, 6, 10, 0, 0, 0), text="delivered")
    await add_call(store, "Bright Dental", local(2026, 6, 9, 12, 0), text="delivered")

    scheduler = DigestScheduler(CONFIG, store, notifier, Clock(local(2026, 6, 10, 8, 0, 30)))
    assert scheduler.businesses == (GLOW,)  # Bright Dental has no digest
    assert await scheduler.check() == ["digest:Glow Salon:2026-06-09"]
    (sms,) = gateway.sent
    assert sms.text == (
        "Glow Salon, yesterday (Tue 9 Jun): 4 calls missed, 3 texted, 2 delivered, 1 clicked the booking link."
    )
    assert (sms.to, sms.sender) == (OWNER, "+15550001000")
    assert segments(sms.text) == 1
    async with store.connection.execute("SELECT kind, business, body, sent_at, error FROM notifications") as cursor:
        ((kind, business, body, sent_at, error),) = await cursor.fetchall()
    assert (kind, business, body, error) == ("digest", "Glow Salon", sms.text, None)
    assert sent_at == local(2026, 6, 10, 8, 0, 30)


async def test_a_quiet_day_says_no_missed_calls(store, notifier_and_gateway) -> None:
    notifier, gateway = notifier_and_gateway
    await add_call(store, "Glow Salon", local(2026, 6, 9, 10, 0), Outcome.ANSWERED)
    scheduler = DigestScheduler(CONFIG, store, notifier, Clock(local(2026, 6, 10, 9, 0)))
    await scheduler.check()
    assert gateway.sent[0].text == "Glow Salon, yesterday (Tue 9 Jun): no missed calls (1 call answered)."


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 8), 23), (date(2026, 11, 1), 25), (date(2026, 6, 9), 24)],
    ids=["spring-forward", "fall-back", "ordinary"],
)
def test_local_days_are_their_true_length(day: date, hours: int) -> None:
    next_day = day + timedelta(days=1)
    period = due_day(DigestConfig(time="08:00"), "America/New_York", local(*next_day.timetuple()[:3], 8, 0))
    assert period is not None and period.day == day
    assert period.until - period.since == hours * 3600
    assert period.since == local(*day.timetuple()[:3], 0, 0)


async def test_dst_days_count_every_call_of_the_local_day(store, notifier_and_gateway) -> None:
    notifier, gateway = notifier_and_gateway
    # Sunday 1 November 2026, New York falls back: 01:30 happens twice, and both belong to that day.
    inside = [
        local(2026, 11, 1, 0, 0, 0),
        local(2026, 11, 1, 1, 30, fold=0),  # EDT
        local(2026, 11, 1, 1, 30, fold=1),  # EST, an hour later
        local(2026, 11, 1, 23, 59, 59),
    ]
    outside = [local(2026, 10, 31, 23, 59, 59), local(2026, 11, 2, 0, 0, 0)]
    for at in inside + outside:
        await add_call(store, "Glow Salon", at)
    # A UTC day, or a 24-hour day from local midnight, would lose the last call of the 25-hour day.
    assert inside[-1] - inside[0] > 24 * 3600
    scheduler = DigestScheduler(CONFIG, store, notifier, Clock(local(2026, 11, 2, 8, 5)))
    assert await scheduler.check() == ["digest:Glow Salon:2026-11-01"]
    assert "4 calls missed" in gateway.sent[0].text


async def test_spring_forward_day(store, notifier_and_gateway) -> None:
    notifier, gateway = notifier_and_gateway
    for at in (local(2026, 3, 8, 0, 0, 0), local(2026, 3, 8, 3, 30), local(2026, 3, 8, 23, 59, 59)):
        await add_call(store, "Glow Salon", at)
    for at in (local(2026, 3, 7, 23, 59, 59), local(2026, 3, 9, 0, 0, 0)):
        await add_call(store, "Glow Salon", at)
    scheduler = DigestScheduler(CONFIG, store, notifier, Clock(local(2026, 3, 9, 8, 0)))
    await scheduler.check()
    assert "Sun 8 Mar): 3 calls missed" in gateway.sent[0].text


def test_a_midnight_that_does_not_exist() -> None:
    """Chile moves its clocks at midnight: on 6 September 2026 the day starts at 01:00."""
    santiago = ZoneInfo("America/Santiago")
    start = local_midnight(date(2026, 9, 6), santiago)
    assert datetime.fromtimestamp(start, santiago).hour == 1
    assert local_midnight(date(2026, 9, 7), santiago) - start == 23 * 3600


# -- once a day, across restarts -------------------------------------------------------------------------------------


async def test_not_before_the_time_then_once(store, notifier_and_gateway) -> None:
    notifier, gateway = notifier_and_gateway
    clock = Clock(local(2026, 6, 10, 7, 59, 59))
    scheduler = DigestScheduler(CONFIG, store, notifier, clock)
    assert await scheduler.check() == []
    clock.now = local(2026, 6, 10, 8, 0)
    assert await scheduler.check() == ["digest:Glow Salon:2026-06-09"]
    clock.now = local(2026, 6, 10, 8, 0, 30)
    assert await scheduler.check() == []
    assert len(gateway.sent) == 1


async def test_not_sent_twice_across_a_restart(store, notifier_and_gateway) -> None:
    notifier, gateway = notifier_and_gateway
    first = DigestScheduler(CONFIG, store, notifier, Clock(local(2026, 6, 10, 8, 0, 10)))
    assert await first.check() == ["digest:Glow Salon:2026-06-09"]
    restarted = DigestScheduler(CONFIG, store, notifier, Clock(local(2026, 6, 10, 8, 3)))
    assert await restarted.check() == []
    assert len(gateway.sent) == 1
    assert await digest_keys(store) == ["digest:Glow Salon:2026-06-09"]


async def test_sent_late_after_a_restart_the_same_day(store, notifier_and_gateway) -> None:
    """Down at 08:00, back at 15:20: the digest still goes out that day."""
    notifier, gateway = notifier_and_gateway
    await add_call(store, "Glow Salon", local(2026, 6, 9, 12, 0), text="delivered")
    scheduler = DigestScheduler(CONFIG, store, notifier, Clock(local(2026, 6, 10, 15, 20)))
    assert await scheduler.check() == ["digest:Glow Salon:2026-06-09"]
    assert "1 call missed, 1 texted, 1 delivered" in gateway.sent[0].text
    late = DigestScheduler(CONFIG, store, notifier, Clock(local(2026, 6, 10, 23, 59, 59)))
    assert await late.check() == []


async def test_a_day_already_past_is_not_caught_up(store, notifier_and_gateway) -> None:
    """Down from the 9th evening to the 11th at 07:00: the digest about the 9th (due on the 10th) is skipped."""
    notifier, gateway = notifier_and_gateway
    clock = Clock(local(2026, 6, 11, 7, 0))
    scheduler = DigestScheduler(CONFIG, store, notifier, clock)
    assert await scheduler.check() == []
    clock.now = local(2026, 6, 11, 8, 0)
    assert await scheduler.check() == ["digest:Glow Salon:2026-06-10"]
    assert await digest_keys(store) == ["digest:Glow Salon:2026-06-10"]
    assert [sms.text.split(":")[0] for sms in gateway.sent] == ["Glow Salon, yesterday (Wed 10 Jun)"]


async def test_each_business_at_its_own_local_time(store, notifier_and_gateway) -> None:
    notifier, gateway = notifier_and_gateway
    london = Business(
        "Salon London",
        ("+442079460000",),
        "Europe/London",
        default_region="GB",
        text_back=TextBack(gateway="sim", sender="SalonLDN"),
        digest=DigestConfig(time="07:30", sms_to=("+442079460001",)),
    )
    config = Config(businesses=(GLOW, london), gateways=(GatewayConfig("sim", "simulated"),))
    clock = Clock(local(2026, 6, 10, 7, 30, zone=ZoneInfo("Europe/London")))  # 02:30 in New York
    scheduler = DigestScheduler(config, store, notifier, clock)
    assert await scheduler.check() == ["digest:Salon London:2026-06-09"]
    assert (gateway.sent[0].to, gateway.sent[0].sender) == ("+442079460001", "SalonLDN")
    clock.now = local(2026, 6, 10, 8, 0)
    assert await scheduler.check() == ["digest:Glow Salon:2026-06-09"]


async def test_webhook_gets_the_figures(store, notifier_and_gateway) -> None:
    notifier, gateway = notifier_and_gateway
    received: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/digest", hook)
    runner = await start_web(app, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{bound_port(runner)}/digest"
        business = Business(
            "Glow Salon", ("+15550001000",), "America/New_York", digest=DigestConfig(time="06:00", webhook_url=url)
        )
        config = Config(businesses=(business,))
        await add_call(store, "Glow Salon", local(2026, 6, 9, 9, 0), text="failed")
        await add_call(store, "Glow Salon", local(2026, 6, 9, 10, 0), Outcome.ANSWERED)
        scheduler = DigestScheduler(config, store, notifier, Clock(local(2026, 6, 10, 6, 0)))
        assert await scheduler.check() == ["digest:Glow Salon:2026-06-09"]
    finally:
        await runner.cleanup()
    (body,) = received
    assert {key: body[key] for key in ("kind", "business", "day", "calls", "answered", "missed", "texted")} == {
        "kind": "digest",
        "business": "Glow Salon",
        "day": "2026-06-09",
        "calls": 2,
        "answered": 1,
        "missed": 1,
        "texted": 1,
    }
    assert (body["delivered"], body["failed"], body["clicked"]) == (0, 1, 0)
    assert body["since"] == local(2026, 6, 9, 0, 0) and body["until"] == local(2026, 6, 10, 0, 0)
    # No "clicked" figure: this business's links are not tracked.
    assert body["text"] == "Glow Salon, yesterday (Tue 9 Jun): 1 call missed, 1 texted, 0 delivered."
    assert gateway.attempts == []


def test_long_names_still_fit_one_segment() -> None:
    stats = RecoveryStats(
        since=0,
        until=1,
        business="x",
        timezone="UTC",
        calls=1300,
        answered=100,
        missed=1200,
        missed_by_outcome={},
        texted=1199,
        delivered=1100,
        failed=99,
        clicked=345,
        opted_out=0,
        replies=0,
        latency_samples=0,
        latency_median_s=None,
        latency_p95_s=None,
    )
    text = digest_text("The Extremely Long Named Hair and Beauty Salon of Springfield", date(2026, 6, 9), stats)
    assert segments(text) == 1
    assert text.startswith("The Extremely Long Named Hair and Bea...") and "1200 calls missed" in text


def test_a_name_outside_gsm_7_gets_the_compact_form() -> None:
    stats = RecoveryStats(
        since=0,
        until=1,
        business="x",
        timezone="UTC",
        calls=12,
        answered=3,
        missed=9,
        missed_by_outcome={},
        texted=9,
        delivered=8,
        failed=1,
        clicked=3,
        opted_out=0,
        replies=0,
        latency_samples=0,
        latency_median_s=None,
        latency_p95_s=None,
    )
    text = digest_text("Café Zoë & Co", date(2026, 6, 9), stats)  # ë is not GSM-7: 70 characters a segment
    assert text == "Café Zoë & Co yesterday: 9 missed, 9 texted, 8 delivered, 3 clicked"
    assert segments(text) == 1
