"""KannelGateway against a real Kannel 1.4.5 (bearerbox + smsbox + fakesmsc) on loopback."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState, InboundSms, OutgoingSms, SendStatus
from callbuddy_pbx.sms.http_kannel import KannelGateway
from callbuddy_pbx.web.server import create_app, start_web
from tests.kannel import KannelHarness, kannel_fixture  # noqa: F401 (provides the `kannel` fixture)
from tests.waiting import wait_until

BUSINESS = "+15550001000"
CALLER = "+15551234567"


@dataclass
class Received:
    reports: list[DeliveryReport] = field(default_factory=list)
    inbound: list[InboundSms] = field(default_factory=list)

    async def on_report(self, report: DeliveryReport) -> None:
        self.reports.append(report)

    async def on_inbound(self, sms: InboundSms) -> None:
        self.inbound.append(sms)


@dataclass
class Running:
    gateway: KannelGateway
    received: Received


@pytest.fixture
async def running(kannel: KannelHarness) -> AsyncIterator[Running]:
    gateway = KannelGateway(kannel.gateway_config(), kannel.web, timeout_s=5.0)
    received = Received()
    await gateway.start(received.on_report, received.on_inbound)
    runner = await start_web(create_app(webhook_gateways={gateway.name: gateway}), "127.0.0.1", kannel.web_port)
    try:
        yield Running(gateway, received)
    finally:
        await gateway.close()
        await runner.cleanup()


def states_for(received: Received, key: str) -> list[DeliveryState]:
    return [report.state for report in received.reports if report.message_id == key]


async def test_a_text_is_accepted_and_its_receipt_says_delivered(kannel: KannelHarness, running: Running) -> None:
    key = "1700000000.42"
    text = "Hi, this is Acme. Sorry we missed your call!"

    result = await running.gateway.send(OutgoingSms(key, CALLER, BUSINESS, text))

    assert result.status is SendStatus.ACCEPTED
    assert result.message_id == key  # Kannel gives no id: our key travels in the dlr-url
    await wait_until(lambda: DeliveryState.DELIVERED in states_for(running.received, key))
    assert states_for(running.received, key)[0] is DeliveryState.PENDING  # the SMSC's ack came first (type 8)
    delivered = next(r for r in running.received.reports if r.state is DeliveryState.DELIVERED)
    assert delivered.error_code is None
    assert (BUSINESS, CALLER, "text", text) in kannel.mt_messages()


async def test_a_key_with_percent_signs_and_accents_comes_back_unchanged(running: Running) -> None:
    key = "optout:+15551234567 %d 100% é"  # %d would be a Kannel escape code if not written %%d

    result = await running.gateway.send(OutgoingSms(key, CALLER, BUSINESS, "You will get no more texts."))

    assert result.accepted
    await wait_until(lambda: DeliveryState.DELIVERED in states_for(running.received, key))


async def test_a_text_outside_gsm7_goes_out_as_ucs2(kannel: KannelHarness, running: Running) -> None:
    text = "Désolé, on a manqué votre appel 📞 — Ждём вас"

    result = await running.gateway.send(OutgoingSms("call-ucs2", CALLER, BUSINESS, text))

    assert result.accepted
    await wait_until(lambda: any(kind == "ucs-2" for _, _, kind, _ in kannel.mt_messages()))
    data = next(data for _, _, kind, data in kannel.mt_messages() if kind == "ucs-2")
    assert urllib.parse.unquote_to_bytes(data.replace("+", " ")).decode("utf-16-be") == text


async def test_a_wrong_password_is_rejected_without_showing_it(
    kannel: KannelHarness, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-password-123"
    gateway = KannelGateway(kannel.gateway_config(password=wrong), kannel.web, timeout_s=5.0)
    received = Received()
    await gateway.start(received.on_report, received.on_inbound)
    try:
        result = await gateway.send(OutgoingSms("call-1", CALLER, BUSINESS, "hello"))
    finally:
        await gateway.close()

    assert result.status is SendStatus.REJECTED
    assert result.error is not None and "403" in result.error
    assert wrong not in result.error and wrong not in caplog.text


async def test_an_inbound_stop_reaches_on_inbound(kannel: KannelHarness, running: Running) -> None:
    await kannel.inject_mo(CALLER, BUSINESS, "STOP")

    await wait_until(lambda: bool(running.received.inbound))
    sms = running.received.inbound[0]
    assert (sms.sender, sms.to, sms.text) == (CALLER, BUSINESS, "STOP")
    assert abs(sms.at - time.time()) < 30


async def test_an_inbound_ucs2_text_is_decoded(kannel: KannelHarness, running: Running) -> None:
    text = "Arrêt  merci ✋"  # two spaces kept: the raw text (%b), not Kannel's word list (%a)

    await kannel.inject_mo(CALLER, BUSINESS, text, ucs2=True)

    await wait_until(lambda: bool(running.received.inbound))
    assert running.received.inbound[0].text == text
