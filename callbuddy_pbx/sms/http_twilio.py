"""A Twilio-compatible Messages API gateway (Twilio itself, or providers copying its API).

Sending: POST {url}/2010-04-01/Accounts/{sid}/Messages.json with To, From, Body and a StatusCallback pointing at
{public_url}/webhooks/{name}/status; HTTP Basic auth with the account SID and auth token. 201 is ACCEPTED with
Twilio's `sid`; 429, 5xx and network errors are RETRY (Retry-After honoured); other 4xx are REJECTED with
Twilio's code and message (e.g. `21211: The 'To' number ... is not a valid phone number`).

Webhooks (status callbacks, and inbound texts when the number's messaging webhook points at
{public_url}/webhooks/{name}/inbound) must carry a valid X-Twilio-Signature: base64 HMAC-SHA1, keyed with the auth
token, of the URL Twilio called followed by the POST parameters sorted by name (name + value, no separators).
The URL is taken from `public_url` (what Twilio was given), not from the request, so a proxy in front does not
break validation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from multidict import MultiDict

from callbuddy_pbx.config import GatewayConfig, WebConfig
from callbuddy_pbx.phone import mask
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState, InboundSms, OutgoingSms, SendResult, SendStatus
from callbuddy_pbx.sms.http_common import (
    DEFAULT_TIMEOUT_S,
    MAX_DETAIL_CHARS,
    HttpGateway,
    answer_json,
    ascii_int,
    bad_field,
    basic_auth,
    callback_url,
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
)

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.twilio.com"
SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

# MessageStatus values of status callbacks (Twilio's message resource), as delivery states.
STATUS_STATES: Mapping[str, DeliveryState] = {
    "delivered": DeliveryState.DELIVERED,
    "read": DeliveryState.DELIVERED,
    "undelivered": DeliveryState.FAILED,
    "failed": DeliveryState.FAILED,
    "canceled": DeliveryState.FAILED,
    "accepted": DeliveryState.PENDING,
    "scheduled": DeliveryState.PENDING,
    "queued": DeliveryState.PENDING,
    "sending": DeliveryState.PENDING,
    "sent": DeliveryState.PENDING,
    "partially_delivered": DeliveryState.PENDING,
}


def twilio_signature(auth_token: str, url: str, params: MultiDict[str] | Mapping[str, str]) -> str:
    """X-Twilio-Signature of a request to `url` with POST `params` (pass no params for a GET)."""
    data = url
    multi = params if isinstance(params, MultiDict) else MultiDict(params)
    for name in sorted(set(multi.keys())):
        for value in sorted(set(multi.getall(name))):
            data += name + value
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """The URL as given, without its default port and with it: Twilio signs whichever form it called."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if default is None or parts.hostname is None:
        return variants
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    if parts.port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    elif parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    return variants


def _present(params: MultiDict[str], field: str, legacy: str) -> str:
    """`field`, or its legacy Sms* name when only that one was sent."""
    return legacy if field not in params and legacy in params else field


