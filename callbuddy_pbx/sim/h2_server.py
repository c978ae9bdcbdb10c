"""A small HTTP/2-over-TLS server on loopback, for the simulated push services (APNs speaks nothing but HTTP/2).

Built on `h2` directly (as the push clients are, push/http2) rather than on an ASGI server: the simulators need a
few dozen lines of request handling, and this keeps the frames, ALPN and TLS exactly as a real push service has
them, with no server framework to install. Each request is read whole, handed to the handler, and answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

MAX_BODY_BYTES = 64 * 1024  # push requests are a few KiB; a bigger one is answered 413 unread


@dataclass(frozen=True, slots=True)
class H2Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names (HTTP/2 has no others); pseudo-headers left out
    body: bytes
    received_at: float = 0.0  # wall clock when its last frame was read off the socket (before any handling)


@dataclass(frozen=True, slots=True)
class H2Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = field(default=())


Handler = Callable[[H2Request], Awaitable[H2Response]]


def server_tls(context: ssl.SSLContext) -> ssl.SSLContext:
    """A server context (with its certificate loaded) made to offer only HTTP/2, as APNs and FCM do."""
    context.set_alpn_protocols(["h2"])
    return context


class H2Server:
    """Serves `handler` on 127.0.0.1 at a free port over TLS (`context` holds the certificate) and HTTP/2."""

    def __init__(self, handler: Handler, context: ssl.SSLContext) -> None:
        self._handler = handler
        self._context = server_tls(context)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.connections = 0  # TLS connections accepted so far: clients should keep one open

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        try:
            while data := await reader.read(65536):
                arrived = time.time()
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {str(name): str(value) for name, value in event.headers or ()}
                        streams[event.stream_id] = (headers, bytearray())
                    elif isinstance(event, h2.events.DataReceived) and event.stream_id in streams:
                        streams[event.stream_id][1].extend(event.data or b"")
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded) and event.stream_id in streams:
                        headers, body = streams.pop(event.stream_id)
                        self._spawn(self._answer(conn, writer, event.stream_id, headers, bytes(body), arrived))
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                writer.write(conn.data_to_send())
                await writer.drain()
        except (h2.exceptions.ProtocolError, ConnectionError, ssl.SSLError):
            return
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self,
        conn: h2.connection.H2Connection,
        writer: asyncio.StreamWriter,
        stream: int,
        headers: dict[str, str],
        body: bytes,
        arrived: float,
    ) -> None:
        request = H2Request(
            method=headers.get(":method", ""),
            path=headers.get(":path", ""),
            headers={name: value for name, value in headers.items() if not name.startswith(":")},
            body=body,
            received_at=arrived,
        )
        response = (
            H2Response(413, b'{"reason":"PayloadTooLarge"}')
            if len(body) > MAX_BODY_BYTES
            else await self._handler(request)
        )
        if writer.is_closing():
            return
        try:
            conn.send_headers(
                stream,
                [(":status", str(response.status)), ("content-length", str(len(response.body))), *response.headers],
                end_stream=not response.body,
            )
            if response.body:
                conn.send_data(stream, response.body, end_stream=True)
            writer.write(conn.data_to_send())
        except h2.exceptions.H2Error:  # the client reset the stream or went away while the handler ran
            return
