"""Sending the service's own notices (alerts to the installer, the owners' daily digest), each at most once.

A notice goes out as a text through one gateway to each of its numbers and/or as a JSON POST to a webhook. Before
anything is sent its key is inserted in `notifications` (`claim`): a crash or a restart between the two can lose a
notice, never send it twice. Its row then gets `sent_at` (something went out) and/or `error` (what did not).

Webhook URLs may carry keys (in the query, the path or as user:password): only their scheme and host are ever
logged or stored. Phone numbers in logs are masked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from callbuddy_pbx.config import Business, Config
from callbuddy_pbx.config.alerts import default_sender
from callbuddy_pbx.phone import mask, redact
from callbuddy_pbx.sms.gateway import OutgoingSms, SendStatus, SmsGateway
from callbuddy_pbx.store.db import CallStore

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 10.0
SEND_ATTEMPTS = 3  # a gateway answering "retry" (throttled, link down) gets this many tries per number
RETRY_DELAY_S = 5.0
MAX_RETRY_AFTER_S = 30.0
MAX_ERROR_CHARS = 500  # the `error` column of one notice


@dataclass(frozen=True, slots=True)
class TextRoute:
    """Which gateway sends a notice's texts, and from which sender."""

    gateway: str
    sender: str


@dataclass(frozen=True, slots=True)
class Notice:
    """One alert or digest: its durable key, the text, and the webhook's JSON body."""

    key: str  # notifications.key, e.g. "alert:ami_down:1795257719" or "digest:Glow Salon:2026-03-08"
    kind: str  # notifications.kind: "alert", "alert_repeat", "alert_resolved", "digest"
    text: str  # what the texts say (and the `body` stored)
    payload: Mapping[str, Any] = field(default_factory=dict)  # POSTed as JSON to webhook_url
    sms_to: tuple[str, ...] = ()
    route: TextRoute | None = None
    webhook_url: str = field(default="", repr=False)
    business: str | None = None


def default_service_name() -> str:
    """What identifies this installation in alerts: the host it runs on."""
    return f"callbuddy-pbx@{socket.gethostname()[:60]}"


def shown_url(url: str) -> str:
    """A URL fit for a log line: scheme and host only (keys hide in query, path and user info)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}/..."


def alert_route(config: Config) -> TextRoute | None:
    """How alert texts go out: alerts.gateway (else the first gateway) from alerts.sender (else the sender of the
    first business that texts through that gateway). None when there is no gateway or no sender."""
    gateway = config.alerts.gateway or (config.gateways[0].name if config.gateways else "")
    sender = config.alerts.sender or default_sender(gateway, config.businesses)
    return TextRoute(gateway, sender) if gateway and sender else None


def business_route(config: Config, business: Business) -> TextRoute | None:
    """How a business's own notices (its digest) go out: as its missed-call texts do."""
    gateway = business.text_back.gateway or (config.gateways[0].name if config.gateways else "")
    sender = business.text_back.sender or (business.numbers[0] if business.numbers else "")
    return TextRoute(gateway, sender) if gateway and sender else None


