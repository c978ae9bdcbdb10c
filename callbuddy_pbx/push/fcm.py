"""Firebase Cloud Messaging, HTTP v1 API, authorised with a service account (OAuth2 JWT-bearer flow).

The service account's key signs an RS256 assertion that the key's `token_uri` trades for an access token; that token
is kept until shortly before it expires (an hour, as Google gives them), so a call push costs one request. A call is
a high-priority data message with a zero TTL (a push that cannot be delivered now must not ring later); the cancel
is a data message with the same call id, kept a minute.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import jwt

from callbuddy_pbx.config.push import FcmConfig
from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.push.http2 import Http2Client, Http2Error, Http2Response, Http2Timeout
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

FCM_URL = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
ASSERTION_LIFETIME_S = 3600  # Google's maximum
TOKEN_MARGIN_S = 300  # an access token is renewed this long before it expires
_UNREGISTERED_CODES = ("UNREGISTERED", "SENDER_ID_MISMATCH")  # the token can never receive from this project


class _TokenRefused(Exception):
    def __init__(self, result: PushResult) -> None:
        super().__init__(result.reason)
        self.result = result


class FcmSender:
    """Sends to FCM for one project. `base_url` replaces fcm.googleapis.com (tests); the token endpoint is the
    credentials' `token_uri`."""

    def __init__(
        self,
        credentials: FcmConfig,
        *,
        base_url: str = FCM_URL,
        verify: ssl.SSLContext | bool = True,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._base_url = base_url
        self._clock = clock
        self._access: tuple[str, float] | None = None  # (access token, renew at)
        self._client = Http2Client(verify, timeout_s)

    @property
    def provider(self) -> Provider:
        return Provider.FCM

    async def close(self) -> None:
        await self._client.aclose()

    def start_call(self, binding: PushBinding, call: CallPush) -> asyncio.Future[PushResult]:
        """Send the call push: written now when the connection and an access token are ready; the future gives its
        answer."""
        data = {
            "type": "call",
            "call_id": call.call_id,
            "caller_name": call.shown_name,
            "caller_number": call.caller_number,
        }
        return asyncio.ensure_future(self._send(binding, data, ttl="0s", kind="call"))

    async def send_call(self, binding: PushBinding, call: CallPush) -> PushResult:
        return await self.start_call(binding, call)

    async def send_cancel(self, binding: PushBinding, call: CallPush, reason: CancelReason) -> PushResult:
        data = {"type": "cancel", "call_id": call.call_id, "reason": reason.value}
        return await self._send(binding, data, ttl="60s", kind="cancel")

    def _send(self, binding: PushBinding, data: dict[str, str], *, ttl: str, kind: str) -> Awaitable[PushResult]:
        """Check the binding and begin the request now; the awaitable settles it."""
        if binding.provider is not Provider.FCM:
            return _done(PushResult(PushOutcome.BAD_REQUEST, reason=f"not an FCM binding ({binding.provider.value})"))
        app = binding.app
        # RFC 8599's pn-param names the project; Linphone's app-id is the numeric sender id, which cannot be checked.
        if app is not None and app != self._credentials.project_id and not app.isdigit():
            return _done(PushResult(PushOutcome.BAD_REQUEST, reason="the binding names another Firebase project"))
        message = {
            "message": {"token": binding.device_token, "data": data, "android": {"priority": "high", "ttl": ttl}}
        }
        return self._settle(binding, message, kind, self._begin(message))

    async def _settle(self, binding: PushBinding, message: dict[str, Any], kind: str, first: Pending) -> PushResult:
        result = await settle(first, "FCM", answer)
        if result.status == HTTPStatus.UNAUTHORIZED and self._access is not None:  # revoked early: a new one, once
            self._access = None
            result = await settle(self._post(message), "FCM", answer)
        level = logging.INFO if result.sent else logging.WARNING
        log.log(level, "FCM %s push to %s: %s %s", kind, binding.masked_token, result.outcome.value, result.reason)
        return result

    def _begin(self, message: dict[str, Any]) -> Pending:
        """With an access token at hand the request is written now; else it waits for one (`_post`)."""
        now = self._clock()
        if self._access is not None and now < self._access[1]:
            return self._request(self._access[0], message)
        return self._post(message)

    async def _post(self, message: dict[str, Any]) -> PushResult | Http2Response:
        try:
            access = await self.access_token()
        except _TokenRefused as refused:
            return refused.result
        return await self._request(access, message)

    def _request(self, access: str, message: dict[str, Any]) -> Coroutine[Any, Any, Http2Response]:
        url = f"{self._base_url}/v1/projects/{self._credentials.project_id}/messages:send"
        return self._client.start(
            url,
            {"authorization": f"Bearer {access}", "content-type": "application/json"},
            json.dumps(message, separators=(",", ":")).encode(),
        )

    async def access_token(self) -> str:
        """A valid OAuth2 access token, from the cache or from the token endpoint (`_TokenRefused` if it says no)."""
        now = self._clock()
        if self._access is not None and now < self._access[1]:
            return self._access[0]
        credentials = self._credentials
        try:
            assertion = jwt.encode(
                {
                    "iss": credentials.client_email,
                    "scope": SCOPE,
                    "aud": credentials.token_uri,
                    "iat": int(now),
                    "exp": int(now) + ASSERTION_LIFETIME_S,
                },
                credentials.private_key,
                algorithm="RS256",
                headers={"kid": credentials.private_key_id} if credentials.private_key_id else None,
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise _TokenRefused(
                PushResult(PushOutcome.CREDENTIALS_REJECTED, reason="the service-account key cannot sign")
            ) from None
        form = urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
        try:
            response = await self._client.post(
                credentials.token_uri, {"content-type": "application/x-www-form-urlencoded"}, form.encode()
            )
        except Http2Timeout:
            raise _TokenRefused(
                PushResult(PushOutcome.RETRY_LATER, reason="no answer from the token endpoint")
            ) from None
        except Http2Error as exc:
            reason = bounded_reason(f"token endpoint unreachable: {exc}")
            raise _TokenRefused(PushResult(PushOutcome.RETRY_LATER, reason=reason)) from None
        return self._keep_token(response)

    def _keep_token(self, response: Http2Response) -> str:
        status = response.status
        try:
            body = json.loads(response.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        token, expires_in = body.get("access_token"), body.get("expires_in", 3600)
        if status == HTTPStatus.OK and isinstance(token, str) and token and isinstance(expires_in, int | float):
            # Renewed TOKEN_MARGIN_S early, but never sooner than half its life (a short-lived token in tests).
            self._access = (token, self._clock() + max(expires_in - TOKEN_MARGIN_S, expires_in / 2))
            return token
        reason = bounded_reason(f"token endpoint: {body.get('error') or f'HTTP {status}'}")
        if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            result = PushResult(
                PushOutcome.RETRY_LATER, status, reason, retry_after(response.headers.get("retry-after"))
            )
        else:  # invalid_grant (a deleted or disabled key), invalid_client, or an answer that is not a token
            result = PushResult(PushOutcome.CREDENTIALS_REJECTED, status, reason)
        raise _TokenRefused(result)


async def _done(result: PushResult) -> PushResult:
    return result


def answer(status: int, body: bytes, headers: Mapping[str, str]) -> PushResult:
    """What an FCM v1 answer means for the binding and the call."""
    try:
        decoded = json.loads(body) if body else {}
    except ValueError:
        decoded = {}
    if not isinstance(decoded, dict):
        decoded = {}
    if status == HTTPStatus.OK:
        name = decoded.get("name")
        return PushResult(PushOutcome.SENT, status, push_id=name if isinstance(name, str) else None)
    code = _error_code(decoded)
    reason = bounded_reason(code or f"HTTP {status}")
    if code in _UNREGISTERED_CODES or status == HTTPStatus.NOT_FOUND:
        return PushResult(PushOutcome.UNREGISTERED, status, reason)
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN) or code == "THIRD_PARTY_AUTH_ERROR":
        return PushResult(PushOutcome.CREDENTIALS_REJECTED, status, reason)
    if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return PushResult(PushOutcome.RETRY_LATER, status, reason, retry_after(headers.get("retry-after")))
    return PushResult(PushOutcome.BAD_REQUEST, status, reason)


def _error_code(decoded: dict[str, Any]) -> str:
    """FCM's own error code (`details[].errorCode`), else the Google status word (`error.status`)."""
    error = decoded.get("error")
    if not isinstance(error, dict):
        return ""
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and isinstance(detail.get("errorCode"), str):
            return str(detail["errorCode"])
    status = error.get("status")
    return status if isinstance(status, str) else ""
