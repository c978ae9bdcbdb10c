"""Webhooks whose bytes cannot be read as what they claim, through the real web server: a body in a charset Python
has no codec for, text that is not valid Unicode (lone surrogates), numbers written with digits other than 0-9,
and requests aiohttp itself cannot parse. Each is a 4xx naming the problem, nothing of it is stored, nothing is
logged at ERROR or with a traceback, and a well-formed webhook right after is still accepted."""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.http_exceptions import ContentEncodingError

from callbuddy_pbx.config import GatewayConfig, WebConfig
from callbuddy_pbx.service.logs import setup_logging
from callbuddy_pbx.sms.http_common import HttpGateway
from callbuddy_pbx.sms.http_generic import GenericHttpGateway
from callbuddy_pbx.sms.http_kannel import KannelGateway
from callbuddy_pbx.sms.http_twilio import TwilioGateway, twilio_signature
from callbuddy_pbx.web.server import create_app, start_web
from tests.servers import free_port
from tests.test_fuzz_edges import Stored

WEBHOOK_TOKEN = "webhook-token-5e6f7a8b9c0d"
TWILIO_TOKEN = "twilio-auth-token-9f8e7d6c5b4a"
PUBLIC_URL = "https://pbx.example.test"
FORM = "application/x-www-form-urlencoded"
TOKEN = {"X-Webhook-Token": WEBHOOK_TOKEN}
TWILIO_STATUS = {"MessageSid": "SM1", "MessageStatus": "delivered"}
ACME_INBOUND = {"from": "+15551234567", "to": "+15550001000", "text": "hi", "id": "a1"}


