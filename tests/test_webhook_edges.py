"""Webhooks under hostile input: too large (on the wire or once decompressed) is 413, garbage is 400, a stranger
is 403 before anything of the body is parsed or logged; never a 500, never a traceback."""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from callbuddy_pbx.config import GatewayConfig, WebConfig
from callbuddy_pbx.sms.gateway import DeliveryReport, InboundSms
from callbuddy_pbx.sms.http_generic import GenericHttpGateway
from callbuddy_pbx.web.server import MAX_BODY_BYTES, create_app, start_web
from tests.servers import free_port

TOKEN = "webhook-token-5e6f7a8b9c0d"
GOOD = {"X-Webhook-Token": TOKEN}


@asynccontextmanager
async def generic_webhooks() -> AsyncIterator[tuple[str, list[object], aiohttp.ClientSession]]:
    """A generic gateway behind the real web server; yields its inbound URL, what reached the service, a client."""
    port = free_port()
    config = GatewayConfig(name="acme", kind="generic", url="http://127.0.0.1:9/send", body=(("to", "{to}"),))
    gateway = GenericHttpGateway(config, WebConfig(port=port, webhook_token=TOKEN))
    reached: list[object] = []

    async def on_report(report: DeliveryReport) -> None:
        reached.append(report)

    async def on_inbound(sms: InboundSms) -> None:
        reached.append(sms)

    await gateway.start(on_report, on_inbound)
    runner = await start_web(create_app(webhook_gateways={"acme": gateway}), "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as client:
            yield f"http://127.0.0.1:{port}/webhooks/acme/inbound", reached, client
    finally:
        await gateway.close()
        await runner.cleanup()


def inbound(padding: int = 0) -> bytes:
    return json.dumps({"from": "+15551234567", "to": "+15550001000", "text": "hi" + " " * padding}).encode()


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    bad = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]
    assert not bad, bad


async def chunks(data: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize("size", [70 * 1024, 10 * 1024 * 1024])
async def test_a_body_over_the_limit_is_413(size: int) -> None:
    async with generic_webhooks() as (url, reached, client):
        headers = {**GOOD, "Content-Type": "application/json"}
        async with client.post(url, data=io.BytesIO(inbound(size)), headers=headers) as answer:  # with its length
            status = answer.status
        async with client.post(url, data=inbound(), headers=headers) as normal:
            normal_status = normal.status
    assert status == 413
    assert normal_status == 200 and len(reached) == 1  # the service goes on with the next, normal one


@pytest.mark.usefixtures("no_errors_logged")
async def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit() -> None:
    async with generic_webhooks() as (url, reached, client):
        headers = {**GOOD, "Content-Type": "application/json"}
        async with client.post(url, data=chunks(inbound(MAX_BODY_BYTES * 4)), headers=headers) as answer:
            status = answer.status
    assert status == 413 and reached == []


@pytest.mark.usefixtures("no_errors_logged")
async def test_a_gzip_bomb_is_413_once_decompressed_past_the_limit() -> None:
    bomb = gzip.compress(inbound(20 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < MAX_BODY_BYTES  # small on the wire: only the decompressed size can refuse it
    async with generic_webhooks() as (url, reached, client):
        headers = {**GOOD, "Content-Type": "application/json", "Content-Encoding": "gzip"}
        async with client.post(url, data=bomb, headers=headers) as answer:
            status = answer.status
        async with client.post(url, data=gzip.compress(inbound()), headers=headers) as small:
            small_status = small.status
    assert status == 413
    assert small_status == 200 and len(reached) == 1  # gzip itself is fine


@pytest.mark.usefixtures("no_errors_logged")
async def test_a_body_that_does_not_decompress_is_400() -> None:
    async with generic_webhooks() as (url, reached, client):
        headers = {**GOOD, "Content-Type": "application/json", "Content-Encoding": "gzip"}
        async with client.post(url, data=b"\x1f\x8b\x08\x00not gzip at all", headers=headers) as answer:
            status = answer.status
    assert status == 400 and reached == []


@pytest.mark.usefixtures("no_errors_logged")
async def test_json_nested_thousands_deep_is_400() -> None:
    async with generic_webhooks() as (url, reached, client):
        body = b"[" * 30_000 + b"]" * 30_000
        async with client.post(url, data=body, headers={**GOOD, "Content-Type": "application/json"}) as answer:
            status, text = answer.status, await answer.text()
    assert (status, text) == (400, "body: not valid JSON") and reached == []


async def test_a_stranger_is_refused_before_the_body_is_parsed_or_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forged = {"x\nERROR forged line": [1], "from": "nonsense"}  # a list: a problem worth logging, if parsed
    async with generic_webhooks() as (url, reached, client), client.post(url, json=forged) as answer:
        status, text = answer.status, await answer.text()
    assert (status, text) == (403, "missing or wrong token") and reached == []
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "forged" not in logged and "nonsense" not in logged
