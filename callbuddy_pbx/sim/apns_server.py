"""A simulated Apple Push Notification service: APNs' provider API over HTTP/2 and TLS on loopback.

It checks what Apple checks of token-based requests (an ES256 provider token signed by the team's key, with the
right `kid` and `iss`, not older than an hour; a topic of the app; a known device token) and answers as Apple does,
with `{"reason": ...}` bodies. Tests make it fail on purpose (`fail`), mark tokens unregistered, and read the pushes
it took (`pushes`) and the provider tokens it saw (`provider_tokens`).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt

from callbuddy_pbx.sim.h2_server import H2Request, H2Response, H2Server

TOKEN_LIFETIME_S = 3600  # Apple refuses a provider token issued more than an hour ago
_PATH = re.compile(r"/3/device/([0-9A-Fa-f]{1,400})")
_MAX_PAYLOAD = {"voip": 5120}  # bytes; every other push type: 4096


@dataclass(frozen=True, slots=True)
class ReceivedPush:
    device_token: str
    headers: dict[str, str]
    payload: dict[str, Any]
    received_at: float = 0.0  # wall clock when the request arrived (H2Request.received_at)


@dataclass(slots=True)
class _Failure:
    status: int
    reason: str
    times: int
    retry_after: str | None


@dataclass(slots=True)
class ApnsServer:
    context: ssl.SSLContext  # the server's certificate (tests make it with trustme)
    team_id: str
    key_id: str
    public_key: Any  # the team key's public half (a cryptography EC public key, or its PEM)
    bundle_id: str
    known_tokens: set[str] = field(default_factory=set)
    unregistered: set[str] = field(default_factory=set)  # answered 410 Unregistered
    delay_s: float = 0.0  # an answer this late, for timeout tests
    pushes: list[ReceivedPush] = field(default_factory=list)
    provider_tokens: list[str] = field(default_factory=list)  # every authorization token seen, in order
    on_push: Callable[[ReceivedPush], None] | None = None  # the device side: a simulated phone receiving its pushes
    _failures: list[_Failure] = field(default_factory=list)
    _verified: dict[str, float] = field(default_factory=dict)  # provider token -> its iat, once its signature held
    _server: H2Server | None = None

    def fail(self, status: int, reason: str, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next `times` well-formed requests with this status and reason instead of taking them."""
        self._failures.append(_Failure(status, reason, times, retry_after))

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return self._server.url

    @property
    def connections(self) -> int:
        return self._server.connections if self._server is not None else 0

    async def start(self) -> None:
        self._server = H2Server(self._handle, self.context)
        await self._server.start()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _handle(self, request: H2Request) -> H2Response:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        match = _PATH.fullmatch(request.path)
        if request.method != "POST":
            return _error(405, "MethodNotAllowed")
        if match is None:
            return _error(404, "BadPath")
        refused = self._auth_problem(request.headers.get("authorization", ""))
        if refused is not None:
            return _error(403, refused)
        topic, push_type = request.headers.get("apns-topic", ""), request.headers.get("apns-push-type", "")
        if topic not in (self.bundle_id, f"{self.bundle_id}.voip"):
            return _error(400, "TopicDisallowed" if topic else "MissingTopic")
        if (push_type == "voip") != topic.endswith(".voip"):
            return _error(400, "InvalidPushType")
        if len(request.body) > _MAX_PAYLOAD.get(push_type, 4096):
            return _error(413, "PayloadTooLarge")
        try:
            payload = json.loads(request.body)
        except ValueError:
            return _error(400, "BadPayload")
        if not isinstance(payload, dict):
            return _error(400, "BadPayload")
        if self._failures:
            failure = self._failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
            extra = (("retry-after", failure.retry_after),) if failure.retry_after else ()
            return _error(failure.status, failure.reason, extra)
        token = match.group(1)
        if token in self.unregistered:
            body = json.dumps({"reason": "Unregistered", "timestamp": int(time.time() * 1000)}).encode()
            return H2Response(410, body, (("content-type", "application/json"),))
        if token not in self.known_tokens:
            return _error(400, "BadDeviceToken")
        push = ReceivedPush(token, request.headers, payload, request.received_at)
        self.pushes.append(push)
        if self.on_push is not None:
            self.on_push(push)
        apns_id = request.headers.get("apns-id") or str(uuid.uuid4()).upper()
        return H2Response(200, b"", (("apns-id", apns_id),))

    def _auth_problem(self, authorization: str) -> str | None:
        """Apple's reason for refusing the provider token, or None when it is good. A token's signature is checked
        once (Apple too validates a provider token once and then knows it); its age, on every push."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "MissingProviderToken"
        self.provider_tokens.append(token)
        issued_at = self._verified.get(token)
        if issued_at is None:
            try:
                header = jwt.get_unverified_header(token)
                if header.get("alg") != "ES256" or header.get("kid") != self.key_id:
                    return "InvalidProviderToken"
                claims = jwt.decode(
                    token,
                    self.public_key,
                    algorithms=["ES256"],
                    issuer=self.team_id,
                    options={"require": ["iss", "iat"], "verify_exp": False},
                )
            except jwt.PyJWTError:
                return "InvalidProviderToken"
            issued_at = self._verified[token] = float(claims["iat"])
        if time.time() - issued_at > TOKEN_LIFETIME_S:
            return "ExpiredProviderToken"
        return None


def _error(status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> H2Response:
    return H2Response(status, json.dumps({"reason": reason}).encode(), (("content-type", "application/json"), *headers))
