"""The push services' HTTP/2 client under faults: a server that goes away, refuses, drops the link, goes silent,
limits its streams or windows. A push that hangs holds a ringing call, and one sent twice rings a phone twice.

The server here is h2 on a real TLS socket, scripted per request (the simulated APNs and FCM in sim/ answer like the
real services; this one misbehaves like a network)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import pytest
import trustme

from callbuddy_pbx.push import http2
from callbuddy_pbx.push.http2 import Http2Client, Http2Error, Http2Timeout
from tests.push_servers import ca, client_tls, server_tls

__all__ = ["ca", "client_tls"]  # fixtures


@dataclass
class Seen:
    connection: int
    stream_id: int
    body: bytes


@dataclass
class ScriptedServer:
    """Each request is handed to `script(server, seen, conn, writer)`, which answers it or misbehaves."""

    tls: ssl.SSLContext
    script: Callable[[ScriptedServer, Seen, h2.connection.H2Connection, asyncio.StreamWriter], Awaitable[None]]
    max_streams: int | None = None
    window: int | None = None
    answer_pings: bool = True
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    open_streams: int = 0
    most_open: int = 0
    server: asyncio.Server | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/3/device/abc"

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.writers.append(writer)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        settings: dict[h2.settings.SettingCodes | int, int] = {}
        if self.max_streams is not None:
            settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = self.max_streams
        if self.window is not None:
            settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = self.window
        if settings:
            conn.update_settings(settings)
        writer.write(conn.data_to_send())
        bodies: dict[int, bytearray] = {}
        with contextlib.suppress(ConnectionError, ssl.SSLError, h2.exceptions.ProtocolError):
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        bodies[event.stream_id] = bytearray()
                        self.open_streams += 1
                        self.most_open = max(self.most_open, self.open_streams)
                    elif isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id].extend(event.data or b"")
                        if self.window is None:
                            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                        else:  # a slow reader: the window opens again a little later
                            asyncio.get_running_loop().call_later(
                                0.01, self._ack, conn, writer, event.flow_controlled_length, event.stream_id
                            )
                    elif isinstance(event, h2.events.StreamEnded):
                        seen = Seen(number, event.stream_id, bytes(bodies.pop(event.stream_id)))
                        self.seen.append(seen)
                        task = asyncio.ensure_future(self._answer(seen, conn, writer))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
                if self.answer_pings:
                    writer.write(conn.data_to_send())
                else:  # h2 acknowledges pings by itself: a silent peer sends nothing at all
                    conn.data_to_send()

    @staticmethod
    def _ack(conn: h2.connection.H2Connection, writer: asyncio.StreamWriter, size: int, stream_id: int) -> None:
        with contextlib.suppress(Exception):
            conn.acknowledge_received_data(size, stream_id)
            writer.write(conn.data_to_send())

    async def _answer(self, seen: Seen, conn: h2.connection.H2Connection, writer: asyncio.StreamWriter) -> None:
        try:
            await self.script(self, seen, conn, writer)
        finally:
            self.open_streams -= 1


def respond(conn: h2.connection.H2Connection, writer: asyncio.StreamWriter, stream_id: int, body: bytes) -> None:
    conn.send_headers(stream_id, [(":status", "200"), ("apns-id", f"id-{stream_id}")], end_stream=not body)
    if body:
        conn.send_data(stream_id, body, end_stream=True)
    writer.write(conn.data_to_send())


async def answer_ok(server: ScriptedServer, seen: Seen, conn: h2.connection.H2Connection, writer: Any) -> None:
    respond(conn, writer, seen.stream_id, b"")


@pytest.fixture
async def make_server(ca: trustme.CA) -> AsyncIterator[Callable[..., Awaitable[tuple[ScriptedServer, str]]]]:
    servers: list[ScriptedServer] = []

    async def make(script: Callable[..., Awaitable[None]], **options: Any) -> tuple[ScriptedServer, str]:
        tls = server_tls(ca)
        tls.set_alpn_protocols(["h2"])
        server = ScriptedServer(tls, script, **options)
        servers.append(server)
        return server, await server.start()

    yield make
    for server in servers:
        await server.close()


async def test_requests_share_one_connection_and_get_their_own_answers(make_server: Any, client_tls: Any) -> None:
    server, url = await make_server(answer_ok)
    client = Http2Client(client_tls, timeout_s=2)
    answers = await asyncio.gather(*(client.post(url, {"x-n": str(n)}, b"{}") for n in range(20)))
    assert sorted(answer.headers["apns-id"] for answer in answers) == sorted(f"id-{s.stream_id}" for s in server.seen)
    assert {answer.status for answer in answers} == {200}
    assert server.connections == 1
    await client.aclose()


async def test_a_request_the_server_goes_away_before_is_sent_again_once(make_server: Any, client_tls: Any) -> None:
    async def go_away_first(server: ScriptedServer, seen: Seen, conn: Any, writer: Any) -> None:
        if seen.connection == 1:  # "I did not act on it": GOAWAY naming no stream processed
            conn.close_connection(last_stream_id=0)
            writer.write(conn.data_to_send())
        else:
            respond(conn, writer, seen.stream_id, b"")

    server, url = await make_server(go_away_first)
    client = Http2Client(client_tls, timeout_s=2)
    answer = await client.post(url, {}, b'{"n":1}')
    assert answer.status == 200
    assert [(s.connection, s.body) for s in server.seen] == [(1, b'{"n":1}'), (2, b'{"n":1}')]
    await client.aclose()


async def test_a_refused_stream_is_sent_again_once(make_server: Any, client_tls: Any) -> None:
    async def refuse_always(server: ScriptedServer, seen: Seen, conn: Any, writer: Any) -> None:
        conn.reset_stream(seen.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
        writer.write(conn.data_to_send())

    server, url = await make_server(refuse_always)
    client = Http2Client(client_tls, timeout_s=2)
    with pytest.raises(Http2Error):
        await client.post(url, {}, b"{}")
    assert len(server.seen) == 2  # once more, and no more
    await client.aclose()


async def test_a_request_the_link_dies_under_is_never_sent_twice(make_server: Any, client_tls: Any) -> None:
    async def drop(server: ScriptedServer, seen: Seen, conn: Any, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()  # it may have been acted on: the caller decides, the client does not resend

    server, url = await make_server(drop)
    client = Http2Client(client_tls, timeout_s=2)
    with pytest.raises(Http2Error) as raised:
        await client.post(url, {}, b"{}")
    assert not isinstance(raised.value, Http2Timeout)
    assert len(server.seen) == 1
    await client.aclose()


async def test_a_server_that_goes_silent_costs_one_timeout_then_a_new_connection(
    make_server: Any, client_tls: Any
) -> None:
    async def answer_then_hang(server: ScriptedServer, seen: Seen, conn: Any, writer: Any) -> None:
        if len(server.seen) == 1 or seen.connection > 1:
            respond(conn, writer, seen.stream_id, b"")
        # else: nothing, ever (a link that died without a FIN)

    server, url = await make_server(answer_then_hang)
    client = Http2Client(client_tls, timeout_s=0.3)
    assert (await client.post(url, {}, b"{}")).status == 200
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Http2Timeout):
        await client.post(url, {}, b"{}")
    assert loop.time() - started < 1.0  # the deadline holds
    assert (await client.post(url, {}, b"{}")).status == 200
    assert server.connections == 2
    await client.aclose()


async def test_the_servers_stream_limit_is_obeyed(make_server: Any, client_tls: Any) -> None:
    async def slowly(server: ScriptedServer, seen: Seen, conn: Any, writer: Any) -> None:
        await asyncio.sleep(0.02)
        respond(conn, writer, seen.stream_id, b"")

    server, url = await make_server(slowly, max_streams=2)
    client = Http2Client(client_tls, timeout_s=5)
    await client.post(url, {}, b"{}")  # the server's settings are known after the first exchange
    answers = await asyncio.gather(*(client.post(url, {}, b"{}") for _ in range(8)))
    assert {answer.status for answer in answers} == {200}
    assert server.most_open == 2
    await client.aclose()


async def test_a_body_bigger_than_the_window_arrives_whole(make_server: Any, client_tls: Any) -> None:
    server, url = await make_server(answer_ok, window=1000)
    client = Http2Client(client_tls, timeout_s=5)
    await client.post(url, {}, b"{}")
    body = bytes(range(256)) * 40  # 10 KiB through a 1,000-byte window
    assert (await client.post(url, {}, body)).status == 200
    assert server.seen[-1].body == body
    await client.aclose()


async def test_an_endless_answer_is_cut_off(make_server: Any, client_tls: Any) -> None:
    async def flood(server: ScriptedServer, seen: Seen, conn: Any, writer: Any) -> None:
        conn.send_headers(seen.stream_id, [(":status", "200")])
        with contextlib.suppress(Exception):
            for _ in range(http2.MAX_RESPONSE_BYTES // 8192 + 2):
                conn.send_data(seen.stream_id, b"x" * 8192)
                writer.write(conn.data_to_send())
                await asyncio.sleep(0)

    _, url = await make_server(flood)
    client = Http2Client(client_tls, timeout_s=2)
    with pytest.raises(Http2Error, match="too long"):
        await client.post(url, {}, b"{}")
    await client.aclose()


async def test_a_server_without_http2_is_refused(ca: trustme.CA, client_tls: ssl.SSLContext) -> None:
    tls = server_tls(ca)
    tls.set_alpn_protocols(["http/1.1"])
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0, ssl=tls)
    client = Http2Client(client_tls, timeout_s=2)
    with pytest.raises(Http2Error, match="HTTP/2"):
        await client.post(f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/x", {}, b"")
    server.close()
    await client.aclose()


async def test_only_https(client_tls: ssl.SSLContext) -> None:
    with pytest.raises(Http2Error, match="https"):
        await Http2Client(client_tls, timeout_s=1).post("http://127.0.0.1:1/x", {}, b"")


@pytest.mark.parametrize("answers_pings", [True, False])
async def test_an_idle_connection_is_pinged_and_dropped_when_the_ping_goes_unanswered(
    make_server: Any, client_tls: Any, monkeypatch: pytest.MonkeyPatch, answers_pings: bool
) -> None:
    monkeypatch.setattr(http2, "KEEPALIVE_IDLE_S", 0.05)
    server, url = await make_server(answer_ok)
    client = Http2Client(client_tls, timeout_s=0.2)
    await client.post(url, {}, b"{}")
    server.answer_pings = answers_pings
    await asyncio.sleep(0.6)  # idle: pinged a few times
    server.answer_pings = True
    assert (await client.post(url, {}, b"{}")).status == 200
    assert server.connections == (1 if answers_pings else 2)
    await client.aclose()


async def test_on_an_open_connection_a_request_is_written_before_it_is_awaited(
    make_server: Any, client_tls: Any
) -> None:
    server, url = await make_server(answer_ok)
    client = Http2Client(client_tls, timeout_s=2)
    await client.post(url, {}, b"first")
    pending = client.start(url, {}, b"second")
    await wait_for_seen(server, 2)  # nobody awaits `pending` yet: it left all the same
    assert server.seen[-1].body == b"second"
    assert (await pending).status == 200
    await client.aclose()


async def wait_for_seen(server: ScriptedServer, count: int) -> None:
    for _ in range(200):
        if len(server.seen) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server saw {len(server.seen)} requests, not {count}")
