"""The HTTP gateways (Twilio-compatible, generic, Kannel's webhooks) and the web server's webhook routes.

Twilio is played by the local fake (callbuddy_pbx.sim.http_gateway); the generic gateway's provider by a small
aiohttp server in this file. Everything runs over real loopback HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from multidict import MultiDict

from callbuddy_pbx.config import GatewayConfig, WebConfig
from callbuddy_pbx.sim.http_gateway import FakeTwilioApi, sign
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState, InboundSms, OutgoingSms, SendStatus
from callbuddy_pbx.sms.http_common import HttpGateway
from callbuddy_pbx.sms.http_generic import GenericHttpGateway
from callbuddy_pbx.sms.http_kannel import KannelGateway
from callbuddy_pbx.sms.http_twilio import TwilioGateway, twilio_signature
from callbuddy_pbx.web.server import create_app, start_web
from tests.servers import free_port
from tests.waiting import wait_until

BUSINESS = "+15550001000"
CALLER = "+15551234567"
AUTH_TOKEN = "twilio-auth-token-9f8e7d6c5b4a"
WEBHOOK_TOKEN = "webhook-token-5e6f7a8b9c0d"
API_KEY = "Bearer provider-api-key-1a2b3c4d"


@dataclass
class Received:
    reports: list[DeliveryReport] = field(default_factory=list)
    inbound: list[InboundSms] = field(default_factory=list)

    async def on_report(self, report: DeliveryReport) -> None:
        self.reports.append(report)

    async def on_inbound(self, sms: InboundSms) -> None:
        self.inbound.append(sms)


@dataclass
class Served:
    base: str  # where the web server is, e.g. http://127.0.0.1:PORT
    received: Received
    client: aiohttp.ClientSession

    def webhook(self, gateway: str, kind: str) -> str:
        return f"{self.base}/webhooks/{gateway}/{kind}"


def web_config(port: int) -> WebConfig:
    return WebConfig(port=port, public_url=f"http://127.0.0.1:{port}", webhook_token=WEBHOOK_TOKEN)


@asynccontextmanager
async def serving(*gateways: HttpGateway, port: int) -> AsyncIterator[Served]:
    """The gateways started, behind the web server on `port`."""
    received = Received()
    for gateway in gateways:
        await gateway.start(received.on_report, received.on_inbound)
    runner = await start_web(create_app(webhook_gateways={g.name: g for g in gateways}), "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as client:
            yield Served(f"http://127.0.0.1:{port}", received, client)
    finally:
        for gateway in gateways:
            await gateway.close()
        await runner.cleanup()


def sms(text: str = "Sorry we missed your call", key: str = "1700000000.42", to: str = CALLER) -> OutgoingSms:
    return OutgoingSms(key, to, BUSINESS, text)


# -- Twilio -----------------------------------------------------------------------------------------------------------


@pytest.fixture
async def twilio_api() -> AsyncIterator[FakeTwilioApi]:
    async with FakeTwilioApi(auth_token=AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def port() -> int:
    return free_port()


def twilio_gateway(api: FakeTwilioApi, port: int, *, auth_token: str = AUTH_TOKEN, url: str = "") -> TwilioGateway:
    config = GatewayConfig(
        name="twilio", kind="twilio", url=url or api.url, account_sid=api.account_sid, auth_token=auth_token
    )
    return TwilioGateway(config, web_config(port), timeout_s=3.0)


async def test_twilio_accepts_a_text_with_its_sid(twilio_api: FakeTwilioApi, port: int) -> None:
    result = await sent_through(twilio_gateway(twilio_api, port))

    assert result.status is SendStatus.ACCEPTED
    assert result.message_id == twilio_api.messages[0].sid
    request = twilio_api.requests[0]
    assert request.authorized
    assert request.form == {
        "To": CALLER,
        "From": BUSINESS,
        "Body": "Sorry we missed your call",
        "StatusCallback": f"http://127.0.0.1:{port}/webhooks/twilio/status",
    }


async def sent_through(gateway: HttpGateway, message: OutgoingSms | None = None) -> Any:
    received = Received()
    await gateway.start(received.on_report, received.on_inbound)
    try:
        return await gateway.send(message or sms())
    finally:
        await gateway.close()


async def test_twilio_throttling_defers_for_the_pause_it_asks(twilio_api: FakeTwilioApi, port: int) -> None:
    twilio_api.fail_next(429, 20429, "Too Many Requests", retry_after="7")

    result = await sent_through(twilio_gateway(twilio_api, port))

    assert result.status is SendStatus.DEFERRED and result.throttled
    assert result.retry_after_s == 7.0
    assert "20429" in result.error
    assert twilio_api.messages == []


async def test_twilio_server_error_defers(twilio_api: FakeTwilioApi, port: int) -> None:
    twilio_api.fail_next(500, 20500, "Internal Server Error")

    result = await sent_through(twilio_gateway(twilio_api, port))

    assert result.status is SendStatus.DEFERRED and not result.throttled
    assert result.retry_after_s is None
    assert "HTTP 500" in result.error


async def test_twilio_invalid_number_is_rejected_with_twilios_code(twilio_api: FakeTwilioApi, port: int) -> None:
    result = await sent_through(twilio_gateway(twilio_api, port), sms(to="12"))

    assert result.status is SendStatus.REJECTED
    assert result.error.startswith("HTTP 400: 21211 ")


async def test_twilio_unreachable_defers(port: int) -> None:
    config = GatewayConfig(
        name="twilio", kind="twilio", url=f"http://127.0.0.1:{free_port()}", account_sid="AC1", auth_token=AUTH_TOKEN
    )

    result = await sent_through(TwilioGateway(config, web_config(port), timeout_s=2.0))

    assert result.status is SendStatus.DEFERRED  # no connection: the request cannot have left
    assert result.error.startswith("network error")


async def test_twilio_wrong_credentials_are_rejected(twilio_api: FakeTwilioApi, port: int) -> None:
    result = await sent_through(twilio_gateway(twilio_api, port, auth_token="wrong-token-123456"))

    assert result.status is SendStatus.REJECTED
    assert "20003" in result.error
    assert not twilio_api.requests[0].authorized


def test_twilio_signature_matches_twilios_published_examples() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = MultiDict(
        [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    )
    assert twilio_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


async def test_twilio_signed_status_callbacks_become_receipts(twilio_api: FakeTwilioApi, port: int) -> None:
    twilio_api.auto_statuses = ("sent", "delivered")
    gateway = twilio_gateway(twilio_api, port)
    async with serving(gateway, port=port) as served:
        result = await gateway.send(sms())
        await wait_until(lambda: len(served.received.reports) == 2)
        message = twilio_api.messages[0]
        answer = await twilio_api.send_status(message, "undelivered", error_code="30003")
        again = await twilio_api.send_status(message, "undelivered", error_code="30003")  # Twilio retried it

    assert (answer, again) == (204, 204)
    assert [(r.message_id, r.state) for r in served.received.reports] == [
        (result.message_id, DeliveryState.PENDING),
        (result.message_id, DeliveryState.DELIVERED),
        (result.message_id, DeliveryState.FAILED),
        (result.message_id, DeliveryState.FAILED),  # reported again: the outbox deduplicates
    ]
    failed = served.received.reports[2]
    assert failed.error_code == "30003"
    assert "undelivered" in failed.detail


async def test_twilio_unsigned_or_forged_callbacks_are_refused(twilio_api: FakeTwilioApi, port: int) -> None:
    async with serving(twilio_gateway(twilio_api, port), port=port) as served:
        url = served.webhook("twilio", "status")
        params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
        unsigned = await twilio_api.post_signed(url, params, signature="")
        forged = await twilio_api.post_signed(url, params, signature=sign("another-token", url, params))
        tampered = await twilio_api.post_signed(
            url, {**params, "MessageStatus": "failed"}, signature=sign(AUTH_TOKEN, url, params)
        )
        other_url = await twilio_api.post_signed(url, params, signature=sign(AUTH_TOKEN, url + "x", params))
        inbound = await twilio_api.send_inbound(
            served.webhook("twilio", "inbound"), sender=CALLER, to=BUSINESS, body="STOP", signature="bm9wZQ=="
        )

    assert (unsigned, forged, tampered, other_url, inbound) == (403, 403, 403, 403, 403)
    assert served.received.reports == [] and served.received.inbound == []


async def test_twilio_inbound_stop_reaches_on_inbound(twilio_api: FakeTwilioApi, port: int) -> None:
    async with serving(twilio_gateway(twilio_api, port), port=port) as served:
        url = served.webhook("twilio", "inbound")
        answer = await twilio_api.send_inbound(url, sender=CALLER, to=BUSINESS, body="STOP")
        async with served.client.get(f"{served.base}/healthz") as health:
            assert (health.status, await health.text()) == (200, "ok")

    assert answer == 200
    assert [(m.sender, m.to, m.text) for m in served.received.inbound] == [(CALLER, BUSINESS, "STOP")]


async def test_twilio_validates_against_the_public_url_behind_a_proxy(twilio_api: FakeTwilioApi, port: int) -> None:
    config = GatewayConfig(
        name="twilio", kind="twilio", url=twilio_api.url, account_sid=twilio_api.account_sid, auth_token=AUTH_TOKEN
    )
    public = "https://cb.example.com"
    gateway = TwilioGateway(config, WebConfig(public_url=public, webhook_token=WEBHOOK_TOKEN))
    async with serving(gateway, port=port) as served:
        params = {"MessageSid": "SM9", "MessageStatus": "delivered"}
        # Twilio signed what it called, the public URL; the proxy forwarded it to us on loopback.
        signed = sign(AUTH_TOKEN, f"{public}/webhooks/twilio/status", params)
        ok = await twilio_api.post_signed(served.webhook("twilio", "status"), params, signature=signed)
        with_port = sign(AUTH_TOKEN, f"{public}:443/webhooks/twilio/status", params)
        ok_with_port = await twilio_api.post_signed(served.webhook("twilio", "status"), params, signature=with_port)
        local = sign(AUTH_TOKEN, served.webhook("twilio", "status"), params)
        not_public = await twilio_api.post_signed(served.webhook("twilio", "status"), params, signature=local)

    assert (ok, ok_with_port, not_public) == (204, 204, 403)
    assert [r.message_id for r in served.received.reports] == ["SM9", "SM9"]


@pytest.mark.parametrize(
    ("params", "field_named"),
    [
        ({"MessageStatus": "delivered"}, "MessageSid"),
        ({"MessageSid": "SM1"}, "MessageStatus"),
        ({"MessageSid": "S" * 129, "MessageStatus": "delivered"}, "MessageSid"),
        ({"MessageSid": "SM1", "MessageStatus": "teleported"}, "MessageStatus"),
        ({"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": "x1"}, "ErrorCode"),
    ],
)
async def test_twilio_malformed_signed_callbacks_are_400_naming_the_field(
    twilio_api: FakeTwilioApi, port: int, params: dict[str, str], field_named: str
) -> None:
    async with serving(twilio_gateway(twilio_api, port), port=port) as served:
        url = served.webhook("twilio", "status")
        async with served.client.post(
            url, data=params, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)}
        ) as answer:
            status, text = answer.status, await answer.text()

    assert status == 400
    assert text.startswith(f"{field_named}: ")
    assert served.received.reports == []


async def test_twilio_inbound_missing_from_is_400(twilio_api: FakeTwilioApi, port: int) -> None:
    async with serving(twilio_gateway(twilio_api, port), port=port) as served:
        url = served.webhook("twilio", "inbound")
        params = {"To": BUSINESS, "Body": "STOP"}
        async with served.client.post(
            url, data=params, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url, params)}
        ) as answer:
            assert (answer.status, await answer.text()) == (400, "From: missing")


# -- generic ----------------------------------------------------------------------------------------------------------


@dataclass
class Provider:
    """A made-up SMS API: records requests, answers what the test scripted (default 200 with an id)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: list[web.Response] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append(
            {
                "method": request.method,
                "query": dict(request.query),
                "content_type": request.content_type,
                "body": raw.decode(),
                "authorization": request.headers.get("Authorization"),
            }
        )
        if self.answers:
            return self.answers.pop(0)
        return web.json_response({"messages": [{"id": f"msg-{len(self.requests)}", "status": "queued"}]})


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    provider = Provider()
    app = web.Application()
    app.router.add_route("*", "/send", provider.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    provider.url = f"http://127.0.0.1:{port}/send"
    try:
        yield provider
    finally:
        await runner.cleanup()


def generic_config(provider: Provider, **overrides: Any) -> GatewayConfig:
    settings: dict[str, Any] = {
        "name": "acme",
        "kind": "generic",
        "url": provider.url,
        "method": "POST",
        "body_format": "json",
        "body": (("to", "{to}"), ("from", "{sender}"), ("message", "{text}"), ("ref", "cb-{key}")),
        "headers": (("Authorization", API_KEY),),
        "message_id_path": "messages[0].id",
        "error_path": "error.message",
    }
    settings.update(overrides)
    return GatewayConfig(**settings)


TRICKY_TEXT = 'He said "hi" & left {to} at 100% \\ ok\nnew line'


async def test_generic_json_body_carries_the_text_exactly(provider: Provider, port: int) -> None:
    gateway = GenericHttpGateway(generic_config(provider), web_config(port))

    result = await sent_through(gateway, sms(TRICKY_TEXT))

    assert (result.status, result.message_id) == (SendStatus.ACCEPTED, "msg-1")
    request = provider.requests[0]
    assert request["content_type"] == "application/json"
    assert json.loads(request["body"]) == {
        "to": CALLER,
        "from": BUSINESS,
        "message": TRICKY_TEXT,
        "ref": "cb-1700000000.42",
    }
    assert request["authorization"] == API_KEY


async def test_generic_form_body_and_our_key_as_id_without_a_path(provider: Provider, port: int) -> None:
    config = generic_config(provider, body_format="form", message_id_path="")
    gateway = GenericHttpGateway(config, web_config(port))

    result = await sent_through(gateway, sms(TRICKY_TEXT))

    assert (result.status, result.message_id) == (SendStatus.ACCEPTED, "1700000000.42")
    request = provider.requests[0]
    assert request["content_type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request["body"]) == {
        "to": [CALLER],
        "from": [BUSINESS],
        "message": [TRICKY_TEXT],
        "ref": ["cb-1700000000.42"],
    }


async def test_generic_get_puts_the_fields_in_the_query(provider: Provider, port: int) -> None:
    gateway = GenericHttpGateway(generic_config(provider, method="GET"), web_config(port))

    result = await sent_through(gateway, sms(TRICKY_TEXT))

    assert result.accepted
    assert provider.requests[0]["query"] == {
        "to": CALLER,
        "from": BUSINESS,
        "message": TRICKY_TEXT,
        "ref": "cb-1700000000.42",
    }


async def test_generic_error_text_is_read_at_the_error_path(provider: Provider, port: int) -> None:
    provider.answers = [
        web.json_response({"error": {"code": 17, "message": "destination not allowed"}}, status=400),
        web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "12"}),
        web.Response(status=503, text="maintenance"),
    ]
    gateway = GenericHttpGateway(generic_config(provider), web_config(port))
    received = Received()
    await gateway.start(received.on_report, received.on_inbound)
    try:
        rejected = await gateway.send(sms())
        throttled = await gateway.send(sms())
        unavailable = await gateway.send(sms())
    finally:
        await gateway.close()

    assert (rejected.status, rejected.error) == (SendStatus.REJECTED, "HTTP 400: destination not allowed")
    assert (throttled.status, throttled.error, throttled.retry_after_s) == (
        SendStatus.DEFERRED,
        "HTTP 429: slow down",
        12,
    )
    assert throttled.throttled and not unavailable.throttled
    assert (unavailable.status, unavailable.error) == (SendStatus.DEFERRED, "HTTP 503: maintenance")


