"""A simulated Firebase Cloud Messaging service: the OAuth2 token endpoint and the HTTP v1 `messages:send`, over
HTTP/2 and TLS on loopback.

The token endpoint checks the service account's RS256 assertion as Google does (signature, issuer, audience, scope,
an hour at most) and hands out short opaque access tokens; `messages:send` takes only those, and answers errors in
Google's shape (`error.status`, `details[].errorCode`). Tests make either fail on purpose and read what was sent;
`on_push` hands each message taken to the device side (a simulated phone, sim/mobile_phones.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jwt

from callbuddy_pbx.sim.h2_server import H2Request, H2Response, H2Server

TOKEN_PATH = "/token"  # noqa: S105 (a path)
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
_STATUS_WORDS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    headers: dict[str, str]
    message: dict[str, Any]  # the request's `message` object


@dataclass(slots=True)
class _Failure:
    status: int
    code: str
    times: int
    retry_after: str | None


@dataclass(slots=True)
class FcmServer:
    context: ssl.SSLContext
    project_id: str
    client_email: str
    public_key: Any  # the service account key's public half
    access_token_ttl_s: int = 3600
    known_tokens: set[str] = field(default_factory=set)
    unregistered: set[str] = field(default_factory=set)  # answered 404 UNREGISTERED
    delay_s: float = 0.0
    messages: list[ReceivedMessage] = field(default_factory=list)
    token_requests: int = 0  # requests to the token endpoint
    assertions: list[str] = field(default_factory=list)  # the JWTs those requests carried
    on_push: Callable[[ReceivedMessage], None] | None = None  # the device side: a simulated phone receiving its pushes
    _issued: dict[str, float] = field(default_factory=dict)  # access token -> expires at
    _send_failures: list[_Failure] = field(default_factory=list)
    _token_failures: list[_Failure] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _server: H2Server | None = None

    def fail(self, status: int, code: str, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next `times` authorised sends with this status and FCM error code."""
        self._send_failures.append(_Failure(status, code, times, retry_after))

    def fail_token(self, status: int, error: str, *, times: int = 1) -> None:
        """Answer the next `times` token requests with this status and OAuth2 error (e.g. 400 invalid_grant)."""
        self._token_failures.append(_Failure(status, error, times, None))

    def revoke_access_tokens(self) -> None:
        self._issued.clear()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return self._server.url

    @property
    def token_uri(self) -> str:
        return self.url + TOKEN_PATH

    async def start(self) -> None:
        self._server = H2Server(self._handle, self.context)
        await self._server.start()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _handle(self, request: H2Request) -> H2Response:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if request.method != "POST":
            return _google_error(405, "")
        if request.path == TOKEN_PATH:
            return self._token(request)
        match = _SEND_PATH.fullmatch(request.path)
        return self._send(request, match.group(1)) if match else _google_error(404, "")

    def _token(self, request: H2Request) -> H2Response:
        self.token_requests += 1
        if self._token_failures:
            failure = _take(self._token_failures)
            return _json(failure.status, {"error": failure.code, "error_description": "simulated"})
        form = parse_qs(request.body.decode("utf-8", "replace"))
        if form.get("grant_type") != [JWT_BEARER] or len(form.get("assertion", [])) != 1:
            return _json(400, {"error": "unsupported_grant_type"})
        self.assertions.append(form["assertion"][0])
        try:
            claims = jwt.decode(
                form["assertion"][0],
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=self.client_email,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.PyJWTError:
            return _json(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        if SCOPE not in str(claims["scope"]).split() or int(claims["exp"]) - int(claims["iat"]) > 3600:
            return _json(400, {"error": "invalid_scope" if SCOPE not in str(claims["scope"]) else "invalid_grant"})
        token = f"ya29.sim-{next(self._counter)}"
        self._issued[token] = time.time() + self.access_token_ttl_s
        return _json(200, {"access_token": token, "expires_in": self.access_token_ttl_s, "token_type": "Bearer"})

    def _send(self, request: H2Request, project: str) -> H2Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or self._issued.get(token, 0.0) < time.time():
            return _google_error(401, "")
        if project != self.project_id:
            return _google_error(403, "")
        try:
            body = json.loads(request.body)
            message = body["message"]
            device = message["token"]
            data = message.get("data", {})
        except (ValueError, KeyError, TypeError):
            return _google_error(400, "INVALID_ARGUMENT")
        if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
            return _google_error(400, "INVALID_ARGUMENT")  # data values must be strings
        if self._send_failures:
            failure = _take(self._send_failures)
            extra = (("retry-after", failure.retry_after),) if failure.retry_after else ()
            return _google_error(failure.status, failure.code, extra)
        if device in self.unregistered:
            return _google_error(404, "UNREGISTERED")
        if device not in self.known_tokens:
            return _google_error(400, "INVALID_ARGUMENT")
        received = ReceivedMessage(request.headers, message)
        self.messages.append(received)
        if self.on_push is not None:
            self.on_push(received)
        return _json(200, {"name": f"projects/{project}/messages/{next(self._counter)}"})


def _take(failures: list[_Failure]) -> _Failure:
    failure = failures[0]
    failure.times -= 1
    if failure.times <= 0:
        failures.pop(0)
    return failure


def _json(status: int, body: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> H2Response:
    return H2Response(status, json.dumps(body).encode(), (("content-type", "application/json"), *headers))


def _google_error(status: int, code: str, headers: tuple[tuple[str, str], ...] = ()) -> H2Response:
    error: dict[str, Any] = {"code": status, "message": "simulated", "status": _STATUS_WORDS.get(status, "UNKNOWN")}
    if code:
        error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
    return _json(status, {"error": error}, headers)
