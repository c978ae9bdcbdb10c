"""A Kannel gateway: texts go out through smsbox's sendsms HTTP interface; receipts come back to the dlr-url we
give with each text, inbound texts through an sms-service get-url (see `inbound_get_url`).

Sending: GET {url}?username&password&from&to&text&charset=UTF-8 (plus coding=2, UCS-2, when the text is not
GSM-7) with dlr-mask=31 and a dlr-url. Kannel answers `0: Accepted for delivery` or `3: Queued for later delivery`
(HTTP 202): ACCEPTED. Kannel gives no message id, so our own key is the message id and travels in the dlr-url.
403 (wrong user or password) and other 4xx are REJECTED; 5xx and network errors RETRY.

Kannel fills escape codes in the dlr-url and get-url (`%d` the DLR type, `%A` the SMSC's answer, `%p` the
sender, `%b` the raw text, `%c` its coding, `%C` its charset, `%I` Kannel's id of the message, the same in each
retry of one get-url) and leaves a literal `%%` as `%`, so every `%` of our own values is written `%%`.
Receipts (DLR types: 1 delivered, 2 failed, 4 buffered, 8 SMSC ack, 16 SMSC reject) and inbound texts are
authenticated by the webhook token in their URL. The sms-service must not reply to the phone itself
(`max-messages = 0`): STOP and HELP are answered by the service, through the outbox.
"""

from __future__ import annotations

import codecs
import logging
import re
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp
from aiohttp import web
from yarl import URL

from callbuddy_pbx.config import GatewayConfig, WebConfig
from callbuddy_pbx.message_text import encoding_of
from callbuddy_pbx.phone import mask
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState, InboundSms, OutgoingSms, SendResult, SendStatus
from callbuddy_pbx.sms.http_common import (
    DEFAULT_TIMEOUT_S,
    MAX_DETAIL_CHARS,
    MAX_TEXT_CHARS,
    HttpGateway,
    ascii_int,
    bad_field,
    callback_url,
    checked_params,
    checked_text,
    classify,
    forbidden,
    message_text,
    network_result,
    optional,
    phone_field,
    read_answer,
    required,
    short,
    tokens_match,
)

log = logging.getLogger(__name__)

DLR_MASK_ALL = 31  # delivered + failed + buffered + SMSC ack + SMSC reject
ACCEPTED_ANSWERS = ("0:", "3:")  # "0: Accepted for delivery", "3: Queued for later delivery"

# DLR types Kannel puts in %d, as (state, words for display).
DLR_TYPES: Mapping[int, tuple[DeliveryState, str]] = {
    1: (DeliveryState.DELIVERED, "delivered"),
    2: (DeliveryState.FAILED, "failed"),
    4: (DeliveryState.PENDING, "buffered"),
    8: (DeliveryState.PENDING, "smsc ack"),
    16: (DeliveryState.FAILED, "smsc reject"),
}
DLR_EXPECTED = "expected a Kannel DLR type (1, 2, 4, 8 or 16)"
# Charsets Kannel names in %C for the raw text in %b (UTF-16BE for UCS-2; UTF-8 when it knows no other).
_CHARSETS = {"UTF-8": "utf-8", "UTF-16BE": "utf-16-be", "ISO-8859-1": "latin-1", "WINDOWS-1252": "cp1252"}
_SMPP_ERR = re.compile(r"\berr:(\w{1,8})")


def kannel_literal(text: str) -> str:
    """`text` as a literal in a Kannel URL pattern: each `%` doubled so Kannel does not read an escape code."""
    return text.replace("%", "%%")


def _param(value: str) -> str:
    """A query value for a Kannel pattern: URL-encoded, then made literal."""
    return kannel_literal(quote(value, safe=""))