async def test_generic_answer_without_the_id_still_counts_as_accepted(provider: Provider, port: int) -> None:
    provider.answers = [web.json_response({"ok": True}, status=202)]
    gateway = GenericHttpGateway(generic_config(provider), web_config(port))

    result = await sent_through(gateway)

    assert (result.status, result.message_id) == (SendStatus.ACCEPTED, "1700000000.42")


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"body": (("text", "{message}"),)}, "body.text: unknown field {message}"),
        ({"body": (("text", "{text.__class__}"),)}, "body.text:"),
        ({"method": "DELETE"}, "method 'DELETE'"),
        ({"body_format": "xml"}, "body_format 'xml'"),
    ],
)
def test_generic_configuration_mistakes_are_named(overrides: dict[str, Any], words: str) -> None:
    config = generic_config(Provider(url="http://127.0.0.1:9/send"), **overrides)

    with pytest.raises(ValueError, match="acme") as raised:
        GenericHttpGateway(config, web_config(8080))

    assert words in str(raised.value)


async def test_generic_receipts_and_inbound_in_the_documented_shapes(provider: Provider, port: int) -> None:
    gateway = GenericHttpGateway(generic_config(provider), web_config(port))
    async with serving(gateway, port=port) as served:
        status_url = served.webhook("acme", "status")
        header = {"X-Webhook-Token": WEBHOOK_TOKEN}
        async with served.client.post(status_url, json={"id": "msg-1", "status": "DELIVRD"}, headers=header) as a:
            assert a.status == 200
        form = {"id": "msg-2", "status": "failed", "error": "absent subscriber"}
        async with served.client.post(f"{status_url}?token={WEBHOOK_TOKEN}", data=form) as a:
            assert a.status == 200
        bearer = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        query = {"id": "msg-3", "status": "expired"}
        async with served.client.get(status_url, params=query, headers=bearer) as a:
            assert a.status == 200
        long_text = "STOP " + "x" * 2000
        inbound = {"from": "(555) 123-4567", "to": BUSINESS, "text": long_text}
        async with served.client.post(served.webhook("acme", "inbound"), json=inbound, headers=header) as a:
            assert a.status == 200

    assert [(r.message_id, r.state, r.error_code) for r in served.received.reports] == [
        ("msg-1", DeliveryState.DELIVERED, None),
        ("msg-2", DeliveryState.FAILED, "absent subscriber"),
        ("msg-3", DeliveryState.EXPIRED, None),
    ]
    [text] = served.received.inbound
    assert (text.sender, text.to) == (CALLER, BUSINESS)  # national format normalised (default region US)
    assert text.text == long_text[:640]


