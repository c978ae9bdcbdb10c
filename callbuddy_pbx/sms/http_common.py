"""What the HTTP gateways (Twilio-style, Kannel, generic) share: the client session, classifying answers, reading
webhooks with bounded fields, and the webhook dispatch to `on_report` / `on_inbound`.

Secrets (passwords, tokens, auth headers) never reach a log line or a `SendResult.error`: errors are built from
the gateway's answer with every configured secret scrubbed, and network errors are described by their kind only
(aiohttp's own messages can quote the request URL, which for Kannel carries the password).
"""

from __future__ import annotations

import base64
import email.utils
import hmac
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from multidict import MultiDict

from callbuddy_pbx.phone import MAX_NUMBER_CHARS, redact, to_e164
from callbuddy_pbx.sms.gateway import (
    DeliveryReport,
    InboundHandler,
    InboundSms,
    OutgoingSms,
    ReportHandler,
    SendResult,
    SendStatus,
)
from callbuddy_pbx.sms.gateway_webhooks import WEBHOOK_KINDS
from callbuddy_pbx.untrusted import printable

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 640  # an inbound text is cut to this (STOP/HELP are at the start; the rest is for display)
MAX_ID_CHARS = 128  # message ids and keys: longer is refused
MAX_DETAIL_CHARS = 160  # status words and gateway answers kept for display
MAX_NAME_CHARS = 40  # of a field name (or a charset) quoted in an answer or a log line
MAX_ERROR_CHARS = 200  # an error put in a SendResult
MAX_ANSWER_BYTES = 64 * 1024  # of a gateway's HTTP answer we read
MAX_RETRY_AFTER_S = 3600.0
DEFAULT_TIMEOUT_S = 15.0


class WebhookProblem(Exception):
    """A webhook that is refused: `status` 400 (malformed, naming the field) or 403 (not authenticated)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_field(field: str, problem: str) -> WebhookProblem:
    """A 400 naming the field; the name is the sender's text, so it is shown escaped and cut (it goes into the
    answer and a log line, which must be valid UTF-8 and one line)."""
    return WebhookProblem(400, f"{shown(field)}: {problem}")


def shown(text: str) -> str:
    """A name from a request (a field, a charset) safe to quote: escaped, at most MAX_NAME_CHARS characters."""
    return printable(text[:MAX_NAME_CHARS])


def forbidden(why: str) -> WebhookProblem:
    return WebhookProblem(403, why)


# -- webhook fields ---------------------------------------------------------------------------------------------------


def required(params: Mapping[str, str], field: str, max_chars: int = MAX_ID_CHARS) -> str:
    """A field that must be present and non-empty, at most `max_chars` long."""
    value = params.get(field)
    if value is None or not value.strip():
        raise bad_field(field, "missing")
    return bounded(field, value.strip(), max_chars)


def optional(params: Mapping[str, str], field: str, max_chars: int = MAX_ID_CHARS) -> str | None:
    value = params.get(field)
    if value is None or not value.strip():
        return None
    return bounded(field, value.strip(), max_chars)


def checked_text(field: str, value: str) -> str:
    """`value` when it is text that can be stored, signed and shown: encodable as UTF-8. A lone surrogate (JSON's
    "\\ud800", or what a decoder let through) is not: SQLite, HMAC and the answer would all fail on it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_field(field, "not valid Unicode text (a lone surrogate)") from None
    return value


def checked_params(pairs: Iterable[tuple[str, str]]) -> MultiDict[str]:
    """A webhook's fields, each name and value checked by `checked_text`: the one gate every parsed field goes
    through before a signature or token check, a log line or the service sees it."""
    params: MultiDict[str] = MultiDict()
    for name, value in pairs:
        checked_text(name, name)
        params.add(name, checked_text(name, value))
    return params


def ascii_int(field: str, value: str, max_digits: int, expected: str = "") -> int:
    """A number from a webhook: 1 to `max_digits` ASCII digits, else a 400 naming the field (and `expected`, when
    given). `str.isdigit()` is also true of "²" and "٣", which `int()` refuses or reads as 3: never use it (nor
    `int()` alone) on what a sender wrote."""
    if not (0 < len(value) <= max_digits and value.isascii() and value.isdigit()):
        raise bad_field(field, expected or f"expected a number (1 to {max_digits} digits 0-9)")
    return int(value)