class Notifier:
    """Texts through the service's gateways (already started by text-back: never started or closed here) and POSTs
    to webhooks with its own aiohttp session (`close()` it)."""

    def __init__(
        self,
        gateways: Mapping[str, SmsGateway],
        *,
        service: str | None = None,
        secrets: Iterable[str] = (),
        timeout_s: float = WEBHOOK_TIMEOUT_S,
        attempts: int = SEND_ATTEMPTS,
        retry_delay_s: float = RETRY_DELAY_S,
    ) -> None:
        self._gateways = gateways
        self.service = service or default_service_name()
        self._secrets = tuple(secret for secret in secrets if len(secret) >= 4)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts = max(1, attempts)
        self._retry_delay_s = retry_delay_s
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, notice: Notice) -> tuple[bool, list[str]]:
        """Send a notice everywhere it goes; (anything went out, what did not). Never raises for network trouble."""
        sent = False
        errors: list[str] = []
        for index, number in enumerate(notice.sms_to):
            error = await self.text(notice.route, number, notice.text, f"{notice.key}#{index}")
            sent = sent or error is None
            if error is not None:
                errors.append(error)
        if notice.webhook_url:
            error = await self.post(notice.webhook_url, notice.payload)
            sent = sent or error is None
            if error is not None:
                errors.append(error)
        return sent, errors

    async def text(self, route: TextRoute | None, to: str, body: str, key: str) -> str | None:
        """One text; None when the gateway took it, else why not (masked number, no secrets)."""
        who = mask(to)
        if route is None:
            return f"text to {who}: no gateway or sender for it"
        gateway = self._gateways.get(route.gateway)
        if gateway is None:
            return f"text to {who}: gateway {route.gateway!r} is not running"
        for attempt in range(1, self._attempts + 1):
            try:
                result = await gateway.send(OutgoingSms(key=key, to=to, sender=route.sender, text=body))
            except Exception as exc:  # the protocol says never, but a notice must not take its sender down
                log.exception("notice %s: gateway %s raised", key, route.gateway)
                return f"text to {who}: {self._safe(type(exc).__name__)}"
            if result.status is SendStatus.ACCEPTED:
                log.info("notice %s texted to %s through %s", key, who, route.gateway)
                return None
            reason = self._safe(result.error or result.status.value)
            if result.status in (SendStatus.REJECTED, SendStatus.UNKNOWN) or attempt == self._attempts:
                log.warning("notice %s: text to %s not sent (%s)", key, who, reason)
                return f"text to {who}: {reason}"
            delay = min(result.retry_after_s or self._retry_delay_s, MAX_RETRY_AFTER_S)
            await asyncio.sleep(delay)
        return None  # unreachable: the loop returns on its last attempt

    async def post(self, url: str, payload: Mapping[str, Any]) -> str | None:
        """POST the JSON; None on a 2xx answer, else why not. Redirects are not followed: a webhook that moved
        somewhere else must be reconfigured, not followed to a host nobody chose."""
        where = shown_url(url)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = json.dumps(payload, separators=(",", ":"))
        try:
            async with self._session.post(
                url, data=body, headers={"Content-Type": "application/json"}, allow_redirects=False
            ) as response:
                status = response.status
        except TimeoutError:
            error = f"no answer within {self._timeout.total:g} s"
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            error = self._safe(_exception_text(exc, url))
        else:
            if 200 <= status < 300:
                log.info("notice posted to %s (HTTP %d)", where, status)
                return None
            error = f"HTTP {status}" + (" (a redirect, not followed)" if 300 <= status < 400 else "")
        log.warning("notice: webhook %s failed: %s", where, error)
        return f"webhook {where}: {error}"

    def _safe(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact(text)[:200]


def _exception_text(exc: BaseException, url: str) -> str:
    """An aiohttp error without the URL (InvalidURL and others quote it whole)."""
    text = str(exc)
    parts = urlsplit(url)
    for piece in (url, parts.query, parts.path, parts.netloc):
        if len(piece) > 1:
            text = text.replace(piece, "…")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the durable log ------------------------------------------------------------------------------------------------

_CLAIM = """
    INSERT INTO notifications (key, kind, business, body, created_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (key) DO NOTHING
"""
_FINISH = "UPDATE notifications SET sent_at = ?, error = ? WHERE key = ?"


@dataclass(frozen=True, slots=True)
class LoggedNotice:
    key: str
    kind: str
    business: str | None
    created_at: float
    sent_at: float | None
    error: str | None


class NotificationLog:
    """The `notifications` table: one row per notice key, written before the notice is sent."""

    def __init__(self, store: CallStore) -> None:
        self._store = store

    async def claim(self, notice: Notice, now: float) -> bool:
        """Record the notice as about to be sent; False when its key was already recorded (sent, or tried)."""
        async with (
            self._store.transaction() as conn,
            conn.execute(_CLAIM, (notice.key, notice.kind, notice.business, notice.text, now)) as cursor,
        ):
            return cursor.rowcount == 1

    async def finish(self, key: str, sent_at: float | None, errors: Sequence[str]) -> None:
        error = "; ".join(errors)[:MAX_ERROR_CHARS] or None
        async with self._store.transaction() as conn:
            await conn.execute(_FINISH, (sent_at, error, key))

    async def exists(self, key: str) -> bool:
        async with self._store.connection.execute("SELECT 1 FROM notifications WHERE key = ?", (key,)) as cursor:
            return await cursor.fetchone() is not None

    async def since(self, kinds: Sequence[str], created_since: float) -> list[LoggedNotice]:
        """Notices of these kinds recorded at or after `created_since`, oldest first."""
        marks = ", ".join("?" for _ in kinds)
        sql = f"""
            SELECT key, kind, business, created_at, sent_at, error FROM notifications
            WHERE kind IN ({marks}) AND created_at >= ? ORDER BY created_at, key
        """  # noqa: S608 (placeholders only; values are bound)
        async with self._store.connection.execute(sql, (*kinds, created_since)) as cursor:
            rows = await cursor.fetchall()
        return [LoggedNotice(*tuple(row)) for row in rows]


async def deliver(log_: NotificationLog, notifier: Notifier, notice: Notice, clock: Callable[[], float]) -> bool:
    """Claim, send, record. False when the notice was already claimed (by this run or an earlier one)."""
    if not await log_.claim(notice, clock()):
        log.info("notice %s was already sent (or tried); not again", notice.key)
        return False
    sent, errors = await notifier.send(notice)
    if not notice.sms_to and not notice.webhook_url:
        errors = ["not sent: no sms_to or webhook_url configured"]
        log.warning("notice %s: %s", notice.key, redact(notice.text))
    await log_.finish(notice.key, clock() if sent else None, errors)
    return True