@pytest.mark.parametrize(
    ("kind", "body", "answer"),
    [
        ("status", {"status": "delivered"}, "id: missing"),
        ("status", {"id": "x" * 129, "status": "delivered"}, "id: longer than 128 characters"),
        ("status", {"id": "m1", "status": "lost-in-space"}, "status: unknown status"),
        ("status", {"id": "m1", "status": ["delivered"]}, "status: expected a string or a number"),
        ("inbound", {"to": BUSINESS, "text": "hi"}, "from: missing"),
        ("inbound", {"from": "1" * 65, "to": BUSINESS, "text": "hi"}, "from: longer than 64 characters"),
        ("inbound", {"from": CALLER, "to": BUSINESS}, "text: missing"),
    ],
)
async def test_generic_malformed_webhooks_are_400_naming_the_field(
    provider: Provider, port: int, kind: str, body: dict[str, Any], answer: str
) -> None:
    gateway = GenericHttpGateway(generic_config(provider), web_config(port))
    async with serving(gateway, port=port) as served:
        url = served.webhook("acme", kind)
        async with served.client.post(url, json=body, headers={"X-Webhook-Token": WEBHOOK_TOKEN}) as response:
            status, text = response.status, await response.text()
        async with served.client.post(url, data="{not json", headers={"X-Webhook-Token": WEBHOOK_TOKEN}) as bad:
            bad_json = (bad.status, await bad.text())

    assert status == 400
    assert text.startswith(answer)
    assert bad_json[0] == 400
    assert served.received.reports == [] and served.received.inbound == []


