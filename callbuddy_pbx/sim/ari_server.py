"""A simulated Asterisk ARI over real HTTP and WebSocket (aiohttp on 127.0.0.1, a free port), for tests and the demo.

REST answers (status codes, Asterisk's JSON error bodies) and WebSocket event sequences follow the Asterisk 22
recordings in shared/traces/asterisk (11, 12, 29-34; see sim/ari_pbx.py for the call engine). Besides the API it
offers scenario controls: phones register and unregister, answer after N s, are busy, decline or never answer;
an inbound call arrives from the trunk and enters Stasis (or fails over to the dialplan when no app is connected);
the caller hangs up. Connection faults: `restart()` drops every socket without a close frame (a bare FIN, as
`core restart now` does, trace 34) and answers 503 "Asterisk not booted" for a while, optionally refusing TCP
first; `silent` makes the current sockets half-open (no pongs, no events); `drop_websockets()`.

Basic auth (or `api_key=user:password`) is checked on every request: 401 {"message": "Authentication required"}
otherwise. Requests are recorded without their credentials.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from callbuddy_pbx.sim.apns_server import ApnsServer
from callbuddy_pbx.sim.ari_model import ASTERISK_VERSION, AriRestError, PhoneBehaviour, asterisk_info
from callbuddy_pbx.sim.ari_pbx import AriPbx, split_list
from callbuddy_pbx.sim.fcm_server import FcmServer
from callbuddy_pbx.sim.mobile_phones import MobileSoftphone

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_HEADERS = {"Server": f"Asterisk/{ASTERISK_VERSION}", "Cache-Control": "no-cache, no-store"}
SOCKET_QUEUE_LIMIT = 10_000  # events waiting for one socket; a client that far behind is dropped


@dataclass(frozen=True, slots=True)
class RecordedAriRequest:
    method: str
    path: str  # "/ari/channels/1795254972.88"
    query: dict[str, str]  # without api_key
    status: int
    body: Any  # the JSON answer (None for 204)
    at: float  # loop time it was answered


@dataclass
class _ScriptedFailure:
    status: int
    body: dict[str, str]
    method: str | None
    path: str | None
    times: int


@dataclass(eq=False)
class _Socket:
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    app: str
    generation: int
    silent: bool = False
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(SOCKET_QUEUE_LIMIT))


class SimulatedAriServer:
    """Asterisk's ARI as far as CallBuddy uses it. `await start()` (or `async with`), then use `url`."""

    def __init__(
        self,
        username: str = "callbuddy",
        password: str = "callbuddy-secret",  # noqa: S107 (the test PBX's documented password)
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        app: str = "callbuddy",
    ) -> None:
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self.pbx = AriPbx(self._deliver, default_app=app)
        self.requests: deque[RecordedAriRequest] = deque(maxlen=2000)
        self.websocket_connects = 0
        self.websocket_rejects = 0  # upgrade requests answered with an error (401, 503...)
        self.max_open_websockets = 0
        self.restarts = 0
        self.events_sent = 0
        self._sockets: set[_Socket] = set()
        self._generation = 0  # bumped by restart(): sockets of an older generation belong to the old process
        self._booting_until = 0.0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failures: list[_ScriptedFailure] = []
        self.continued: list[tuple[str, dict[str, str]]] = []  # POST /channels/{id}/continue: (channel, query)

    # -- life cycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        routes = [
            web.get("/ari/asterisk/info", self._info),
            web.get("/ari/events", self._events),
            web.get("/ari/channels", self._list_channels),
            web.post("/ari/channels", self._originate),
            web.get("/ari/channels/{id}", self._get_channel),
            web.post("/ari/channels/{id}", self._originate),
            web.delete("/ari/channels/{id}", self._hangup),
            web.post("/ari/channels/{id}/answer", self._answer),
            web.post("/ari/channels/{id}/ring", self._ring),
            web.post("/ari/channels/{id}/continue", self._continue),
            web.delete("/ari/channels/{id}/ring", self._ring),
            web.get("/ari/bridges", self._list_bridges),
            web.post("/ari/bridges", self._create_bridge),
            web.get("/ari/bridges/{id}", self._get_bridge),
            web.delete("/ari/bridges/{id}", self._destroy_bridge),
            web.post("/ari/bridges/{id}/addChannel", self._add_channel),
            web.post("/ari/bridges/{id}/removeChannel", self._remove_channel),
            web.get("/ari/endpoints", self._endpoints),
            web.get("/ari/endpoints/{tech}", self._endpoints),
            web.get("/ari/endpoints/{tech}/{resource}", self._endpoints),
            web.get("/ari/deviceStates", self._device_states),
            web.get("/ari/applications", self._applications),
            web.get("/ari/applications/{app}", self._application),
            web.post("/ari/applications/{app}/subscription", self._subscribe),
            web.delete("/ari/applications/{app}/subscription", self._unsubscribe),
        ]
        app.add_routes(routes)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()
        if self.port == 0:
            for address in self._runner.addresses:
                if isinstance(address, tuple):
                    self.port = int(address[1])
                    break

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        for sock in list(self._sockets):
            with contextlib.suppress(Exception):
                await sock.ws.close()
        await self.pbx.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimulatedAriServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The HTTP base, as AriConfig.url."""
        return f"http://{self.host}:{self.port}"

    # -- inspection -------------------------------------------------------------------------------------------------

    @property
    def open_websockets(self) -> int:
        return sum(1 for sock in self._sockets if not sock.ws.closed)

    def websockets_for(self, app: str) -> int:
        return sum(1 for sock in self._sockets if sock.app == app and not sock.ws.closed)

    @property
    def booting(self) -> bool:
        return asyncio.get_running_loop().time() < self._booting_until

    def in_stasis(self, channel_id: str) -> bool:
        """False for a call whose Stasis() failed (no active app: the dialplan's fail-open path) or that left."""
        return self.pbx.in_stasis(channel_id)

    def channel(self, channel_id: str) -> dict[str, Any] | None:
        found = self.pbx.channels.get(channel_id)
        return found.to_json() if found is not None else None

    # -- scenario controls ------------------------------------------------------------------------------------------

    def register(self, endpoint: str, uri: str | None = None) -> None:
        self.pbx.register(endpoint, uri)

    def unregister(self, endpoint: str, uri: str | None = None) -> None:
        self.pbx.unregister(endpoint, uri)

    def mobile_softphone(
        self,
        endpoint: str,
        token: str,
        param: str,
        *,
        wake_after_s: float | None = 0.05,
        padding: str = "",
        provider: str = "apns",
    ) -> MobileSoftphone:
        """A mobile softphone registers with RFC 8599 push parameters (see sim/mobile_phones.py); `mobile_sleeps`
        removes its registration, and a VoIP push for its token (`wake_on`) makes it register again from a new port
        after `wake_after_s` (None: never). `provider` "fcm": an Android app woken by FCM data messages."""
        phone = MobileSoftphone(endpoint, token, param, wake_after_s, padding, provider=provider)
        return self.pbx.add_mobile(phone)

    def mobile_sleeps(self, phone: MobileSoftphone) -> None:
        self.pbx.mobiles.sleep(phone)

    def wake_on(self, service: ApnsServer | FcmServer) -> None:
        """The mobile softphones receive the pushes this simulated APNs or FCM takes."""
        self.pbx.mobiles.listen_to(service)

    def phone_answers_after(self, endpoint: str, seconds: float) -> None:
        self.pbx.set_phone(endpoint, PhoneBehaviour(answer_after_s=seconds))

    def phone_never_answers(self, endpoint: str) -> None:
        self.pbx.set_phone(endpoint, PhoneBehaviour())

    def phone_busy(self, endpoint: str) -> None:
        self.pbx.set_phone(endpoint, PhoneBehaviour(busy=True))

    def phone_declines(self, endpoint: str, after_s: float = 0.0) -> None:
        self.pbx.set_phone(endpoint, PhoneBehaviour(decline_after_s=after_s))

    def inbound_call(
        self, did: str = "15550001001", caller_number: str = "15557654321", caller_name: str = "Jane Caller"
    ) -> str:
        """A trunk call enters Stasis(app,inbound,<did>); returns the caller's channel id (see AriPbx)."""
        return self.pbx.inbound_call(did, caller_number, caller_name)

    def caller_hangs_up(self, channel_id: str) -> None:
        self.pbx.remote_hangup(channel_id)

    def phone_hangs_up(self, channel_id: str) -> None:
        self.pbx.remote_hangup(channel_id)

    def internal_call(self, caller: str, callee: str, *, talk_s: float = 2.0) -> None:
        self.pbx.internal_call(caller, callee, talk_s=talk_s)

    def fail_next(
        self,
        status: int,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        key: str = "message",
    ) -> None:
        """Answer the next `times` matching REST requests (method, path prefix such as "/ari/channels") with this
        error, e.g. 503 "Asterisk not booted" for a subscription or 500 {"error": "Allocation failed"}."""
        self._failures.append(_ScriptedFailure(status, {key: message}, method, path, times))

    def _scripted_failure(self, request: web.Request) -> web.Response | None:
        for failure in self._failures:
            if (failure.method is None or failure.method == request.method) and (
                failure.path is None or request.path.startswith(failure.path)
            ):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return _json(failure.status, failure.body)
        return None

    def send_raw(self, app: str, text: str) -> None:
        """Queue any text frame (malformed JSON, a huge frame...) to the app's sockets, in order with events."""
        for sock in self._sockets:
            if sock.app == app and not sock.ws.closed:
                sock.queue.put_nowait(text)

    @property
    def silent(self) -> bool:
        return any(sock.silent for sock in self._sockets)

    @silent.setter
    def silent(self, value: bool) -> None:
        """True makes the sockets open now half-open: pings unanswered, events lost. New sockets work."""
        for sock in self._sockets:
            sock.silent = value

    async def drop_websockets(self, *, close_frame: bool = False) -> None:
        """End every event socket: with a close frame (1011), or (default) a bare FIN like trace 34."""
        for sock in list(self._sockets):
            if close_frame:
                with contextlib.suppress(Exception):
                    await sock.ws.close(code=1011, message=b"simulated drop")
            elif sock.transport is not None:
                sock.transport.close()

    def restart(self, *, down_s: float = 0.0, booting_s: float = 0.5) -> None:
        """`core restart now`: every TCP connection ends with a bare FIN (no close frame), channels, bridges and
        apps are forgotten, then for `down_s` nothing listens (connection refused, seen in a trial run) and for
        `booting_s` every request gets 503 {"message":"Asterisk not booted"} (trace 34: the first reconnect 0.54 s
        after the command got it, the second at 1.05 s connected)."""
        self.restarts += 1
        self._generation += 1
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                if handler.transport is not None:
                    handler.transport.close()
        self.pbx.reset()
        loop = asyncio.get_running_loop()
        self._booting_until = loop.time() + down_s + booting_s
        if down_s > 0:
            self._spawn(self._down_for(down_s))

    async def _down_for(self, seconds: float) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        await asyncio.sleep(seconds)
        if self._runner is not None:
            await self._listen()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- plumbing ---------------------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        query = {key: value for key, value in request.query.items() if key != "api_key"}
        try:
            if self.booting:
                response: web.StreamResponse = _json(503, {"message": "Asterisk not booted"})
                response.force_close()  # as Asterisk: `Connection: close`
            elif not self._authorized(request):
                response = _json(401, {"message": "Authentication required"})
                response.headers["WWW-Authenticate"] = 'Basic realm="Asterisk REST Interface"'
            else:
                response = self._scripted_failure(request) or await handler(request)
        except AriRestError as exc:
            response = _json(exc.status, exc.body)
        except web.HTTPException as exc:
            message = "Resource not found" if exc.status == 404 else exc.reason
            response = _json(exc.status, {"message": message})
        if request.path == "/ari/events" and response.status != 101:
            self.websocket_rejects += 1
        body = _recorded_body(response)
        at = asyncio.get_running_loop().time()
        self.requests.append(RecordedAriRequest(request.method, request.path, query, response.status, body, at))
        return response

    def _authorized(self, request: web.Request) -> bool:
        expected = f"{self.username}:{self.password}".encode()
        header = request.headers.get("Authorization", "")
        given = b""
        if header.startswith("Basic "):
            with contextlib.suppress(binascii.Error, ValueError):
                given = base64.b64decode(header[6:], validate=True)
        elif "api_key" in request.query:
            given = request.query["api_key"].encode()
        return hmac.compare_digest(given, expected)

    async def _params(self, request: web.Request) -> dict[str, str]:
        """Query parameters; ARI also takes them in a JSON body (besides `variables`)."""
        params = {key: ",".join(split_list(request.query.getall(key))) for key in request.query if key != "api_key"}
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                raise AriRestError(400, "Invalid JSON in request body") from None
            if isinstance(body, dict):
                for key, value in body.items():
                    if key != "variables" and isinstance(value, str | int | float):
                        params.setdefault(key, str(value))
        return params

    def _deliver(self, app: str, event: dict[str, Any]) -> None:
        data: str | None = None
        for sock in list(self._sockets):
            if sock.app != app or sock.generation != self._generation or sock.ws.closed or sock.silent:
                continue
            data = data or json.dumps(event, separators=(",", ":"))
            try:
                sock.queue.put_nowait(data)
            except asyncio.QueueFull:
                log.warning("sim ARI: app %r is %d events behind; dropping its socket", app, SOCKET_QUEUE_LIMIT)
                if sock.transport is not None:
                    sock.transport.close()

    async def _writer(self, sock: _Socket) -> None:
        while True:
            data = await sock.queue.get()
            if sock.silent or sock.ws.closed:
                continue
            try:
                await sock.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                return
            self.events_sent += 1

    # -- WebSocket --------------------------------------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        app_name = request.query.get("app", "")
        if not app_name:
            raise AriRestError(400, "Missing param 'app'")
        subscribe_all = request.query.get("subscribeAll", "").lower() in ("true", "yes", "1")
        ws = web.WebSocketResponse(autoping=False)  # pongs by hand, so `silent` can withhold them
        await ws.prepare(request)
        sock = _Socket(ws, request.transport, app_name, self._generation)
        self._sockets.add(sock)
        self.websocket_connects += 1
        self.max_open_websockets = max(self.max_open_websockets, self.open_websockets)
        self.pbx.registry.connected(app_name, subscribe_all)
        writer = asyncio.create_task(self._writer(sock), name=f"sim-ari-writer {app_name}")
        try:
            async for message in ws:
                if message.type is WSMsgType.PING and not sock.silent:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.pong(message.data)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self._sockets.discard(sock)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if sock.generation == self._generation:
                self.pbx.registry.disconnected(app_name)
        return ws

    # -- REST handlers ----------------------------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.StreamResponse:
        return _json(200, asterisk_info(self.pbx.started))

    async def _list_channels(self, request: web.Request) -> web.StreamResponse:
        return _json(200, self.pbx.channels_json())

    async def _get_channel(self, request: web.Request) -> web.StreamResponse:
        return _json(200, self.pbx.channel_json(request.match_info["id"]))

    async def _originate(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        if "id" in request.match_info:
            params["channelId"] = request.match_info["id"]
        return _json(200, self.pbx.originate(params))

    async def _hangup(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        self.pbx.hangup(request.match_info["id"], params.get("reason"), params.get("reason_code"))
        return _no_content()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.pbx.answer(request.match_info["id"])
        return _no_content()

    async def _ring(self, request: web.Request) -> web.StreamResponse:
        self.pbx.ring(request.match_info["id"])
        return _no_content()

    async def _continue(self, request: web.Request) -> web.StreamResponse:
        """The channel leaves Stasis (StasisEnd) and runs on in the dialplan where the query says (nothing: the
        priority after Stasis, as res/ari/resource_channels.c does); `continued` records (channel, query)."""
        channel_id, where = request.match_info["id"], dict(request.query)
        self.pbx.continue_in_dialplan(channel_id, where.get("context"))
        self.continued.append((channel_id, where))
        return _no_content()

    async def _list_bridges(self, request: web.Request) -> web.StreamResponse:
        return _json(200, self.pbx.bridges_json())

    async def _create_bridge(self, request: web.Request) -> web.StreamResponse:
        return _json(200, self.pbx.create_bridge(await self._params(request)))

    async def _get_bridge(self, request: web.Request) -> web.StreamResponse:
        return _json(200, self.pbx.bridge_json(request.match_info["id"]))

    async def _destroy_bridge(self, request: web.Request) -> web.StreamResponse:
        self.pbx.destroy_bridge(request.match_info["id"])
        return _no_content()

    async def _add_channel(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        self.pbx.add_channels(request.match_info["id"], split_list([params.get("channel", "")]))
        return _no_content()

    async def _remove_channel(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        for channel_id in split_list([params.get("channel", "")]) or [""]:
            self.pbx.remove_channel(request.match_info["id"], channel_id)
        return _no_content()

    async def _endpoints(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        return _json(200, self.pbx.endpoints_json(info.get("tech"), info.get("resource")))

    async def _device_states(self, request: web.Request) -> web.StreamResponse:
        return _json(200, [])  # only device states an app created (Stasis:...) are listed; CallBuddy creates none

    async def _applications(self, request: web.Request) -> web.StreamResponse:
        return _json(200, [app.to_json() for app in self.pbx.apps.values()])

    async def _application(self, request: web.Request) -> web.StreamResponse:
        return _json(200, self.pbx.application_json(request.match_info["app"]))

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        sources = split_list([params.get("eventSource", "")])
        return _json(200, self.pbx.subscribe(request.match_info["app"], sources))

    async def _unsubscribe(self, request: web.Request) -> web.StreamResponse:
        params = await self._params(request)
        sources = split_list([params.get("eventSource", "")])
        return _json(200, self.pbx.unsubscribe(request.match_info["app"], sources))


def _json(status: int, body: Any) -> web.Response:
    return web.json_response(body, status=status, headers=_HEADERS, dumps=_dumps)


def _recorded_body(response: web.StreamResponse) -> Any:
    if isinstance(response, web.Response) and response.content_type == "application/json":
        raw = response.body
        if isinstance(raw, bytes):
            with contextlib.suppress(ValueError):
                return json.loads(raw)
    return None


def _no_content() -> web.Response:
    return web.Response(status=204, headers=_HEADERS)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
