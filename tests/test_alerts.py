"""Alerts to the installer: the pure rules with a fake clock, then the monitor over a real SQLite store, a gateway
that records what it is asked to send, and a real webhook receiver."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from callbuddy_pbx.config import AlertsConfig
from callbuddy_pbx.service.alerts import (
    AMI_DOWN,
    DATABASE_AWAY,
    TEXT_FAILURES,
    AlertMonitor,
    AlertNotice,
    AlertRules,
    Sample,
    gateway_problem,
    sample_of,
)
from callbuddy_pbx.service.notify import Notice, NotificationLog, Notifier
from callbuddy_pbx.sms.gateway import SendResult, SendStatus
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.health import AmiHealth, GatewayHealth, HealthStatus
from callbuddy_pbx.web.server import bound_port, start_web

T0 = 1_795_000_000.0
CONFIG = AlertsConfig(
    sms_to=("+15550102000",),
    gateway="sim",
    sender="+15550001000",
    ami_down_after_s=120.0,
    gateway_down_after_s=300.0,
    failures_threshold=3,
    failures_window_s=3600.0,
    repeat_after_s=3600.0,
)


def down(at: float, **gateways: bool) -> Sample:
    return Sample(at=T0 + at, ami_up=False, ami_detail="connection refused", gateways=_gw(gateways))


def up(at: float, **gateways: bool) -> Sample:
    return Sample(at=T0 + at, ami_up=True, gateways=_gw(gateways))


def _gw(gateways: dict[str, bool]) -> dict[str, tuple[bool, str]]:
    return {name: (is_up, "bound" if is_up else "not bound: connecting") for name, is_up in gateways.items()}


def kinds(notices: list[AlertNotice]) -> list[tuple[str, str]]:
    return [(notice.kind, notice.problem) for notice in notices]


# -- the rules (pure, fake clock) ----------------------------------------------------------------------------------


def test_ami_down_119_s_no_alert_121_s_one_alert() -> None:
    rules = AlertRules(CONFIG)
    assert rules.check(down(0)) == []
    assert rules.check(down(119)) == []
    (alert,) = rules.check(down(121))
    assert (alert.kind, alert.problem, alert.since, alert.at) == ("alert", AMI_DOWN, T0, T0 + 121)
    assert alert.key == f"alert:ami_down:{int(T0)}"
    assert alert.detail == "connection refused"
    assert rules.check(down(180)) == []  # one alert per episode


def test_down_for_hours_repeats_every_repeat_after_then_resolves() -> None:
    rules = AlertRules(CONFIG)
    sent: list[AlertNotice] = []
    for second in range(0, 5 * 3600, 10):  # a sample every 10 s for five hours
        sent += rules.check(down(second))
    assert [notice.kind for notice in sent] == ["alert", "repeat", "repeat", "repeat", "repeat"]
    assert [notice.at - T0 for notice in sent] == [120, 3720, 7320, 10920, 14520]
    assert [notice.repeat for notice in sent] == [0, 1, 2, 3, 4]
    assert len({notice.key for notice in sent}) == 5
    (resolved,) = rules.check(up(5 * 3600))
    assert (resolved.kind, resolved.since, resolved.key) == ("resolved", T0, f"alert:ami_down:{int(T0)}:resolved")
    assert "after 5 h" in resolved.text("pbx-1")
    assert rules.check(up(5 * 3600 + 10)) == []


def test_two_hours_down_is_one_alert_and_one_repeat() -> None:
    rules = AlertRules(CONFIG)
    notices = [notice for second in (0, 119, 121, 3600, 3720, 3722, 7200) for notice in rules.check(down(second))]
    assert [(n.kind, n.at - T0) for n in notices] == [("alert", 121), ("repeat", 3722)]


def test_a_short_drop_is_never_alerted_nor_resolved() -> None:
    rules = AlertRules(CONFIG)
    assert rules.check(down(0)) == [] and rules.check(down(60)) == [] and rules.check(up(90)) == []
    assert rules.open_problems == {}


def test_a_new_episode_after_a_resolved_one_is_alerted_again_with_its_own_key() -> None:
    rules = AlertRules(CONFIG)
    first = rules.check(down(0)) + rules.check(down(130))
    assert kinds(rules.check(up(200))) == [("resolved", AMI_DOWN)]
    second = rules.check(down(300)) + rules.check(down(430))
    assert [n.key for n in first + second] == [f"alert:ami_down:{int(T0)}", f"alert:ami_down:{int(T0) + 300}"]


def test_each_gateway_is_its_own_problem() -> None:
    rules = AlertRules(CONFIG)
    assert rules.check(up(0, smsc=False, twilio=True)) == []
    assert rules.check(up(150, smsc=False, twilio=False)) == []
    assert kinds(rules.check(up(299, smsc=False, twilio=False))) == []
    assert kinds(rules.check(up(301, smsc=False, twilio=False))) == [("alert", gateway_problem("smsc"))]
    assert kinds(rules.check(up(451, smsc=True, twilio=False))) == [
        ("alert", gateway_problem("twilio")),
        ("resolved", gateway_problem("smsc")),
    ]


def test_failed_texts_alert_at_the_threshold_at_once() -> None:
    rules = AlertRules(CONFIG)

    def failures(at: float, count: int) -> list[AlertNotice]:
        return rules.check(Sample(at=T0 + at, ami_up=True, failed_texts=count))

    assert failures(0, 2) == []
    (alert,) = failures(5, 3)
    assert (alert.kind, alert.problem, alert.detail) == ("alert", TEXT_FAILURES, "3 failed in the last 1 h")
    assert failures(60, 7) == []
    assert kinds(failures(3605, 4)) == [("repeat", TEXT_FAILURES)]
    assert kinds(failures(3700, 1)) == [("resolved", TEXT_FAILURES)]


def test_resumed_episode_is_not_alerted_again() -> None:
    rules = AlertRules(CONFIG)
    rules.resume(AMI_DOWN, T0, last_notice_at=T0 + 121, repeats=0)
    assert rules.check(down(500)) == []
    assert kinds(rules.check(down(3721))) == [("repeat", AMI_DOWN)]
    assert rules.check(up(3800))[0].key == f"alert:ami_down:{int(T0)}:resolved"


def test_texts_and_payloads_carry_no_caller_numbers_or_secrets() -> None:
    status = HealthStatus(
        AmiHealth(False, "login as 'callbuddy' failed: s3cret-value; caller +15557654321"),
        {"smsc": GatewayHealth(False, "not bound: Invalid Password s3cret-value")},
    )
    sample = sample_of(status, 0, T0, secrets=["s3cret-value"])
    rules = AlertRules(AlertsConfig(ami_down_after_s=1, gateway_down_after_s=1))
    rules.check(sample)
    notices = rules.check(sample_of(status, 0, T0 + 2, secrets=["s3cret-value"]))
    assert kinds(notices) == [("alert", AMI_DOWN), ("alert", gateway_problem("smsc"))]
    for notice in notices:
        for text in (notice.text("pbx-1"), json.dumps(notice.payload("pbx-1"))):
            assert "s3cret-value" not in text and "15557654321" not in text
            assert len(notice.text("pbx-1")) <= 300
    assert "+155******21" in notices[0].detail
    payload = notices[1].payload("pbx-1")
    assert set(payload) >= {"kind", "problem", "detail", "since", "service"}
    assert (payload["kind"], payload["problem"], payload["service"]) == ("alert", "gateway_down:smsc", "pbx-1")
    assert payload["since"] == "2026-11-18T11:06:40+00:00"


# -- the monitor (real store, recording gateway) -------------------------------------------------------------------


class Clock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakeStatus:
    def __init__(self) -> None:
        self.ami = True
        self.gateways: dict[str, bool] = {"sim": True}

    def __call__(self) -> HealthStatus:
        return HealthStatus(
            AmiHealth(self.ami, None if self.ami else "connection refused"),
            {name: GatewayHealth(is_up, "up" if is_up else "down") for name, is_up in self.gateways.items()},
        )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CallStore]:
    opened = await CallStore.open(tmp_path / "calls.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
def gateway() -> SimulatedGateway:
    return SimulatedGateway("sim", receipt_delay_s=-1)


_OPEN: list[Notifier] = []


@pytest.fixture(autouse=True)
async def _close_notifiers() -> AsyncIterator[None]:
    """Every Notifier a test made is closed, even when the test fails (its aiohttp session would warn)."""
    yield
    while _OPEN:
        await _OPEN.pop().close()


def monitor_for(
    store: CallStore,
    gateway: SimulatedGateway,
    status: Callable[[], HealthStatus],
    clock: Clock,
    config: AlertsConfig = CONFIG,
) -> tuple[AlertMonitor, Notifier]:
    notifier = Notifier({"sim": gateway}, service="pbx-1", retry_delay_s=0.0)
    _OPEN.append(notifier)
    return AlertMonitor(config, status, store, notifier, clock), notifier


async def rows(store: CallStore) -> list[tuple[str, str, float | None, str | None]]:
    async with store.connection.execute(
        "SELECT key, kind, sent_at, error FROM notifications ORDER BY created_at, key"
    ) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def test_monitor_texts_the_installer_and_records_each_notice(store, gateway) -> None:
    clock, status = Clock(), FakeStatus()
    monitor, notifier = monitor_for(store, gateway, status, clock)
    status.ami = False
    for second in (0, 60, 119):
        clock.now = T0 + second
        assert await monitor.check() == []
    clock.now = T0 + 121
    assert kinds(await monitor.check()) == [("alert", AMI_DOWN)]
    (sms,) = gateway.sent
    assert (sms.to, sms.sender) == ("+15550102000", "+15550001000")
    assert sms.text.startswith("CallBuddy alert (pbx-1): Asterisk (AMI) not connected")
    assert "connection refused" in sms.text
    status.ami = True
    clock.now = T0 + 200
    assert kinds(await monitor.check()) == [("resolved", AMI_DOWN)]
    assert gateway.sent[1].text.startswith("CallBuddy resolved (pbx-1)")
    assert await rows(store) == [
        (f"alert:ami_down:{int(T0)}", "alert", T0 + 121, None),
        (f"alert:ami_down:{int(T0)}:resolved", "alert_resolved", T0 + 200, None),
    ]
    await notifier.close()


async def test_failed_texts_are_counted_from_the_messages_table(store, gateway) -> None:
    clock, status = Clock(), FakeStatus()
    monitor, notifier = monitor_for(store, gateway, status, clock)

    async def text(key: str, state: str, done_at: float | None) -> None:
        async with store.transaction() as conn:
            await conn.execute(
                "INSERT INTO messages (key, kind, to_number, sender, gateway, body, state, send_at, created_at,"
                " updated_at, done_at) VALUES (?, 'missed_call', '+15557654321', '+15550001000', 'sim', 'hi', ?,"
                " ?, ?, ?, ?)",
                (key, state, T0 - 7200, T0 - 7200, done_at or T0 - 7200, done_at),
            )

    await text("old-failure", "failed", T0 - 3700)  # outside the hour
    await text("delivered", "delivered", T0 - 10)
    await text("f1", "failed", T0 - 3000)
    await text("f2", "expired", T0 - 60)
    assert await monitor.failed_texts(T0) == 2
    assert await monitor.check() == []
    await text("f3", "failed", T0 - 1)
    assert kinds(await monitor.check()) == [("alert", TEXT_FAILURES)]
    assert "3 failed in the last 1 h" in gateway.sent[0].text
    assert "15557654321" not in gateway.sent[0].text  # callers' numbers never reach the installer
    clock.now = T0 + 700  # f1 left the window
    assert kinds(await monitor.check()) == [("resolved", TEXT_FAILURES)]
    await notifier.close()


async def test_a_second_monitor_over_the_same_database_does_not_resend(store, gateway) -> None:
    clock, status = Clock(), FakeStatus()
    status.gateways["sim"] = False
    first, notifier = monitor_for(store, gateway, status, clock)
    for second in (0, 301):
        clock.now = T0 + second
        await first.check()
    assert len(gateway.sent) == 1
    await notifier.close()

    # The service restarts: a new monitor, same database, the gateway still down.
    second, notifier = monitor_for(store, gateway, status, clock)
    for at in (400, 700, 1000):
        clock.now = T0 + at
        assert await second.check() == []
    assert len(gateway.sent) == 1
    clock.now = T0 + 301 + 3600
    assert kinds(await second.check()) == [("repeat", gateway_problem("sim"))]
    status.gateways["sim"] = True
    clock.now += 10
    assert kinds(await second.check()) == [("resolved", gateway_problem("sim"))]
    assert [row[1] for row in await rows(store)] == ["alert", "alert_repeat", "alert_resolved"]
    assert len(gateway.sent) == 3
    await notifier.close()

    # Another restart: nothing open any more, nothing to resolve again.
    third, notifier = monitor_for(store, gateway, status, clock)
    clock.now += 10
    assert await third.check() == []
    assert len(gateway.sent) == 3
    await notifier.close()


async def test_a_notice_claimed_before_a_crash_is_never_sent(store, gateway) -> None:
    """The key is written before sending: a crash between the two loses the notice rather than doubling it."""
    clock, status = Clock(), FakeStatus()
    status.ami = False
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO notifications (key, kind, body, created_at) VALUES (?, 'alert', 'x', ?)",
            (f"alert:ami_down:{int(T0) + 5}", T0 + 5),
        )
    monitor, notifier = monitor_for(store, gateway, status, clock)
    clock.now = T0 + 5
    await monitor.check()  # resumes the open episode that began at T0 + 5
    clock.now = T0 + 200
    assert await monitor.check() == []
    assert gateway.sent == []
    await notifier.close()


async def test_gateway_retry_and_rejection_are_recorded(store, gateway) -> None:
    clock, status = Clock(), FakeStatus()
    config = AlertsConfig(
        sms_to=("+15550102000", "+15550102001"), gateway="sim", sender="CallBuddy", ami_down_after_s=1
    )
    monitor, notifier = monitor_for(store, gateway, status, clock, config)
    gateway.script(
        [
            SendResult(SendStatus.RETRY, error="throttled"),
            SendResult(SendStatus.ACCEPTED, message_id="m1"),  # the first number, at its second try
            SendResult(SendStatus.REJECTED, error="21211"),  # the second number: no retry for a rejection
        ]
    )
    status.ami = False
    await monitor.check()
    clock.now += 2
    await monitor.check()
    assert [sms.to for sms in gateway.attempts] == ["+15550102000", "+15550102000", "+15550102001"]
    ((_, _, sent_at, error),) = await rows(store)
    assert sent_at == clock.now  # something went out
    assert error == "text to +155******01: 21211"
    await notifier.close()


async def test_without_destinations_alerts_are_only_logged_and_recorded(store, gateway, caplog) -> None:
    clock, status = Clock(), FakeStatus()
    monitor, notifier = monitor_for(store, gateway, status, clock, AlertsConfig(ami_down_after_s=1))
    status.ami = False
    with caplog.at_level(logging.WARNING):
        await monitor.check()
        clock.now += 2
        await monitor.check()
    assert gateway.attempts == []
    ((_, _, sent_at, error),) = await rows(store)
    assert sent_at is None and error == "not sent: no sms_to or webhook_url configured"
    assert any("Asterisk (AMI) not connected" in record.getMessage() for record in caplog.records)
    await notifier.close()


# -- webhooks -------------------------------------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, object]], dict[str, int]]]:
    received: list[dict[str, object]] = []
    answer = {"status": 200}

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        if answer["status"] in (301, 302):
            raise web.HTTPFound("http://elsewhere.example/steal")
        return web.Response(status=answer["status"], text="ok")

    async def elsewhere(request: web.Request) -> web.Response:
        raise AssertionError("a redirect was followed")

    app = web.Application()
    app.router.add_post("/hooks/T000/SECRETPATH", hook)
    app.router.add_post("/steal", elsewhere)
    runner = await start_web(app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{bound_port(runner)}/hooks/T000/SECRETPATH?token=SECRETQUERY"
    yield url, received, answer
    await runner.cleanup()


async def test_webhook_receives_the_alert_json(store, gateway, receiver, caplog) -> None:
    url, received, _ = receiver
    clock, status = Clock(), FakeStatus()
    config = AlertsConfig(webhook_url=url, ami_down_after_s=120)
    monitor, notifier = monitor_for(store, gateway, status, clock, config)
    status.ami = False
    with caplog.at_level(logging.DEBUG):
        await monitor.check()
        clock.now = T0 + 121
        await monitor.check()
        status.ami = True
        clock.now = T0 + 180
        await monitor.check()
    assert [body["kind"] for body in received] == ["alert", "resolved"]
    alert = received[0]
    assert {key: alert[key] for key in ("problem", "detail", "since", "service")} == {
        "problem": "ami_down",
        "detail": "connection refused",
        "since": "2026-11-18T11:06:40+00:00",
        "service": "pbx-1",
    }
    assert gateway.attempts == []  # no sms_to: no texts
    assert [row[2] for row in await rows(store)] == [T0 + 121, T0 + 180]
    ours = " ".join(r.getMessage() for r in caplog.records if r.name == "callbuddy_pbx.service.notify")
    assert "notice posted to http://127.0.0.1:" in ours and "SECRET" not in ours
    await notifier.close()


async def test_webhook_failures_are_recorded_without_the_url_secrets(store, gateway, receiver, caplog) -> None:
    url, received, answer = receiver
    notifier = Notifier({}, service="pbx-1")
    _OPEN.append(notifier)
    answer["status"] = 302
    with caplog.at_level(logging.DEBUG):
        redirected = await notifier.post(url, {"kind": "alert"})
        answer["status"] = 500
        failed = await notifier.post(url, {"kind": "alert"})
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = f"http://user:SECRETPASS@127.0.0.1:{probe.getsockname()[1]}/SECRETPATH?k=SECRETQUERY"
        unreachable = await notifier.post(closed, {"kind": "alert"})
    await notifier.close()
    assert redirected is not None and "HTTP 302 (a redirect, not followed)" in redirected
    assert failed is not None and failed.endswith("HTTP 500")
    assert unreachable is not None and unreachable.startswith("webhook http://127.0.0.1:")
    ours = " ".join(r.getMessage() for r in caplog.records if r.name == "callbuddy_pbx.service.notify")
    assert "webhook http://127.0.0.1:" in ours
    for text in (redirected, failed, unreachable, ours):
        assert "SECRET" not in text
    assert len(received) == 2


async def test_notification_log_lists_by_kind(store) -> None:
    log_ = NotificationLog(store)
    assert await log_.claim(Notice("alert:x:1", "alert", "a"), 10.0)
    assert not await log_.claim(Notice("alert:x:1", "alert", "a"), 11.0)
    assert await log_.claim(Notice("digest:B:2026-01-01", "digest", "d", business="B"), 12.0)
    assert [row.key for row in await log_.since(["alert"], 0.0)] == ["alert:x:1"]
    assert await log_.exists("digest:B:2026-01-01") and not await log_.exists("digest:B:2026-01-02")


class _Away:
    """A database that answers nothing (as PostgreSQL gone away): every read and write fails as an outage."""

    def execute(self, *args: object) -> object:
        raise sqlite3.OperationalError("unable to open database file")

    def transaction(self) -> object:
        raise sqlite3.OperationalError("unable to open database file")


async def test_the_database_away_is_alerted_unclaimed_while_the_owner_holds_on(
    store, gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner holding on through a database outage (role `holding`): the installer is told after the AMI-down
    delay although the notice cannot be recorded (the database is the thing that is away), and nothing else fails."""
    clock, status = Clock(), FakeStatus()
    holding = {"on": False}

    def current() -> HealthStatus:
        base = status()
        if not holding["on"]:
            return base
        return dataclasses.replace(base, role="holding", leadership_problem="lock connection: OperationalError: gone")

    monitor, notifier = monitor_for(store, gateway, current, clock)
    assert await monitor.check() == []
    with monkeypatch.context() as away:
        away.setattr(CallStore, "connection", property(lambda _: _Away()))
        away.setattr(store, "transaction", _Away().transaction)
        holding["on"] = True
        clock.now = T0 + 10
        assert await monitor.check() == []  # not yet: as long as an AMI link may be down unalerted
        clock.now = T0 + CONFIG.ami_down_after_s + 11
        assert kinds(await monitor.check()) == [("alert", DATABASE_AWAY)]
        (sms,) = gateway.sent
        assert "the database cannot be reached" in sms.text and "OperationalError" in sms.text
    holding["on"] = False
    clock.now = T0 + CONFIG.ami_down_after_s + 60
    assert kinds(await monitor.check()) == [("resolved", DATABASE_AWAY)]
    assert await rows(store) == [(f"alert:{DATABASE_AWAY}:{int(T0 + 10)}:resolved", "alert_resolved", clock.now, None)]
    await notifier.close()