async def test_webhooks_without_the_right_token_are_403(provider: Provider, port: int) -> None:
    generic = GenericHttpGateway(generic_config(provider), web_config(port))
    kannel = KannelGateway(kannel_config(), web_config(port))
    async with serving(generic, kannel, port=port) as served:
        answers = []
        body = {"id": "m1", "status": "delivered"}
        for headers in ({}, {"X-Webhook-Token": "wrong"}, {"Authorization": "Bearer wrong"}):
            async with served.client.post(served.webhook("acme", "status"), json=body, headers=headers) as a:
                answers.append(a.status)
        for query in ({}, {"token": "wrong"}, {"token": WEBHOOK_TOKEN[:-1]}):
            async with served.client.get(served.webhook("kannel", "status"), params={**query, **body}) as a:
                answers.append(a.status)
        async with served.client.get(served.webhook("nobody", "status")) as a:
            unknown = a.status

    assert answers == [403] * 6
    assert unknown == 404
    assert served.received.reports == []


# -- Kannel webhooks (the real Kannel is in test_kannel_gateway.py) ---------------------------------------------------


def kannel_config() -> GatewayConfig:
    return GatewayConfig(
        name="kannel", kind="kannel", url="http://127.0.0.1:9/cgi-bin/sendsms", username="cb", password="kannel-pw-77"
    )


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ({"status": "1"}, "id: missing"),
        ({"id": "k1"}, "status: missing"),
        ({"id": "k1", "status": "3"}, "status: expected a Kannel DLR type"),
        ({"id": "k" * 129, "status": "1"}, "id: longer than 128 characters"),
    ],
)
async def test_kannel_malformed_receipts_are_400_naming_the_field(
    port: int, query: dict[str, str], answer: str
) -> None:
    async with serving(KannelGateway(kannel_config(), web_config(port)), port=port) as served:
        params = {"token": WEBHOOK_TOKEN, **query}
        async with served.client.get(served.webhook("kannel", "status"), params=params) as response:
            status, text = response.status, await response.text()

    assert (status, text[: len(answer)]) == (400, answer)
    assert served.received.reports == []