class TwilioGateway(HttpGateway):
    """Sends through a Twilio-compatible Messages API; receives its signed status callbacks and inbound texts."""

    def __init__(
        self,
        config: GatewayConfig,
        web_config: WebConfig,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        default_region: str = "US",
    ) -> None:
        super().__init__(config.name, timeout_s=timeout_s, secrets=(config.auth_token,))
        if not config.account_sid or not config.auth_token:
            raise ValueError(f"gateway {config.name!r}: a Twilio gateway needs account_sid and auth_token")
        self._sid = config.account_sid
        self._token = config.auth_token
        base = (config.url or DEFAULT_API_URL).rstrip("/")
        self._messages_url = f"{base}/2010-04-01/Accounts/{config.account_sid}/Messages.json"
        self._authorization = basic_auth(config.account_sid, config.auth_token)
        self._public_url = web_config.public_url.rstrip("/")
        self._region = default_region
        if not self._public_url:
            log.warning("%s: web.public_url is not set: no delivery receipts will be requested", self.name)

    @property
    def status_callback(self) -> str | None:
        return callback_url(self._public_url, self.name, "status") if self._public_url else None

    async def send(self, sms: OutgoingSms) -> SendResult:
        if self._session is None:
            return SendResult(SendStatus.DEFERRED, error="gateway not started")
        form = {"To": sms.to, "From": sms.sender, "Body": sms.text}
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        headers = {"Authorization": self._authorization, "Accept": "application/json"}
        try:
            async with self._session.post(
                self._messages_url, data=form, headers=headers, allow_redirects=False
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
            sid = answer.get("sid") if isinstance(answer, dict) else None
            if not isinstance(sid, str) or not sid:
                log.warning("%s: text %s accepted (HTTP %d) without a sid", self.name, sms.key, status)
                return SendResult(SendStatus.ACCEPTED, message_id=None)
            log.info("%s: text %s to %s accepted as %s", self.name, sms.key, mask(sms.to), sid[:64])
            return SendResult(SendStatus.ACCEPTED, message_id=sid[:128])
        result = classify(status, self._error(self._describe(status, answer, body)), retry_after)
        log.warning("%s: text %s to %s %s: %s", self.name, sms.key, mask(sms.to), result.status.value, result.error)
        return result

    @staticmethod
    def _describe(status: int, answer: object, body: bytes) -> str:
        """`HTTP 400: 21211 The 'To' number ... is not a valid phone number.` from Twilio's error JSON."""
        if isinstance(answer, dict):
            code, message = answer.get("code"), answer.get("message")
            words = " ".join(str(part) for part in (code, message) if part not in (None, ""))
            if words:
                return f"HTTP {status}: {words}"
        return f"HTTP {status}: {body[:MAX_DETAIL_CHARS].decode('utf-8', 'replace')}"

    # -- webhooks ---------------------------------------------------------------------------------------------------

    async def _verified_params(self, kind: str, request: web.Request) -> MultiDict[str]:
        params = await read_params(request)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise forbidden(f"missing {SIGNATURE_HEADER}")
        if self._public_url:
            url = callback_url(self._public_url, self.name, kind)
            if request.rel_url.raw_query_string:
                url += "?" + request.rel_url.raw_query_string
        else:
            try:
                url = str(request.url)  # built from the Host header: the sender's text
            except ValueError:  # UnicodeError is one: a host IDNA refuses, a port out of range
                raise bad_field("Host", "not a host name a URL can hold") from None
        signed = params if request.method == "POST" else MultiDict[str]()
        given = signature.encode("utf-8", "replace")
        for candidate in _port_variants(url):
            expected = twilio_signature(self._token, candidate, signed).encode("ascii")
            if hmac.compare_digest(expected, given):
                return params
        raise forbidden(f"invalid {SIGNATURE_HEADER}")

    async def _parse_status(self, request: web.Request) -> DeliveryReport:
        params = await self._verified_params("status", request)
        message_id = required(params, _present(params, "MessageSid", "SmsSid"))
        status_field = _present(params, "MessageStatus", "SmsStatus")
        word = required(params, status_field, 32).lower()
        state = STATUS_STATES.get(word)
        if state is None:
            raise bad_field(status_field, "unknown status")
        error_code = optional(params, "ErrorCode", 16)
        if error_code is not None:
            ascii_int("ErrorCode", error_code, 16)  # kept as written (leading zeros), but only digits 0-9
        detail = word if error_code is None else f"{word} (error {error_code})"
        return DeliveryReport(message_id, state, time.time(), error_code=error_code, detail=detail)

    async def _parse_inbound(self, request: web.Request) -> InboundSms:
        params = await self._verified_params("inbound", request)
        sender = phone_field(params, "From", self._region)
        to = phone_field(params, "To", self._region)
        # The same MessageSid in each retry of the webhook: what makes a repeated delivery the same reply.
        message_id = optional(params, _present(params, "MessageSid", "SmsMessageSid"))
        return InboundSms(sender, to, message_text(params, "Body"), time.time(), message_id)

    def _status_answer(self) -> web.Response:
        return web.Response(status=204)

    def _inbound_answer(self) -> web.Response:
        # Empty TwiML: no automatic reply (the service answers STOP/HELP itself, through the outbox).
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")
