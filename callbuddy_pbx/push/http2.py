"""The HTTP/2 client both push services are reached with: one connection per service, kept open and shared by every
push (Apple asks providers not to open one per push), on `h2` (the protocol) and asyncio (the socket).

Why not a general HTTP client: httpx with its HTTP/2 extra took about 3 ms of CPU per push here, most of it in its
connection pool and per-request async-library detection, which put a burst of 50 calls' pushes 150 ms behind the
first (bench/push.py). A push is one small POST on a connection that is already open, so this module does only that:
a request is written to the socket in the same step as the `post` that makes it (no pool, no queue, no task).

What it guards against, since a push that hangs holds a ringing call:
- every request has one deadline for connecting, waiting for a free stream and the answer;
- a request the server says it never processed (GOAWAY past its stream, REFUSED_STREAM) is sent again, once, on a
  new connection; one that may have been processed (the connection died under it) is not: the caller decides;
- an idle connection is pinged; one that does not answer within the request timeout is dropped (a half-open
  connection behind a NAT would otherwise eat the next call's push);
- the server's MAX_CONCURRENT_STREAMS and flow-control windows are obeyed (a request waits for its turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from callbuddy_pbx.push.quiet_logs import hide_push_secrets

MAX_RESPONSE_BYTES = 64 * 1024  # push services answer with a few hundred bytes; more is not a push answer
KEEPALIVE_IDLE_S = 60.0  # an idle connection is pinged this often


class Http2Error(Exception):
    """No answer: the service could not be reached, the connection was lost, or the answer broke the protocol."""


class Http2Timeout(Http2Error):
    """No answer within the request's deadline."""


class _NotProcessed(Http2Error):
    """The server said it did not act on the request (GOAWAY past it, REFUSED_STREAM): safe to send again."""


@dataclass(frozen=True, slots=True)
class Http2Response:
    status: int
    headers: Mapping[str, str]  # lower-case names, as HTTP/2 has them
    body: bytes


@dataclass(frozen=True, slots=True)
class _Sent:
    connection: _Connection
    stream_id: int
    answer: asyncio.Future[Http2Response]


