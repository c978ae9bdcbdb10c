"""The owner's side of forwarded replies, run for real on loopback: an SMTP server (aiosmtpd) that keeps what it
receives, and a webhook receiver (aiohttp) that keeps each request and answers what the test scripts."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session


class Mailbox:
    """An SMTP server on 127.0.0.1. `refuse`: recipients answered 550 at RCPT; `on_data`: called with each message
    before it is accepted (a test reads the database there, at the moment the message is on the wire); `stall`:
    once set, a message is kept and its answer never comes (a server that took it, a reply lost)."""

    def __init__(self, *, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = set(refuse)
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.on_data: Callable[[EmailMessage], None] | None = None
        self.stall = asyncio.Event()
        self._released = asyncio.Event()  # ends every stalled answer (on stop)
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (on the port of the last start, if any: a server that comes back)."""
        loop = asyncio.get_running_loop()
        self._released = asyncio.Event()
        self._server = await loop.create_server(lambda: SMTP(self, hostname="mail.test"), "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle_RCPT(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if self.on_data is not None:
            self.on_data(message)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        if self.stall.is_set():
            await self._released.wait()  # no answer while the server runs
        return "250 2.0.0 queued"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Hook:
    """A webhook receiver on 127.0.0.1: keeps every request, answers the scripted statuses first, then 200."""

    requests: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/replies?key=k-123"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(dict(request.headers), body))
        status = self.statuses.popleft() if self.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/replies", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