async def test_kannel_receipt_types_map_to_states(port: int) -> None:
    async with serving(KannelGateway(kannel_config(), web_config(port)), port=port) as served:
        for code, answer in (("8", "ACK/"), ("16", "NACK/0x0000000b/Invalid Destination Address"), ("2", "")):
            params = {"token": WEBHOOK_TOKEN, "id": "call-7", "status": code, "answer": answer}
            async with served.client.get(served.webhook("kannel", "status"), params=params) as response:
                assert response.status == 200
        smpp = "id:0123 sub:001 dlvrd:000 submit date:2401011200 done date:2401011201 stat:UNDELIV err:034 text:Hi"
        params = {"token": WEBHOOK_TOKEN, "id": "call-8", "status": "2", "answer": smpp}
        async with served.client.get(served.webhook("kannel", "status"), params=params) as response:
            assert response.status == 200

    assert [(r.message_id, r.state, r.error_code) for r in served.received.reports] == [
        ("call-7", DeliveryState.PENDING, None),
        ("call-7", DeliveryState.FAILED, "16"),
        ("call-7", DeliveryState.FAILED, "2"),
        ("call-8", DeliveryState.FAILED, "034"),
    ]
    assert served.received.reports[1].detail == "smsc reject: NACK/0x0000000b/Invalid Destination Address"