@dataclass(slots=True)
class _Stream:
    answer: asyncio.Future[Http2Response]
    unsent: bytes  # request body waiting for flow-control window
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection: requests in, answers out, every failure turned into the waiting requests' errors."""

    def __init__(self, authority: str) -> None:
        self._authority = authority
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._room = asyncio.Event()  # set while a new stream may be opened
        self._pings: dict[bytes, asyncio.Future[None]] = {}
        self.closed = False
        self.going_away = False
        self.last_heard = time.monotonic()

    # -- asyncio.Protocol ------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._h2.initiate_connection()
        self._flush()
        self._room.set()

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._abort(Http2Error(f"protocol error from the server: {type(exc).__name__}"))
            return
        for event in events:
            self._on_event(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(Http2Error("the connection was lost"))

    # -- requests --------------------------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not self.closed and not self.going_away

    def has_room(self) -> bool:
        return self._h2.open_outbound_streams < self._h2.remote_settings.max_concurrent_streams

    async def room(self) -> None:
        """Wait until a new stream may be opened (the server's MAX_CONCURRENT_STREAMS)."""
        while self.usable and not self.has_room():
            self._room.clear()
            await self._room.wait()
        if not self.usable:
            raise _NotProcessed("the connection closed before the request was sent")

    def send(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> _Sent:
        """Write the request now; its answer comes in the future (kept by the caller: the answer may come before
        anyone awaits it)."""
        stream_id = self._h2.get_next_available_stream_id()
        request_headers = [
            (":method", method),
            (":scheme", "https"),
            (":authority", self._authority),
            (":path", path),
            *((name.lower(), value) for name, value in headers.items()),
            ("content-length", str(len(body))),
        ]
        self._h2.send_headers(stream_id, request_headers, end_stream=not body)
        answer: asyncio.Future[Http2Response] = asyncio.get_running_loop().create_future()
        self._streams[stream_id] = _Stream(answer, body)
        self._send_body(stream_id)
        self._flush()
        return _Sent(self, stream_id, answer)

    def forget(self, stream_id: int) -> None:
        """The caller stopped waiting (deadline, cancel): reset the stream so the server stops too."""
        stream = self._streams.pop(stream_id, None)
        if stream is None or self.closed:
            return
        with contextlib.suppress(h2.exceptions.H2Error):
            self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            self._flush()
        self._room.set()

    async def ping(self, timeout_s: float) -> bool:
        """True when the server answers a PING within `timeout_s` (the connection is alive)."""
        if not self.usable:
            return False
        data = time.monotonic_ns().to_bytes(8, "big")
        acked = self._pings[data] = asyncio.get_running_loop().create_future()
        try:
            self._h2.ping(data)
            self._flush()
            async with asyncio.timeout(timeout_s):
                await acked
        except (TimeoutError, Http2Error, h2.exceptions.H2Error):
            return False
        finally:
            self._pings.pop(data, None)
        return True

    def close(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(h2.exceptions.H2Error):
            self._h2.close_connection()
            self._flush()
        self._abort(Http2Error("the connection was closed"))

    # -- internals -------------------------------------------------------------------------------------------------

    def _send_body(self, stream_id: int) -> None:
        """As much of the body as the flow-control windows allow; the rest waits for a WINDOW_UPDATE."""
        stream = self._streams.get(stream_id)
        if stream is None or not stream.unsent:
            return
        window = min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
        if window <= 0:
            return
        chunk, stream.unsent = stream.unsent[:window], stream.unsent[window:]
        self._h2.send_data(stream_id, chunk, end_stream=not stream.unsent)

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                for raw_name, raw_value in event.headers or ():
                    name, value = _text(raw_name), _text(raw_value)
                    if name == ":status":
                        stream.status = int(value) if value.isdigit() else 0
                    else:
                        stream.headers[name] = value
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.body.extend(event.data or b"")
                if len(stream.body) > MAX_RESPONSE_BYTES:
                    self._end(event.stream_id, Http2Error("the answer is too long"))
                    self.forget(event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._streams.pop(event.stream_id, None)
            if stream is not None and not stream.answer.done():
                stream.answer.set_result(Http2Response(stream.status, stream.headers, bytes(stream.body)))
            self._stream_done()
        elif isinstance(event, h2.events.StreamReset):
            refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
            self._end(event.stream_id, (_NotProcessed if refused else Http2Error)("the server reset the request"))
            self._stream_done()
        elif isinstance(event, h2.events.WindowUpdated):
            for stream_id in list(self._streams):
                self._send_body(stream_id)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._room.set()
        elif isinstance(event, h2.events.PingAckReceived):
            acked = self._pings.get(event.ping_data or b"")
            if acked is not None and not acked.done():
                acked.set_result(None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._going_away(event.last_stream_id)

    def _going_away(self, last_stream_id: int | None) -> None:
        """GOAWAY: requests after `last_stream_id` were never processed; those before it still get their answers."""
        self.going_away = True
        self._room.set()
        for stream_id in list(self._streams):
            if last_stream_id is None or stream_id > last_stream_id:
                self._end(stream_id, _NotProcessed("the server is closing the connection"))
        self._stream_done()

    def _stream_done(self) -> None:
        """A stream ended: room for another, and a connection going away closes with its last answer."""
        self._room.set()
        if self.going_away and not self._streams and self._transport is not None:
            self._transport.close()

    def _end(self, stream_id: int, error: Http2Error) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None and not stream.answer.done():
            stream.answer.set_exception(error)

    def _fail_all(self, error: Http2Error) -> None:
        self.closed = True
        self._room.set()
        for stream_id in list(self._streams):
            self._end(stream_id, error)
        for acked in self._pings.values():
            if not acked.done():
                acked.set_exception(error)

    def _abort(self, error: Http2Error) -> None:
        self._fail_all(error)
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


class Http2Client:
    """POSTs over HTTP/2 and TLS, one open connection per origin. `verify` is the TLS trust (True: the system's)."""

    def __init__(self, verify: ssl.SSLContext | bool, timeout_s: float) -> None:
        hide_push_secrets()
        self._tls = _client_tls(verify)
        self._timeout_s = timeout_s
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._connecting: dict[tuple[str, int], asyncio.Future[_Connection]] = {}
        self._keepalives: set[asyncio.Task[None]] = set()
        self.connections_made = 0

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Http2Response:
        """The answer to one POST; Http2Timeout past the deadline, Http2Error when there is none to be had."""
        return await self.start(url, headers, body)

    def start(self, url: str, headers: Mapping[str, str], body: bytes) -> Coroutine[Any, Any, Http2Response]:
        """Begin a POST: on an open connection with a free stream it is written before this returns (a call's push
        leaves in the same step as the StasisStart that asked for it); await what is returned for the answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        target = _target(url)
        if isinstance(target, Http2Error):
            return _raise(target)
        origin, path = target
        connection = self._connections.get(origin)
        written: _Sent | None = None
        if connection is not None and connection.usable and connection.has_room():
            with contextlib.suppress(h2.exceptions.H2Error):  # a connection h2 says is done: the slow path
                written = connection.send("POST", path, headers, body)
        return self._finish(origin, path, headers, body, deadline, written)

    async def aclose(self) -> None:
        for task in list(self._keepalives):
            task.cancel()
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    async def _finish(
        self,
        origin: tuple[str, int],
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        deadline: float,
        written: _Sent | None,
    ) -> Http2Response:
        asked_at = time.monotonic()
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    if written is not None:
                        return await _answer(written)
                    return await self._exchange(origin, path, headers, body)
                except _NotProcessed:  # the server never acted on it: once more, on a new connection
                    return await self._exchange(origin, path, headers, body)
        except TimeoutError:
            connection = self._connections.get(origin)
            if connection is not None and connection.last_heard < asked_at:  # silent throughout: half-open
                connection.close()
            raise Http2Timeout("no answer in time") from None

    async def _exchange(
        self, origin: tuple[str, int], path: str, headers: Mapping[str, str], body: bytes
    ) -> Http2Response:
        connection = self._connections.get(origin)
        if connection is None or not connection.usable:
            connection = await self._connect(origin)
        await connection.room()
        return await _answer(connection.send("POST", path, headers, body))

    async def _connect(self, origin: tuple[str, int]) -> _Connection:
        """A new connection to `origin`, shared by every request that asks while it is being made."""
        pending = self._connecting.get(origin)
        if pending is None:
            pending = asyncio.ensure_future(self._open(origin))
            self._connecting[origin] = pending
            pending.add_done_callback(lambda _: self._connecting.pop(origin, None))
        return await asyncio.shield(pending)

    async def _open(self, origin: tuple[str, int]) -> _Connection:
        host, port = origin
        authority = host if port == 443 else f"{host}:{port}"
        loop = asyncio.get_running_loop()
        try:
            transport, connection = await loop.create_connection(
                lambda: _Connection(authority), host, port, ssl=self._tls, server_hostname=host
            )
        except (OSError, ssl.SSLError) as exc:
            raise Http2Error(f"cannot connect: {type(exc).__name__}") from None
        tls = transport.get_extra_info("ssl_object")
        if tls is None or tls.selected_alpn_protocol() != "h2":
            transport.close()
            raise Http2Error("the server does not speak HTTP/2")
        old = self._connections.get(origin)
        if old is not None:
            old.close()
        self._connections[origin] = connection
        self.connections_made += 1
        keepalive = loop.create_task(self._keep_alive(origin, connection))
        self._keepalives.add(keepalive)
        keepalive.add_done_callback(self._keepalives.discard)
        return connection

    async def _keep_alive(self, origin: tuple[str, int], connection: _Connection) -> None:
        """Ping the connection when it has been quiet; drop it when the ping goes unanswered."""
        while connection.usable:
            quiet = time.monotonic() - connection.last_heard
            if quiet < KEEPALIVE_IDLE_S:
                await asyncio.sleep(KEEPALIVE_IDLE_S - quiet)
                continue
            if not await connection.ping(self._timeout_s):
                connection.close()
        if self._connections.get(origin) is connection:
            del self._connections[origin]


async def _answer(sent: _Sent) -> Http2Response:
    try:
        return await sent.answer
    finally:
        sent.connection.forget(sent.stream_id)


async def _raise(error: Http2Error) -> Http2Response:
    raise error


def _target(url: str) -> tuple[tuple[str, int], str] | Http2Error:
    """(host, port) and path of an https URL."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return Http2Error("push services are reached over https only")
    return (parts.hostname, parts.port or 443), parts.path + (f"?{parts.query}" if parts.query else "")


def _text(value: bytes | str) -> str:
    """A header as text (the connection decodes them as UTF-8 already; h2's types say bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _client_tls(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif verify:
        context = ssl.create_default_context()
    else:  # an installer's explicit choice, for a test service behind a self-signed certificate
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    return context
