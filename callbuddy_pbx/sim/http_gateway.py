"""A local stand-in for Twilio's Messages API, for tests and the demo (aiohttp server on a free loopback port).

It answers like Twilio: POST /2010-04-01/Accounts/{sid}/Messages.json with HTTP Basic auth creates a message
(201 and its JSON with `sid`); a wrong account or password is 401 (error 20003); a missing or malformed To is
400 (21604 / 21211). `fail_next()` scripts failures (429 with Retry-After, 500, any 4xx with Twilio's error JSON).
Every request is recorded. `send_status()` and `send_inbound()` fire signed webhooks as Twilio would; with
`auto_statuses`, each accepted message gets those status callbacks (e.g. "sent", "delivered") by itself.

The X-Twilio-Signature computed here is written independently of the gateway's validator, so a test where both
agree checks something.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import logging
import re
import secrets
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

_E164 = re.compile(r"\+[1-9]\d{6,14}")


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's request signature: base64(HMAC-SHA1(token, url + name1 + value1 + name2 + value2 ...))."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    mac = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    form: dict[str, str]
    authorized: bool  # the Authorization header matched the account (the header itself is not kept)
    status: int  # what the fake answered


@dataclass(frozen=True, slots=True)
class FakeMessage:
    sid: str
    to: str
    sender: str
    body: str
    status_callback: str | None


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    status: int
    code: int
    message: str
    retry_after: str | None = None


@dataclass
class FakeTwilioApi:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    auto_statuses: Sequence[str] = ()  # status callbacks fired for each accepted message, in order
    requests: list[RecordedRequest] = field(default_factory=list)
    messages: list[FakeMessage] = field(default_factory=list)
    callbacks: list[tuple[str, dict[str, str], int]] = field(default_factory=list)  # (url, params, our answer)

    def __post_init__(self) -> None:
        self._failures: deque[ScriptedFailure] = deque()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sids = itertools.count(1)

    # -- life cycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create_message)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        for address in self._runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
                break
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTwilioApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The API base, as a gateway's `url`."""
        return f"http://{self.host}:{self.port}"

    # -- scripting --------------------------------------------------------------------------------------------------

    def fail_next(
        self, status: int, code: int, message: str, *, retry_after: str | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` message requests with this error (Twilio's error JSON)."""
        self._failures.extend([ScriptedFailure(status, code, message, retry_after)] * times)

    # -- the API ----------------------------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode())

    async def _create_message(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        authorized = self._authorized(request) and request.match_info["sid"] == self.account_sid
        response = self._answer(authorized, form)
        self.requests.append(RecordedRequest(request.method, request.path, form, authorized, response.status))
        return response

    def _answer(self, authorized: bool, form: dict[str, str]) -> web.Response:
        if not authorized:
            return _error(401, 20003, "Authenticate")
        if self._failures:
            failure = self._failures.popleft()
            headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else None
            return _error(failure.status, failure.code, failure.message, headers)
        to = form.get("To", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not _E164.fullmatch(to):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not form.get("Body"):
            return _error(400, 21602, "Message body is required.")
        message = FakeMessage(
            sid=f"SM{next(self._sids):032x}",
            to=to,
            sender=form.get("From", ""),
            body=form["Body"],
            status_callback=form.get("StatusCallback"),
        )
        self.messages.append(message)
        if self.auto_statuses and message.status_callback:
            self._spawn(self._auto_callbacks(message))
        return web.json_response(_resource(self.account_sid, message, "queued"), status=201)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _auto_callbacks(self, message: FakeMessage) -> None:
        for status in self.auto_statuses:
            await asyncio.sleep(0.01)
            try:
                await self.send_status(message, status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("fake Twilio: status callback for %s failed: %r", message.sid, exc)

    # -- webhooks, as Twilio sends them -----------------------------------------------------------------------------

    async def send_status(
        self,
        message: FakeMessage | str,
        status: str,
        *,
        error_code: str | None = None,
        url: str | None = None,
        signature: str | None = None,
    ) -> int:
        """POST a status callback for `message` (or a sid) to its StatusCallback (or `url`); the HTTP status we got.

        `signature` replaces the computed one ("" sends none): for testing forged callbacks.
        """
        sid = message if isinstance(message, str) else message.sid
        target = url or (message.status_callback if isinstance(message, FakeMessage) else None)
        if not target:
            raise ValueError(f"no status callback URL for {sid}")
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": self.account_sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "ApiVersion": "2010-04-01",
        }
        if isinstance(message, FakeMessage):
            params.update({"To": message.to, "From": message.sender})
        if error_code is not None:
            params["ErrorCode"] = error_code
        return await self.post_signed(target, params, signature=signature)

    async def send_inbound(self, url: str, *, sender: str, to: str, body: str, signature: str | None = None) -> int:
        """POST an incoming text to a messaging webhook, as Twilio does when a phone writes to our number."""
        params = {
            "MessageSid": f"SM{secrets.token_hex(16)}",
            "AccountSid": self.account_sid,
            "From": sender,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }
        return await self.post_signed(url, params, signature=signature)

    async def post_signed(self, url: str, params: dict[str, str], *, signature: str | None = None) -> int:
        if self._client is None:
            raise RuntimeError("the fake Twilio API is not started")
        value = sign(self.auth_token, url, params) if signature is None else signature
        headers = {"X-Twilio-Signature": value} if value else {}
        async with self._client.post(url, data=params, headers=headers) as response:
            await response.read()
            self.callbacks.append((url, params, response.status))
            return response.status


def _error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": more_info, "status": status}
    return web.json_response(body, status=status, headers=headers)


def _resource(account_sid: str, message: FakeMessage, status: str) -> dict[str, Any]:
    return {
        "sid": message.sid,
        "account_sid": account_sid,
        "to": message.to,
        "from": message.sender,
        "body": message.body,
        "status": status,
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "error_code": None,
        "error_message": None,
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{message.sid}.json",
    }