@dataclass
class Served:
    """Twilio, Kannel and a generic gateway ("acme") behind one real web server; what they handed on, stored in
    SQLite as the service stores receipts and replies (text SQLite cannot take fails here as it would there)."""

    base: str
    client: aiohttp.ClientSession
    public_url: str  # what Twilio signs: the configured one, else the URL the request reached
    stored: Stored = field(default_factory=Stored)  # what the gateways handed on, in SQLite as the service keeps it

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        return self.stored.rows

    def url(self, gateway: str, kind: str) -> str:
        return f"{self.base}/webhooks/{gateway}/{kind}"

    async def post(self, gateway: str, kind: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with self.client.post(self.url(gateway, kind), data=body, headers=headers) as answer:
            return answer.status, await answer.text()

    async def still_accepts_well_formed_webhooks(self) -> None:
        """A signed Twilio receipt, a Kannel receipt and a generic inbound text: each 2xx and stored once."""
        before = len(self.rows)
        signature = twilio_signature(TWILIO_TOKEN, f"{self.public_url}/webhooks/twilio/status", TWILIO_STATUS)
        headers = {"Content-Type": FORM, "X-Twilio-Signature": signature}
        twilio = await self.post("twilio", "status", urlencode(TWILIO_STATUS).encode(), headers)
        query = {"token": WEBHOOK_TOKEN, "id": "k1", "status": "1"}
        async with self.client.get(self.url("kannel", "status"), params=query) as answer:
            kannel = answer.status
        acme = await self.post("acme", "inbound", json.dumps(ACME_INBOUND).encode(), {**TOKEN, **JSON_TYPE})
        assert (twilio[0], kannel, acme[0]) == (204, 200, 200)
        assert [row[:3] for row in self.rows[before:]] == [
            ("twilio", "status", "SM1"),
            ("kannel", "status", "k1"),
            ("acme", "inbound", "+15551234567"),
        ]


JSON_TYPE = {"Content-Type": "application/json"}


@asynccontextmanager
async def served(public_url: str = PUBLIC_URL) -> AsyncIterator[Served]:
    port = free_port()
    web = WebConfig(port=port, public_url=public_url, webhook_token=WEBHOOK_TOKEN)
    nowhere = "http://127.0.0.1:9"
    gateways: list[HttpGateway] = [
        TwilioGateway(GatewayConfig("twilio", "twilio", url=nowhere, account_sid="AC1", auth_token=TWILIO_TOKEN), web),
        KannelGateway(GatewayConfig("kannel", "kannel", url=nowhere, username="u", password="kannel-pass-77"), web),
        GenericHttpGateway(GatewayConfig("acme", "generic", url=nowhere, body=(("to", "{to}"),)), web),
    ]
    runner = await start_web(create_app(webhook_gateways={g.name: g for g in gateways}), "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as client:
            base = f"http://127.0.0.1:{port}"
            server = Served(base, client, public_url or base)
            for gateway in gateways:
                await gateway.start(
                    partial(server.stored.on_report, gateway.name), partial(server.stored.on_inbound, gateway.name)
                )
            yield server
    finally:
        for gateway in gateways:
            await gateway.close()
        await runner.cleanup()


@pytest.fixture
def calm_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record, then: nothing at ERROR, no traceback, every message one line."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    bad = [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info or record.exc_text or "\n" in record.getMessage()
    ]
    assert not bad, bad


# -- 1. a body that cannot be decoded -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gateway", "kind", "headers", "body", "answer"),
    [
        # Twilio: the body is read before the signature is checked, so no credential is needed to reach this.
        ("twilio", "status", {"Content-Type": f"{FORM}; charset=nope-9", "X-Twilio-Signature": "c2ln"},
         urlencode(TWILIO_STATUS).encode(), "body: unknown charset nope-9"),
        ("twilio", "inbound", {"Content-Type": "application/json; charset=x9", "X-Twilio-Signature": "c2ln"},
         b'{"From": "+15551234567"}', "body: unknown charset x9"),
        ("acme", "inbound", {**TOKEN, "Content-Type": "application/json; charset=x9"},
         json.dumps(ACME_INBOUND).encode(), "body: unknown charset x9"),
        ("acme", "status", {**TOKEN, "Content-Type": f"{FORM}; charset=base64"},  # a codec, but not of text
         b"id=a1&status=delivered", "body: unknown charset base64"),
        ("acme", "inbound", {**TOKEN, "Content-Type": "text/plain; charset=nope-9"},  # whatever the type
         b"hi", "body: unknown charset nope-9"),
        ("acme", "inbound", {**TOKEN, "Content-Type": "application/json; charset=utf-16"},  # odd length
         json.dumps(ACME_INBOUND).encode() + b" ", "body: not valid utf-16 text"),
        ("acme", "inbound", {**TOKEN, "Content-Type": FORM},
         b"from=\xff\xfe&to=%2B15550001000&text=hi", "body: not valid utf-8 text"),
    ],
)  # fmt: skip
async def test_a_body_that_cannot_be_decoded_is_400_naming_the_problem(
    calm_logs: pytest.LogCaptureFixture, gateway: str, kind: str, headers: dict[str, str], body: bytes, answer: str
) -> None:
    async with served() as server:
        assert await server.post(gateway, kind, body, headers) == (400, answer)
        assert server.rows == []
        await server.still_accepts_well_formed_webhooks()


# -- 2. text that is not valid Unicode --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gateway", "kind", "headers", "fields", "answer"),
    [
        # Any signature: the check comes before the signature is computed from the fields (it would raise).
        ("twilio", "inbound", {"X-Twilio-Signature": "c2lnbmF0dXJl"},
         {"From": "\ud800", "To": "+15550001000", "Body": "hi"}, "From: not valid Unicode text"),
        ("twilio", "status", {"X-Twilio-Signature": "c2lnbmF0dXJl"},
         {"MessageSid": "SM1", "MessageStatus": "delivered", "ErrorCode": "x\udfff"}, "ErrorCode: not valid Unicode"),
        ("acme", "status", TOKEN, {"id": "\ud800", "status": "delivered"}, "id: not valid Unicode text"),
        ("acme", "inbound", TOKEN, {**ACME_INBOUND, "text": "hi \ud83d"}, "text: not valid Unicode text"),
        ("acme", "inbound", TOKEN, {**ACME_INBOUND, "x\ud800": "1"}, "x\\ud800: not valid Unicode text"),  # the name
    ],
)  # fmt: skip
async def test_a_field_that_is_not_valid_unicode_is_400_naming_the_field(
    calm_logs: pytest.LogCaptureFixture,
    gateway: str,
    kind: str,
    headers: dict[str, str],
    fields: dict[str, str],
    answer: str,
) -> None:
    body = json.dumps(fields).encode("ascii")  # the surrogates as JSON escapes: "\ud800"
    async with served() as server:
        status, text = await server.post(gateway, kind, body, {**headers, **JSON_TYPE})
        assert (status, text[: len(answer)]) == (400, answer)
        assert server.rows == []
        await server.still_accepts_well_formed_webhooks()
    assert not any("\ud800" in record.getMessage() for record in calm_logs.records)