class KannelGateway(HttpGateway):
    """Sends through Kannel's sendsms interface; receives its dlr-url receipts and sms-service inbound texts."""

    def __init__(
        self,
        config: GatewayConfig,
        web_config: WebConfig,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        default_region: str = "US",
    ) -> None:
        super().__init__(config.name, timeout_s=timeout_s, secrets=(config.password, web_config.webhook_token))
        if not config.url or not config.username:
            raise ValueError(f"gateway {config.name!r}: a Kannel gateway needs url (the sendsms URL) and username")
        self._url = config.url
        self._username = config.username
        self._password = config.password
        self._public_url = web_config.public_url.rstrip("/")
        self._token = web_config.webhook_token
        self._region = default_region
        if not self._public_url or not self._token:
            log.warning("%s: web.public_url or web.webhook_token is not set: no delivery receipts", self.name)

    def dlr_url(self, key: str) -> str:
        """The dlr-url pattern for the text with this key (before it is URL-encoded into the sendsms request)."""
        base = kannel_literal(callback_url(self._public_url, self.name, "status"))
        return f"{base}?token={_param(self._token)}&id={_param(key)}&status=%d&answer=%A"

    def inbound_get_url(self) -> str:
        """The get-url of the Kannel sms-service that forwards inbound texts to us (for kannel.conf)."""
        base = kannel_literal(callback_url(self._public_url, self.name, "inbound"))
        return f"{base}?token={_param(self._token)}&from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I"

    def _request_url(self, sms: OutgoingSms) -> URL:
        params = [
            ("username", self._username),
            ("password", self._password),
            ("from", sms.sender),
            ("to", sms.to),
            ("text", sms.text),
            ("charset", "UTF-8"),
        ]
        if encoding_of(sms.text) == "UCS-2":
            params.append(("coding", "2"))
        if self._public_url and self._token:
            params += [("dlr-mask", str(DLR_MASK_ALL)), ("dlr-url", self.dlr_url(sms.key))]
        separator = "&" if "?" in self._url else "?"
        return URL(self._url + separator + urlencode(params, quote_via=quote), encoded=True)

    async def send(self, sms: OutgoingSms) -> SendResult:
        if self._session is None:
            return SendResult(SendStatus.DEFERRED, error="gateway not started")
        try:
            async with self._session.get(self._request_url(sms), allow_redirects=False) as response:
                body = (await read_answer(response)).decode("utf-8", "replace").strip()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            result = network_result(exc)
            log.warning("%s: text %s to %s %s: %s", self.name, sms.key, mask(sms.to), result.status.value, result.error)
            return result
        if 200 <= status < 300 and body.startswith(ACCEPTED_ANSWERS):
            log.info("%s: text %s to %s accepted: %s", self.name, sms.key, mask(sms.to), short(body, 60))
            return SendResult(SendStatus.ACCEPTED, message_id=sms.key)
        error = self._error(f"HTTP {status}: {body[:MAX_DETAIL_CHARS]}")
        result = SendResult(SendStatus.REJECTED, error=error) if status < 300 else classify(status, error)
        log.warning("%s: text %s to %s %s: %s", self.name, sms.key, mask(sms.to), result.status.value, result.error)
        return result

    # -- webhooks ---------------------------------------------------------------------------------------------------

    async def _raw_params(self, request: web.Request) -> dict[str, bytes]:
        """The webhook's fields as bytes (Kannel URL-encodes raw octets: a UCS-2 text is not UTF-8), token checked."""
        query = request.rel_url.raw_query_string
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            query = (await request.read()).decode("latin-1")
        params: dict[str, bytes] = {}
        for name, value in parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
            params.setdefault(name, value.encode("latin-1"))
        token = params.get("token")
        if not tokens_match(None if token is None else token.decode("utf-8", "replace"), self._token):
            raise forbidden("missing or wrong token")
        return params

    @staticmethod
    def _text_params(raw: Mapping[str, bytes], skip: str = "") -> dict[str, str]:
        """The fields (but `skip`) as UTF-8 text, through the same check as every other gateway's fields."""
        decoded = ((name, value.decode("utf-8", "replace")) for name, value in raw.items() if name != skip)
        return dict(checked_params(decoded).items())

    async def _parse_status(self, request: web.Request) -> DeliveryReport:
        params = self._text_params(await self._raw_params(request))
        message_id = required(params, "id")
        code = ascii_int("status", required(params, "status", 8), 2, DLR_EXPECTED)
        if code not in DLR_TYPES:
            raise bad_field("status", DLR_EXPECTED)
        state, words = DLR_TYPES[code]
        answer = short(params.get("answer", ""))
        error_code = None
        if state is DeliveryState.FAILED:
            found = _SMPP_ERR.search(answer)
            error_code = found.group(1) if found else str(code)
        detail = short(f"{words}: {answer}" if answer else words)
        return DeliveryReport(message_id, state, time.time(), error_code=error_code, detail=detail)

    async def _parse_inbound(self, request: web.Request) -> InboundSms:
        raw = await self._raw_params(request)
        params = self._text_params(raw, skip="text")
        charset = (optional(params, "charset", 32) or "UTF-8").upper()
        if optional(params, "coding", 4) == "2":
            charset = "UTF-16BE"
        codec = _CHARSETS.get(charset, "utf-8")
        text = raw.get("text")
        if text is None:
            raise bad_field("text", "missing")
        params["text"] = checked_text("text", codecs.decode(text[: 4 * MAX_TEXT_CHARS], codec, "replace"))
        sender = phone_field(params, "from", self._region)
        to = phone_field(params, "to", self._region)
        return InboundSms(sender, to, message_text(params, "text"), time.time(), optional(params, "id"))

    def _inbound_answer(self) -> web.Response:
        # Empty: with `max-messages = 0` (or omit-empty) in the sms-service, Kannel sends the phone nothing back.
        return web.Response(status=200)