# -- secrets and numbers stay out of logs -----------------------------------------------------------------------------


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


async def test_credentials_and_numbers_never_reach_logs_or_errors(
    all_logs: pytest.LogCaptureFixture, twilio_api: FakeTwilioApi, provider: Provider, port: int
) -> None:
    twilio_api.auto_statuses = ("delivered",)
    twilio = twilio_gateway(twilio_api, port)
    provider.answers = [
        web.json_response({"error": {"message": f"bad key {API_KEY} for {CALLER}"}}, status=401),
        web.Response(status=500, text=f"upstream said Authorization: {API_KEY}"),
    ]
    generic = GenericHttpGateway(generic_config(provider), web_config(port))
    kannel = KannelGateway(kannel_config(), web_config(port), timeout_s=1.0)  # nothing listens: network error
    results = []
    async with serving(twilio, generic, kannel, port=port) as served:
        twilio_api.fail_next(429, 20429, "Too Many Requests", retry_after="1")
        results.append(await twilio.send(sms()))
        results.append(await twilio.send(sms()))
        await wait_until(lambda: bool(served.received.reports))
        results.append(await twilio.send(sms(to="+1555")))  # Twilio rejects it, quoting the number
        results.append(await generic.send(sms()))
        results.append(await generic.send(sms()))
        results.append(await kannel.send(sms()))
        await twilio_api.send_inbound(served.webhook("twilio", "inbound"), sender=CALLER, to=BUSINESS, body="STOP")
        await twilio_api.send_inbound(
            served.webhook("twilio", "inbound"), sender=CALLER, to=BUSINESS, body="x", signature="Zm9yZ2Vk"
        )
        kannel_query = {"token": WEBHOOK_TOKEN, "from": CALLER, "to": BUSINESS, "text": "STOP"}
        async with served.client.get(served.webhook("kannel", "inbound"), params=kannel_query) as response:
            assert response.status == 200
        async with served.client.get(served.webhook("kannel", "status"), params={"token": WEBHOOK_TOKEN}) as r:
            assert r.status == 400

    assert [r.status for r in results] == [
        SendStatus.DEFERRED,
        SendStatus.ACCEPTED,
        SendStatus.REJECTED,
        SendStatus.REJECTED,
        SendStatus.DEFERRED,
        SendStatus.DEFERRED,
    ]
    assert len(served.received.inbound) == 2
    errors = " ".join(r.error or "" for r in results)
    logs = all_logs.text
    assert "***" in errors  # the provider's echo of the API key was scrubbed
    for secret in (AUTH_TOKEN, WEBHOOK_TOKEN, "provider-api-key-1a2b3c4d", "kannel-pw-77", twilio_api.auth_token):
        assert secret not in logs
        assert secret not in errors
    assert CALLER not in logs and CALLER not in errors
    assert "+155******67" in logs  # numbers appear masked
    assert "/webhooks/kannel/inbound" in logs  # the access log was on, without its query string
