"""Apple Push Notification service: token-based pushes over HTTP/2 (push/http2).

A call push is a PushKit VoIP push (`apns-push-type: voip` to `<bundle>.voip`, priority 10, expiration 0 so a push
that cannot be delivered now is dropped rather than ringing late, collapse id = the call). iOS requires the app to
report every VoIP push to CallKit as a call, so the cancel is a normal alert push to the bundle topic with the same
call id and collapse id, which the app (or its notification extension) turns into "answered elsewhere"/"missed".

The provider token (an ES256 JWT with the key id and team id) is made once and reused: Apple refuses one older than
an hour and throttles a provider that makes new ones too often (TooManyProviderTokenUpdates), so it is renewed after
50 minutes, or at once when Apple says it expired.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import jwt

from callbuddy_pbx.config.push import ApnsConfig
from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.push.http2 import Http2Client
from callbuddy_pbx.push.sender import (
    CallPush,
    CancelReason,
    Pending,
    PushOutcome,
    PushResult,
    bounded_reason,
    retry_after,
    settle,
)

log = logging.getLogger(__name__)

PRODUCTION_URL = "https://api.push.apple.com"
SANDBOX_URL = "https://api.sandbox.push.apple.com"
TOKEN_REFRESH_S = 50 * 60  # Apple: renew at most once every 20 minutes, and before 60
MAX_COLLAPSE_ID_BYTES = 64
_UNREGISTERED_REASONS = ("BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken")
_CANCEL_TEXT = {CancelReason.ANSWERED_ELSEWHERE: "Answered elsewhere", CancelReason.CALLER_HUNG_UP: "Missed call"}


class ApnsSender:
    """Sends to APNs for one app. `base_url` replaces Apple's hosts (tests); `verify` is the TLS trust to use."""

    def __init__(
        self,
        credentials: ApnsConfig,
        *,
        base_url: str | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._base_url = base_url
        self._clock = clock
        self._team_id = credentials.team_id
        self._token: tuple[str, float] | None = None  # (provider token, issued at)
        self._client = Http2Client(verify, timeout_s)

    @property
    def provider(self) -> Provider:
        return Provider.APNS

    async def close(self) -> None:
        await self._client.aclose()

    def start_call(self, binding: PushBinding, call: CallPush) -> asyncio.Future[PushResult]:
        """Send the call push: written now when the connection to APNs is open; the future gives its answer."""
        payload = {
            "aps": {},
            "type": "call",
            "call_id": call.call_id,
            "caller_name": call.shown_name,
            "caller_number": call.caller_number,
        }
        headers = {
            "apns-push-type": "voip",
            "apns-topic": f"{self._credentials.bundle_id}.voip",
            "apns-expiration": "0",
            "apns-priority": "10",
            "apns-collapse-id": collapse_id(call.call_id),
        }
        return asyncio.ensure_future(
            self._send(binding, headers, payload, "call", self._begin(binding, headers, payload))
        )

    async def send_call(self, binding: PushBinding, call: CallPush) -> PushResult:
        return await self.start_call(binding, call)

    async def send_cancel(self, binding: PushBinding, call: CallPush, reason: CancelReason) -> PushResult:
        payload = {
            "aps": {"alert": {"title": _CANCEL_TEXT[reason], "body": call.shown_name or call.caller_number}},
            "type": "cancel",
            "reason": reason.value,
            "call_id": call.call_id,
        }
        headers = {
            "apns-push-type": "alert",
            "apns-topic": self._credentials.bundle_id,
            "apns-expiration": str(int(self._clock()) + 60),  # a cancel is still worth showing a minute later
            "apns-priority": "10",
            "apns-collapse-id": collapse_id(call.call_id),
        }
        return await self._send(binding, headers, payload, "cancel", self._begin(binding, headers, payload))

    def _begin(self, binding: PushBinding, headers: dict[str, str], payload: dict[str, Any]) -> Pending:
        """Check the binding and start the request (see `_request`)."""
        if binding.provider is not Provider.APNS:
            return PushResult(PushOutcome.BAD_REQUEST, reason=f"not an APNs binding ({binding.provider.value})")
        if binding.app not in (None, self._credentials.bundle_id) or binding.team_id not in (None, self._team_id):
            # The phone names another app: a token for it would not take our topic (and is not ours to push to).
            return PushResult(PushOutcome.BAD_REQUEST, reason="the binding names another app")
        return self._request(binding, headers, payload)

    async def _send(
        self, binding: PushBinding, headers: dict[str, str], payload: dict[str, Any], kind: str, first: Pending
    ) -> PushResult:
        result = await settle(first, "APNs", answer)
        if result.reason == "ExpiredProviderToken":  # our clock or Apple's: make a new token, once
            self._token = None
            result = await settle(self._request(binding, headers, payload), "APNs", answer)
        level = logging.INFO if result.sent else logging.WARNING
        log.log(level, "APNs %s push to %s: %s %s", kind, binding.masked_token, result.outcome.value, result.reason)
        return result

    def _request(self, binding: PushBinding, headers: dict[str, str], payload: dict[str, Any]) -> Pending:
        """The request, begun (the HTTP/2 client writes it at once when it can), or why it cannot be made."""
        base = self._base_url or service_url(self._credentials, binding)
        try:
            token = self.provider_token()
        except (jwt.PyJWTError, ValueError, TypeError):  # the key does not sign: config checks should have said
            return PushResult(PushOutcome.CREDENTIALS_REJECTED, reason="the APNs key cannot sign a provider token")
        return self._client.start(
            f"{base}/3/device/{binding.device_token}",
            {"authorization": f"bearer {token}", "apns-id": str(uuid.uuid4()), **headers},
            json.dumps(payload, separators=(",", ":")).encode(),
        )

    def provider_token(self) -> str:
        """The current provider token, made anew when it is TOKEN_REFRESH_S old."""
        now = self._clock()
        if self._token is None or now - self._token[1] >= TOKEN_REFRESH_S:
            credentials = self._credentials
            token = jwt.encode(
                {"iss": credentials.team_id, "iat": int(now)},
                credentials.private_key,
                algorithm="ES256",
                headers={"kid": credentials.key_id},
            )
            self._token = (token, now)
        return self._token[0]


def service_url(credentials: ApnsConfig, binding: PushBinding) -> str:
    """Apple's production or sandbox host: the binding's word when the phone said which (a development build's
    token is valid only in the sandbox), else the configured environment."""
    sandbox = credentials.sandbox if binding.sandbox is None else binding.sandbox
    return SANDBOX_URL if sandbox else PRODUCTION_URL


def collapse_id(call_id: str) -> str:
    """The call id as an apns-collapse-id, which Apple caps at 64 bytes."""
    return call_id.encode("utf-8")[:MAX_COLLAPSE_ID_BYTES].decode("utf-8", "ignore")


def answer(status: int, body: bytes, headers: Mapping[str, str]) -> PushResult:
    """What an APNs answer means for the binding and the call."""
    if status == HTTPStatus.OK:
        return PushResult(PushOutcome.SENT, status, push_id=headers.get("apns-id"))
    try:
        decoded = json.loads(body) if body else {}
        reason = str(decoded.get("reason", "")) if isinstance(decoded, dict) else ""
    except ValueError:
        reason = ""
    reason = bounded_reason(reason or f"HTTP {status}")
    if status == HTTPStatus.GONE or (status == HTTPStatus.BAD_REQUEST and reason in _UNREGISTERED_REASONS):
        return PushResult(PushOutcome.UNREGISTERED, status, reason)
    if status == HTTPStatus.FORBIDDEN:
        return PushResult(PushOutcome.CREDENTIALS_REJECTED, status, reason)
    if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return PushResult(PushOutcome.RETRY_LATER, status, reason, retry_after(headers.get("retry-after")))
    return PushResult(PushOutcome.BAD_REQUEST, status, reason)
