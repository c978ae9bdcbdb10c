"""A gateway for any HTTP SMS API, described in the configuration instead of code.

Sending: `method` to `url` with a body of `body` fields, each a template using {to} {sender} {text} {key}. Values
are put in after the template is parsed and the body is encoded by the HTTP library (form, JSON, or the query for
GET), so a text containing quotes, `&` or braces cannot change the request's shape. `headers` are sent as
configured (an API key) and never logged. 2xx is ACCEPTED, the message id read from the JSON answer at
`message_id_path` (dots between keys, list indexes allowed: `messages.0.id` or `messages[0].id`; our key when no
path is set); 429 and 5xx RETRY; other 4xx REJECTED with the text at `error_path` (or the start of the answer).

Webhooks, authenticated by the webhook token (query `token=`, header `X-Webhook-Token`, or
`Authorization: Bearer <token>`), as a form, a flat JSON object or a GET query:
  - receipts at /webhooks/{name}/status: `id` (the message id), `status` (delivered, failed, expired, pending or a
    common synonym such as sent, undelivered, rejected, DELIVRD), optional `error`;
  - inbound texts at /webhooks/{name}/inbound: `from`, `to`, `text`, and `id` when the provider names its texts
    (the same in each retry of one webhook: a retry is then stored and answered once).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from multidict import MultiDict
from yarl import URL

from callbuddy_pbx.config import GatewayConfig, WebConfig
from callbuddy_pbx.message_text import template_problem
from callbuddy_pbx.phone import mask
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState, InboundSms, OutgoingSms, SendResult, SendStatus
from callbuddy_pbx.sms.http_common import (
    DEFAULT_TIMEOUT_S,
    MAX_DETAIL_CHARS,
    MAX_ID_CHARS,
    HttpGateway,
    answer_json,
    bad_field,
    classify,
    forbidden,
    message_text,
    network_result,
    optional,
    phone_field,
    read_answer,
    read_params,
    required,
    retry_after_s,
    short,
    tokens_match,
)

log = logging.getLogger(__name__)

BODY_FIELDS: tuple[str, ...] = ("to", "sender", "text", "key")
METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH")
BODY_FORMATS: tuple[str, ...] = ("form", "json")
TOKEN_HEADER = "X-Webhook-Token"  # noqa: S105 (a header name)

STATUS_WORDS: Mapping[str, DeliveryState] = {
    **dict.fromkeys(("delivered", "delivrd", "read"), DeliveryState.DELIVERED),
    **dict.fromkeys(
        ("failed", "undelivered", "undeliv", "undeliverable", "rejected", "rejectd", "deleted", "canceled"),
        DeliveryState.FAILED,
    ),
    **dict.fromkeys(("expired",), DeliveryState.EXPIRED),
    **dict.fromkeys(
        ("pending", "accepted", "acceptd", "queued", "scheduled", "sending", "sent", "buffered", "enroute"),
        DeliveryState.PENDING,
    ),
}

_TEMPLATE_PIECE = re.compile(r"\{\{|\}\}|\{([a-z_]+)\}")
_INDEX = re.compile(r"\[(-?\d+)\]")


def render(template: str, values: Mapping[str, str]) -> str:
    """A checked template (see `template_problem`) with its fields replaced; `{{` and `}}` are literal braces."""

    def piece(match: re.Match[str]) -> str:
        name = match.group(1)
        return match.group(0)[0] if name is None else values[name]

    return _TEMPLATE_PIECE.sub(piece, template)


def dig(data: Any, path: str) -> Any:
    """The value at a dotted path (`messages.0.id`, `messages[0].id`) in parsed JSON, or None."""
    for part in _INDEX.sub(r".\1", path).strip(".").split("."):
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and re.fullmatch(r"-?\d+", part):
            index = int(part)
            data = data[index] if -len(data) <= index < len(data) else None
        else:
            return None
    return data


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)


class GenericHttpGateway(HttpGateway):
    """Sends with a request described by the configuration; receives receipts and texts in a documented shape."""

    def __init__(
        self,
        config: GatewayConfig,
        web_config: WebConfig,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        default_region: str = "US",
    ) -> None:
        header_secrets = [value for _, value in config.headers]
        header_secrets += [part for value in header_secrets for part in value.split() if len(part) >= 8]
        super().__init__(config.name, timeout_s=timeout_s, secrets=(*header_secrets, web_config.webhook_token))
        self._method = config.method.upper()
        self._format = config.body_format.lower()
        problems = []
        if not config.url:
            problems.append("url is required")
        if self._method not in METHODS:
            problems.append(f"method {config.method!r} is not one of {', '.join(METHODS)}")
        if self._format not in BODY_FORMATS:
            problems.append(f"body_format {config.body_format!r} is not one of {', '.join(BODY_FORMATS)}")
        if not config.body:
            problems.append("body is empty (expected fields such as to: '{to}', text: '{text}')")
        for field, template in config.body:
            problem = template_problem(template, BODY_FIELDS) if template else None
            if problem:
                problems.append(f"body.{field}: {problem}")
        if problems:
            raise ValueError(f"gateway {config.name!r}: " + "; ".join(problems))
        self._url = config.url
        self._body = config.body
        self._headers = dict(config.headers)
        self._id_path = config.message_id_path
        self._error_path = config.error_path
        self._token = web_config.webhook_token
        self._region = default_region

    def _fields(self, sms: OutgoingSms) -> dict[str, str]:
        values = {"to": sms.to, "sender": sms.sender, "text": sms.text, "key": sms.key}
        return {field: render(template, values) for field, template in self._body}

    async def send(self, sms: OutgoingSms) -> SendResult:
        if self._session is None:
            return SendResult(SendStatus.DEFERRED, error="gateway not started")
        fields = self._fields(sms)
        url: str | URL = self._url
        data: dict[str, str] | None = None
        body_json: dict[str, str] | None = None
        if self._method == "GET":
            separator = "&" if "?" in self._url else "?"
            url = URL(self._url + separator + urlencode(list(fields.items()), quote_via=quote), encoded=True)
        elif self._format == "json":
            body_json = fields
        else:
            data = fields
        try:
            async with self._session.request(
                self._method, url, data=data, json=body_json, headers=self._headers, allow_redirects=False
            ) as response:
                body = await read_answer(response)
                status = response.status
                retry_after = retry_after_s(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            result = network_result(exc)
            log.warning("%s: text %s to %s %s: %s", self.name, sms.key, mask(sms.to), result.status.value, result.error)
            return result
        answer = answer_json(body)
        if 200 <= status < 300:
            message_id = self._message_id(sms, answer)
            log.info("%s: text %s to %s accepted as %s", self.name, sms.key, mask(sms.to), message_id)
            return SendResult(SendStatus.ACCEPTED, message_id=message_id)
        words = _scalar(dig(answer, self._error_path)) if self._error_path else None
        if words is None:
            words = body[:MAX_DETAIL_CHARS].decode("utf-8", "replace")
        result = classify(status, self._error(f"HTTP {status}: {words}"), retry_after)
        log.warning("%s: text %s to %s %s: %s", self.name, sms.key, mask(sms.to), result.status.value, result.error)
        return result

    def _message_id(self, sms: OutgoingSms, answer: Any) -> str:
        if not self._id_path:
            return sms.key
        found = _scalar(dig(answer, self._id_path))
        if found is None or not found.strip() or len(found) > MAX_ID_CHARS:
            log.warning("%s: no message id at %r in the answer; using the key %s", self.name, self._id_path, sms.key)
            return sms.key
        return found.strip()

    # -- webhooks ---------------------------------------------------------------------------------------------------

    async def _verified_params(self, request: web.Request) -> MultiDict[str]:
        """The token first (it is in the URL or a header): nothing of the body is parsed for a stranger."""
        given = request.headers.get(TOKEN_HEADER) or request.query.get("token")
        authorization = request.headers.get("Authorization", "")
        if given is None and authorization[:7].lower() == "bearer ":
            given = authorization[7:].strip()
        if not tokens_match(given, self._token):
            raise forbidden("missing or wrong token")
        return await read_params(request)

    async def _parse_status(self, request: web.Request) -> DeliveryReport:
        params = await self._verified_params(request)
        message_id = required(params, "id")
        word = required(params, "status", 32).lower()
        state = STATUS_WORDS.get(word)
        if state is None:
            raise bad_field("status", "unknown status (expected delivered, failed, expired or pending)")
        error = optional(params, "error", MAX_DETAIL_CHARS)
        detail = short(f"{word}: {error}" if error else word)
        error_code = None if error is None else short(error, 64)
        return DeliveryReport(message_id, state, time.time(), error_code=error_code, detail=detail)

    async def _parse_inbound(self, request: web.Request) -> InboundSms:
        params = await self._verified_params(request)
        sender = phone_field(params, "from", self._region)
        to = phone_field(params, "to", self._region)
        return InboundSms(sender, to, message_text(params, "text"), time.time(), optional(params, "id"))

    def _status_answer(self) -> web.Response:
        return web.json_response({"ok": True})

    def _inbound_answer(self) -> web.Response:
        return web.json_response({"ok": True})