def bounded(field: str, value: str, max_chars: int) -> str:
    if len(value) > max_chars:
        raise bad_field(field, f"longer than {max_chars} characters")
    return value


def message_text(params: Mapping[str, str], field: str) -> str:
    """An inbound text: present (it may be empty), cut to MAX_TEXT_CHARS."""
    value = params.get(field)
    if value is None:
        raise bad_field(field, "missing")
    return value[:MAX_TEXT_CHARS]


def phone_field(params: Mapping[str, str], field: str, region: str) -> str:
    """A phone number from a webhook: E.164 when it parses, else as received (bounded)."""
    raw = required(params, field, MAX_NUMBER_CHARS)
    return to_e164(raw, region) or raw


def short(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """Text for display: control characters become spaces, runs of spaces collapse, at most `limit` characters."""
    cleaned = " ".join("".join(" " if ord(char) < 32 or ord(char) == 127 else char for char in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def body_charset(request: web.Request) -> str:
    """The charset the body declares (UTF-8 when none), checked to name a text codec Python has: a 400
    "body: unknown charset ..." otherwise (aiohttp would raise LookupError while decoding)."""
    charset = request.charset or "utf-8"
    try:
        b"a".decode(charset)  # not b"": decoding nothing skips the lookup
    except LookupError:  # no such codec, or not a text codec (base64, zlib, rot13)
        raise bad_field("body", f"unknown charset {shown(charset)}") from None
    except ValueError:  # a codec that refuses this byte still exists; the body may decode
        pass
    return charset


async def read_params(request: web.Request) -> MultiDict[str]:
    """The fields of a webhook: the query for GET; the form or a flat JSON object for POST. A body that cannot be
    decoded (unknown charset, bytes not in it) is a 400 naming the problem; every field passes `checked_params`."""
    if request.method != "POST":
        return checked_params(request.query.items())
    charset = body_charset(request)
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except UnicodeError:  # before ValueError, its base
            raise bad_field("body", f"not valid {shown(charset)} text") from None
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            raise bad_field("body", "not valid JSON") from None
        if not isinstance(data, dict):
            raise bad_field("body", "expected a JSON object")
        pairs: list[tuple[str, str]] = []
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float | type(None)):
                raise bad_field(str(key), "expected a string or a number")
            if value is not None:
                pairs.append((str(key), str(value)))
        return checked_params(pairs)
    try:
        form = await request.post()
    except UnicodeError:
        raise bad_field("body", f"not valid {shown(charset)} text") from None
    except LookupError as exc:  # the charset of one part of a multipart form
        raise bad_field("body", f"unknown charset in a form part ({shown(str(exc))})") from None
    except ValueError:
        raise bad_field("body", "not a readable form") from None
    pairs = []
    for key, value in form.items():
        if not isinstance(value, str):
            raise bad_field(key, "file uploads are not accepted")
        pairs.append((key, value))
    return checked_params(pairs)


def tokens_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an unset expected token matches nothing. `given` is the sender's text (a header
    aiohttp decoded with surrogateescape): it is compared, never refused, and so never raises."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


# -- sending ----------------------------------------------------------------------------------------------------------


def basic_auth(user: str, password: str) -> str:
    """An HTTP Basic Authorization header value (aiohttp 3.14 deprecates BasicAuth)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


HTTP_IN_FLIGHT = 32  # requests one HTTP gateway has open at once (the outbox hands it no more; see SmsGateway)


def new_session(timeout_s: float) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 10.0))
    # As many connections as requests in flight: a request never waits in the pool for a connection.
    connector = aiohttp.TCPConnector(limit=HTTP_IN_FLIGHT)
    return aiohttp.ClientSession(timeout=timeout, raise_for_status=False, connector=connector)


async def read_answer(response: aiohttp.ClientResponse) -> bytes:
    """At most MAX_ANSWER_BYTES of an answer's body."""
    return await response.content.read(MAX_ANSWER_BYTES)


def answer_json(body: bytes) -> Any:
    """The answer parsed as JSON, or None when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every (non-trivial) secret replaced by ***."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def network_error(exc: BaseException) -> str:
    """A network failure in words that cannot carry a URL or a credential."""
    if isinstance(exc, TimeoutError):
        return "network error: timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"network error: cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "network error: server disconnected"
    return f"network error: {type(exc).__name__}"


def classify(status: int, error: str, retry_after: float | None = None) -> SendResult:
    """A non-success HTTP status as a SendResult: 429 and 5xx (the gateway cannot take it now) DEFERRED, 429 as
    throttling; other 4xx REJECTED; anything else unexpected RETRY (a few tries)."""
    text = short(error, MAX_ERROR_CHARS)
    if status == 429 or 500 <= status < 600:
        return SendResult(SendStatus.DEFERRED, error=text, retry_after_s=retry_after, throttled=status == 429)
    if 400 <= status < 500:
        return SendResult(SendStatus.REJECTED, error=text)
    return SendResult(SendStatus.RETRY, error=text, retry_after_s=retry_after)


def network_result(exc: BaseException) -> SendResult:
    """A send that failed on the network: DEFERRED when the request cannot have left (no connection made),
    UNKNOWN when it may have (timed out or cut off while waiting for the answer)."""
    error = network_error(exc)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return SendResult(SendStatus.DEFERRED, error=error)
    return SendResult(SendStatus.UNKNOWN, error=error)


def callback_url(public_url: str, gateway: str, kind: str) -> str:
    """Where a gateway reaches us: {public_url}/webhooks/{gateway}/{kind}."""
    return f"{public_url.rstrip('/')}/webhooks/{gateway}/{kind}"


# -- the webhook side -------------------------------------------------------------------------------------------------


class HttpGateway(ABC):
    """Session life cycle and webhook dispatch; subclasses send, parse and authenticate."""

    def __init__(self, name: str, *, timeout_s: float, secrets: Iterable[str]) -> None:
        self.name = name
        self.in_flight_limit = HTTP_IN_FLIGHT
        self._timeout_s = timeout_s
        self._secrets = tuple(secret for secret in secrets if secret)
        self._session: aiohttp.ClientSession | None = None
        self._on_report: ReportHandler | None = None
        self._on_inbound: InboundHandler | None = None

    async def start(self, on_report: ReportHandler, on_inbound: InboundHandler) -> None:
        self._on_report = on_report
        self._on_inbound = on_inbound
        if self._session is None:
            self._session = new_session(self._timeout_s)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _error(self, text: str) -> str:
        """An error for SendResult (and logs): bounded, secrets scrubbed, phone numbers masked."""
        return short(redact(scrub(text, self._secrets)), MAX_ERROR_CHARS)

    async def handle_webhook(self, kind: str, request: web.Request) -> web.Response:
        """Parse, authenticate and validate one webhook, then hand it to on_report / on_inbound and answer."""
        if kind not in WEBHOOK_KINDS:
            return web.Response(status=404, text="unknown webhook")
        if self._on_report is None or self._on_inbound is None:
            return web.Response(status=503, text="gateway not started")
        try:
            if kind == "status":
                report = await self._parse_status(request)
                log.debug("%s: receipt for %s: %s", self.name, report.message_id, report.state.value)
                await self._on_report(report)
                return self._status_answer()
            sms = await self._parse_inbound(request)
            log.debug("%s: inbound text of %d characters", self.name, len(sms.text))
            await self._on_inbound(sms)
            return self._inbound_answer()
        except WebhookProblem as problem:
            log.warning("%s: %s webhook refused (%d): %s", self.name, kind, problem.status, problem.message)
            return web.Response(status=problem.status, text=problem.message)
        except web.HTTPException as refused:  # aiohttp's own answer (a body over the limit: 413), not our failure
            return web.Response(status=refused.status, text=refused.reason)
        except Exception:
            log.exception("%s: %s webhook could not be handled", self.name, kind)
            return web.Response(status=500, text="internal error")

    @abstractmethod
    async def send(self, sms: OutgoingSms) -> SendResult:
        """Send one text; gateway and network trouble is a RETRY or REJECTED result, never an exception."""

    @abstractmethod
    async def _parse_status(self, request: web.Request) -> DeliveryReport: ...

    @abstractmethod
    async def _parse_inbound(self, request: web.Request) -> InboundSms: ...

    def _status_answer(self) -> web.Response:
        return web.Response(text="ok")

    def _inbound_answer(self) -> web.Response:
        return web.Response(text="ok")