async def raw_request(server: Served, request: bytes) -> bytes:
    """`request` as given, byte for byte (aiohttp's client would not send bytes that are not UTF-8); the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", int(server.base.rsplit(":", 1)[1]))
    writer.write(request)
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


@pytest.mark.parametrize("host", [b"\xff", b"pbx\xed\xa0\x80.test", b"pbx.test:99999"])
async def test_a_host_header_no_url_can_hold_is_400_for_twilio_without_a_public_url(
    calm_logs: pytest.LogCaptureFixture, host: bytes
) -> None:
    """Without web.public_url, Twilio's signature is checked against the URL built from the Host header."""
    async with served(public_url="") as server:
        answer = await raw_request(
            server,
            b"POST /webhooks/twilio/status HTTP/1.1\r\nHost: " + host + b"\r\nX-Twilio-Signature: c2ln\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=b",
        )
        assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b"Host: not a host name a URL can hold")
        assert server.rows == []
        await server.still_accepts_well_formed_webhooks()


async def test_a_token_header_that_is_not_utf8_is_403(calm_logs: pytest.LogCaptureFixture) -> None:
    """aiohttp reads header bytes that are not UTF-8 as surrogates: the token comparison must not choke on them."""
    async with served() as server:
        answer = await raw_request(
            server,
            b"POST /webhooks/acme/status HTTP/1.1\r\nHost: x\r\nX-Webhook-Token: \xff\xfe\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        assert answer.startswith(b"HTTP/1.1 403 ") and answer.endswith(b"missing or wrong token")
        assert server.rows == []
        await server.still_accepts_well_formed_webhooks()


# -- 3. numbers: digits 0-9 only --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["²", "١", "٣", "1\u200b", "+1", " 1 x", "0001", "1" * 5])
async def test_a_kannel_dlr_type_in_other_digits_is_400(calm_logs: pytest.LogCaptureFixture, code: str) -> None:
    """Superscript two passes str.isdigit() but int() refuses it (a 500 before); int() reads the Arabic-Indic one
    (U+0661) as 1 (a false "delivered" before). Only 0-9, at most two of them."""
    async with served() as server:
        query = {"token": WEBHOOK_TOKEN, "id": "k9", "status": code}
        async with server.client.get(server.url("kannel", "status"), params=query) as answer:
            status, text = answer.status, await answer.text()
        assert (status, text) == (400, "status: expected a Kannel DLR type (1, 2, 4, 8 or 16)")
        assert server.rows == []
        await server.still_accepts_well_formed_webhooks()


@pytest.mark.parametrize("code", ["²", "٣٣", "3000７"])
async def test_a_twilio_error_code_in_other_digits_is_400(calm_logs: pytest.LogCaptureFixture, code: str) -> None:
    fields = {"MessageSid": "SM7", "MessageStatus": "failed", "ErrorCode": code}
    url = f"{PUBLIC_URL}/webhooks/twilio/status"
    headers = {"Content-Type": FORM, "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, fields)}
    async with served() as server:
        status, text = await server.post("twilio", "status", urlencode(fields).encode(), headers)
        assert (status, text) == (400, "ErrorCode: expected a number (1 to 16 digits 0-9)")
        assert server.rows == []
        await server.still_accepts_well_formed_webhooks()


# -- 4. requests aiohttp cannot parse: one warning line each ---------------------------------------------------------


def deflate_cut_short() -> bytes:
    whole = zlib.compress(json.dumps(ACME_INBOUND).encode())
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    ("headers", "body", "aiohttp_problem"),
    [
        ({"Content-Encoding": "br"}, b"\x8b\x02\x80hello\x03", "ContentEncodingError"),
        ({"Content-Encoding": "zstd"}, b"(\xb5/\xfd\x00Xhello", "ContentEncodingError"),
        ({"Content-Encoding": "deflate"}, deflate_cut_short(), "ContentEncodingError"),
    ],
)
async def test_a_body_aiohttp_cannot_decompress_is_400_and_one_warning_line(
    calm_logs: pytest.LogCaptureFixture, headers: dict[str, str], body: bytes, aiohttp_problem: str
) -> None:
    async with served() as server:
        status, _ = await server.post("acme", "inbound", body, {**TOKEN, **JSON_TYPE, **headers})
        assert status == 400
        assert server.rows == []
        await server.still_accepts_well_formed_webhooks()
    refused = [r for r in calm_logs.records if r.name.startswith("aiohttp") and r.levelno == logging.WARNING]
    if refused:  # aiohttp refused it itself (the codec is not installed, the stream ended early)
        assert f"400 {aiohttp_problem}" in refused[0].getMessage()
    else:  # aiohttp had the codec and handed the undecodable body to the webhook route
        assert any("could not be decoded" in r.getMessage() or "refused (400)" in r.getMessage()
                   for r in calm_logs.records)  # fmt: skip


async def test_a_request_line_over_8190_bytes_is_400_and_one_warning_line_without_the_token(
    calm_logs: pytest.LogCaptureFixture,
) -> None:
    async with served() as server:
        url = f"{server.url('acme', 'inbound')}?token={WEBHOOK_TOKEN}&text={'x' * 9000}"
        async with server.client.post(url, data=b"{}", headers=JSON_TYPE) as answer:
            status, text = answer.status, await answer.text()
        assert (status, text.startswith("Got more than 8190 bytes")) == (400, True)
        assert server.rows == []
        await server.still_accepts_well_formed_webhooks()
    (line,) = [r.getMessage() for r in calm_logs.records if r.name.startswith("aiohttp")]
    assert "400 LineTooLong: Got more than 8190 bytes when reading" in line
    assert WEBHOOK_TOKEN not in line and "xxxx" not in line  # nothing the client sent is quoted


def test_other_aiohttp_server_errors_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Only the client's fault is quieted: a failure of the server itself stays an ERROR with its traceback."""
    create_app(webhook_gateways={})
    server_log = logging.getLogger("aiohttp.server")
    with caplog.at_level(logging.DEBUG):
        try:
            raise RuntimeError("a bug of ours")
        except RuntimeError:
            server_log.exception("Unhandled exception")
        server_log.error("Error handling request from %s", "127.0.0.1", exc_info=ContentEncodingError("deflate"))
    bug, bad_request = caplog.records
    assert (bug.levelno, bug.exc_info is not None) == (logging.ERROR, True)
    assert (bad_request.levelno, bad_request.exc_info, bad_request.getMessage()) == (
        logging.WARNING,
        None,
        "Error handling request from 127.0.0.1: 400 ContentEncodingError: deflate",
    )


def test_the_service_log_shows_a_bad_request_as_one_warning_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The `run` command's set-up (setup_logging), on its own: the same record is one WARNING line on stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        problem = ContentEncodingError("Can not decode content-encoding: brotli (br). Please install `Brotli`")
        logging.getLogger("aiohttp.server").error("Error handling request from %s", "192.0.2.1", exc_info=problem)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert "WARNING aiohttp.server: Error handling request from 192.0.2.1: 400 ContentEncodingError: " in lines[0]
    assert lines[0].endswith("Please install `Brotli`")
