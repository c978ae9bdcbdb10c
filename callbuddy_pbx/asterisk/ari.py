"""Asyncio ARI client (aiohttp): REST requests, and the event WebSocket of one Stasis application with reconnect.

One WebSocket at a time, owned by `run()`: it reconnects after every drop with capped exponential backoff and
jitter. What counts as a drop (shared/traces/asterisk, trace 34): a close frame, a socket that just ends without
one (Asterisk's restart sends a bare FIN; aiohttp reports CLOSED with code 1006), and a link that stops answering
WebSocket pings (aiohttp's `heartbeat`). While Asterisk boots its HTTP server answers 503 "Asterisk not booted";
that is retried like any failed attempt. After each (re)connect the client POSTs its event subscriptions (an
application connected without `subscribeAll` gets no EndpointStateChange otherwise, and `subscribeAll=true` never
delivers it: trace 33), then awaits `on_connected(client)` so the caller can rebuild its state from GETs. Asterisk
replays nothing that happened while no socket was connected.

Events are handed to `on_event(event, received_at)` as parsed JSON objects; a frame that is too large, not JSON or
not an object with a `type` is logged with a short excerpt and skipped, and an exception in the callback is logged
without ending the stream. The password only travels in an Authorization header (never `api_key=` in a URL), so
neither logs nor error messages can carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp
from yarl import URL

from callbuddy_pbx.asterisk.ari_errors import (
    AriAuthError,
    AriBadRequest,
    AriClosed,
    AriConflict,
    AriConnectError,
    AriError,
    AriHttpError,
    AriNotFound,
    AriServerError,
    AriTimeout,
    AriUnauthorized,
    AriUnavailable,
    AriUnprocessable,
    http_error,
)
from callbuddy_pbx.config.asterisk import AriConfig

log = logging.getLogger(__name__)

AriEvent = dict[str, Any]  # one WebSocket message: a JSON object with at least a string `type`
EventCallback = Callable[[AriEvent, float], None]
ConnectedCallback = Callable[["AriClient"], Awaitable[None]]
DisconnectedCallback = Callable[[str], None]
QueryValue = str | int | float | bool | Sequence[str] | None

# Subscriptions made after each connect. deviceState:<device> sources are added by the caller (the devices it
# routes to); trace 33 shows endpoint:PJSIP plus one deviceState:PJSIP/NNN per desk working.
DEFAULT_EVENT_SOURCES: tuple[str, ...] = ("endpoint:PJSIP",)
MAX_EVENT_CHARS = 1 << 20  # a real event is 0.3-3 kB; anything near this is garbage
_WS_MAX_MSG_BYTES = 4 * MAX_EVENT_CHARS  # beyond this aiohttp ends the connection (1009), which counts as a drop
_EXCERPT_CHARS = 120
_CLOSE_TIMEOUT_S = 2.0
_SUBSCRIBE_ATTEMPTS = 3
LOG_LINES_PER_MINUTE = 10  # per kind of repeated problem (callback raising, malformed frames)


class _RateLimit:
    """At most `per_minute` log lines of one kind a minute, so a broken peer or callback cannot flood the log."""

    def __init__(self, per_minute: int = LOG_LINES_PER_MINUTE) -> None:
        self.per_minute = per_minute
        self._window_start = 0.0
        self._count = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._window_start >= 60.0:
            self._window_start = now
            self._count = 0
        self._count += 1
        return self._count <= self.per_minute


class AriClient:
    """REST + events of one Stasis application. Use `run()` for the WebSocket (reconnects until `close()`);
    REST helpers work whether or not the WebSocket is connected."""

    def __init__(
        self,
        config: AriConfig,
        app: str | None = None,
        on_event: EventCallback | None = None,
        on_connected: ConnectedCallback | None = None,
        on_disconnected: DisconnectedCallback | None = None,
        *,
        event_sources: Iterable[str] = DEFAULT_EVENT_SOURCES,
        subscribe_all: bool = False,
    ) -> None:
        self._config = config
        self.app = app or config.app
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._event_sources: list[str] = list(dict.fromkeys(event_sources))
        self._subscribe_all = subscribe_all
        base = config.url.rstrip("/")
        base = base.removesuffix("/ari")
        self.base_url = base
        ws_base = "wss" + base[5:] if base.startswith("https:") else "ws" + base.removeprefix("http")
        self._ws_url = URL(ws_base + "/ari/events")
        self._headers = {"Authorization": aiohttp.encode_basic_auth(config.username, config.password)}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._setup_task: asyncio.Task[None] | None = None
        self._running = False
        self._closing = False
        self._close_requested = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopped.set()
        self._drop_reason: str | None = None  # set when we close the socket ourselves (reconnect())
        self._ready = False
        self._callback_log = _RateLimit()
        self._malformed_log = _RateLimit()
        # Counters and state for health pages and tests
        self.connects = 0  # WebSocket handshakes that succeeded
        self.connect_failures = 0
        self.events_received = 0  # events passed to on_event
        self.malformed_events = 0
        self.callback_errors = 0
        self.last_event_at: float | None = None  # wall-clock time of the latest event
        self.last_error = ""
        self.connected_since: float | None = None  # wall-clock time of the current connection's handshake

    # -- state ------------------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the event WebSocket is open (Asterisk's `GET /applications` listing the app does not prove
        this: an app holding subscriptions stays listed after its socket closed, trace 33)."""
        return self._ws is not None and not self._ws.closed

    @property
    def ready(self) -> bool:
        """Connected, subscriptions made and on_connected finished for the current connection."""
        return self.connected and self._ready

    @property
    def event_sources(self) -> tuple[str, ...]:
        """What is subscribed after each connect (besides what Asterisk subscribes by itself)."""
        return tuple(self._event_sources)

    # -- REST -------------------------------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue] | None = None,
        json_body: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 (per request; defaults to request_timeout_s)
    ) -> Any:
        """Send `method /ari/<path>` and return the decoded JSON answer (None for 204 / an empty body).

        Raises an AriHttpError subclass for HTTP errors (status, Asterisk's message), AriTimeout, AriConnectError
        when the server cannot be reached, AriClosed after close()."""
        if self._closing:
            raise AriClosed(f"ARI {self.base_url}: client is closed")
        session = self._ensure_session()
        query = _encode_params(params)
        target = "/" + path.lstrip("/")
        if query:
            target += "?" + "&".join(f"{key}={value}" for key, value in query.items())
        url = URL(f"{self.base_url}/ari/{path.lstrip('/')}")
        limit = self._config.request_timeout_s if timeout is None else timeout
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(limit):
                    async with session.request(
                        method, url, params=query or None, json=json_body, headers=self._headers
                    ) as response:
                        raw = await response.read()
                        status, reason = response.status, response.reason or ""
                        content_type = response.content_type
                break
            except TimeoutError:
                raise AriTimeout(f"ARI {method} {target}: no answer within {limit:g} s") from None
            except aiohttp.ServerDisconnectedError:
                # A pooled keep-alive connection the server closed (e.g. across a restart): GETs are safe to repeat.
                if attempt == 1 and method == "GET":
                    continue
                raise AriConnectError(f"ARI {method} {target}: {self.base_url} closed the connection") from None
            except aiohttp.ClientError as exc:
                raise AriConnectError(
                    f"ARI {method} {target}: cannot reach {self.base_url}: {_describe(exc)}"
                ) from None
        body = _decode_body(raw, content_type)
        if status >= 400:
            raise http_error(method, target, status, reason, body)
        return body

    async def get(self, path: str, params: Mapping[str, QueryValue] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, params: Mapping[str, QueryValue] | None = None, json_body: Any = None) -> Any:
        return await self.request("POST", path, params=params, json_body=json_body)

    async def delete(self, path: str, params: Mapping[str, QueryValue] | None = None) -> Any:
        return await self.request("DELETE", path, params=params)

    # Thin helpers for what CallBuddy does with ARI; each is one request and raises as `request` does.

    async def originate(
        self,
        endpoint: str,
        *,
        app_args: Sequence[str] = (),
        timeout_s: int | float = 30,
        caller_id: str | None = None,
        originator: str | None = None,
        channel_id: str | None = None,
    ) -> dict[str, Any]:
        """POST /channels into this app: returns the new channel (state Down). An endpoint with no registered
        contact answers 500 "Allocation failed" and creates no channel (trace 30)."""
        params: dict[str, QueryValue] = {"endpoint": endpoint, "app": self.app, "timeout": timeout_s}
        if app_args:
            params["appArgs"] = ",".join(app_args)
        if caller_id:
            params["callerId"] = caller_id
        if originator:
            params["originator"] = originator
        if channel_id:
            params["channelId"] = channel_id
        channel: dict[str, Any] = await self.post("channels", params)
        return channel

    async def answer(self, channel_id: str) -> None:
        await self.post(f"channels/{channel_id}/answer")

    async def ring(self, channel_id: str) -> None:
        """Indicate ringing to a channel without answering it (the caller hears ringback)."""
        await self.post(f"channels/{channel_id}/ring")

    async def hangup(self, channel_id: str, reason: str | None = None) -> None:
        """DELETE /channels/{id}; reason e.g. "answered_elsewhere" (desk phones show "call completed elsewhere")."""
        await self.delete(f"channels/{channel_id}", {"reason": reason} if reason else None)

    async def create_bridge(self, name: str = "", bridge_type: str = "mixing") -> dict[str, Any]:
        params: dict[str, QueryValue] = {"type": bridge_type}
        if name:
            params["name"] = name
        bridge: dict[str, Any] = await self.post("bridges", params)
        return bridge

    async def add_to_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        await self.post(f"bridges/{bridge_id}/addChannel", {"channel": list(channel_ids)})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.delete(f"bridges/{bridge_id}")

    async def applications(self) -> list[dict[str, Any]]:
        apps: list[dict[str, Any]] = await self.get("applications")
        return apps

    async def subscribe(self, event_sources: Iterable[str]) -> dict[str, Any]:
        """Subscribe this app to more event sources now (if connected) and after every reconnect."""
        sources = [source for source in event_sources if source]
        for source in sources:
            if source not in self._event_sources:
                self._event_sources.append(source)
        if not sources:
            return {}
        app: dict[str, Any] = await self.post(f"applications/{self.app}/subscription", {"eventSource": sources})
        return app

    async def unsubscribe(self, event_sources: Iterable[str]) -> dict[str, Any]:
        """Drop event sources. Also what frees a left-over app: Asterisk keeps an app that holds subscriptions
        listed (and able to take calls into a dead app) after its socket closed (trace 33)."""
        sources = [source for source in event_sources if source]
        self._event_sources = [source for source in self._event_sources if source not in sources]
        if not sources:
            return {}
        app: dict[str, Any] = await self.delete(f"applications/{self.app}/subscription", {"eventSource": sources})
        return app

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No session-wide total timeout: it would apply to the long-lived WebSocket. Each request has its own.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._config.request_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    # -- the event WebSocket ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the event WebSocket connected until close(). Only one run() at a time: a second raises."""
        if self._running:
            raise RuntimeError("AriClient.run() is already running")
        if self._closing:
            raise AriClosed(f"ARI {self.base_url}: client is closed")
        self._running = True
        self._stopped.clear()
        cfg = self._config
        delay = cfg.reconnect_min_s
        try:
            while not self._closing:
                try:
                    ws = await self._open()
                except (AriAuthError, AriConnectError) as error:
                    self.connect_failures += 1
                    self.last_error = str(error)
                    if isinstance(error, AriAuthError) or (error.status is not None and 400 <= error.status < 500):
                        # A wrong password or app name does not fix itself; retrying quickly only fills logs.
                        wait = cfg.reconnect_max_s * random.uniform(1.0, 1.1)
                        log.error("%s; retrying in %.1f s", error, wait)
                    else:
                        wait = self._backoff(delay)
                        delay = min(delay * 2, cfg.reconnect_max_s)
                        log.warning("%s; retrying in %.1f s", error, wait)
                else:
                    up_since = time.monotonic()
                    await self._listen(ws)
                    if self._closing:
                        break
                    if time.monotonic() - up_since >= cfg.reconnect_max_s:
                        delay = cfg.reconnect_min_s  # it stayed up: start the backoff afresh
                    wait = self._backoff(delay)
                    delay = min(delay * 2, cfg.reconnect_max_s)
                    log.info("ARI %s: reconnecting in %.2f s", self.base_url, wait)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._close_requested.wait()
        finally:
            self._running = False
            leftover, self._ws = self._ws, None
            if leftover is not None:  # run() itself was cancelled mid-handshake bookkeeping
                with contextlib.suppress(Exception):
                    await asyncio.shield(leftover.close())
            self._stopped.set()

    def _backoff(self, delay: float) -> float:
        return max(self._config.reconnect_min_s, random.uniform(delay / 2, delay))

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        """One handshake. The socket is only ever opened here, and only by run(): never two listeners."""
        assert self._ws is None, "a second event WebSocket would duplicate every event"
        session = self._ensure_session()
        params = {"app": self.app}
        if self._subscribe_all:
            params["subscribeAll"] = "true"
        where = f"{self._ws_url} (app {self.app!r})"
        limit = self._config.request_timeout_s
        try:
            async with asyncio.timeout(limit):
                return await session.ws_connect(
                    self._ws_url,
                    params=params,
                    headers=self._headers,
                    heartbeat=self._config.heartbeat_s or None,
                    max_msg_size=_WS_MAX_MSG_BYTES,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise AriAuthError(
                    f"ARI {where}: 401, user {self._config.username!r} not accepted (ari.conf)", exc.status
                ) from None
            hint = " (Asterisk not booted yet)" if exc.status == 503 else ""
            raise AriConnectError(f"ARI {where}: handshake answered {exc.status}{hint}", exc.status) from None
        except TimeoutError:
            raise AriConnectError(f"ARI {where}: no handshake answer within {limit:g} s") from None
        except aiohttp.ClientError as exc:
            raise AriConnectError(f"ARI {where}: cannot connect: {_describe(exc)}") from None

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ready = False
        self._drop_reason = None
        self.connects += 1
        self.connected_since = time.time()
        log.info("ARI connected to %s as %r, app %r", self.base_url, self._config.username, self.app)
        self._setup_task = asyncio.create_task(self._after_connect(ws), name=f"ari-setup {self.app}")
        reason = "WebSocket ended"
        try:
            while True:
                message = await ws.receive()
                kind = message.type
                if kind is aiohttp.WSMsgType.TEXT:
                    try:
                        self._handle_text(message.data)
                    except Exception:  # one frame never takes the link down
                        self._malformed("a frame that could not be handled", message.data)
                        log.exception("ARI %s: handling a frame failed (the stream goes on)", self.base_url)
                elif kind is aiohttp.WSMsgType.BINARY:
                    self._malformed(f"a binary frame of {len(message.data)} bytes", b"")
                elif kind is aiohttp.WSMsgType.CLOSE:
                    extra = f", {message.extra}" if message.extra else ""
                    reason = f"Asterisk closed the WebSocket (code {message.data}{extra})"
                    break
                elif kind in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                    reason = _why_ended(ws, message)
                    break
        except asyncio.CancelledError:
            reason = "client stopped"
            raise
        finally:
            reason = "client closed" if self._closing else (self._drop_reason or reason)
            setup, self._setup_task = self._setup_task, None
            if setup is not None and not setup.done() and setup is not asyncio.current_task():
                setup.cancel()
                with contextlib.suppress(BaseException):
                    await setup
            self._ws = None
            self._ready = False
            self.connected_since = None
            if not ws.closed:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                        await ws.close()
            self._lost(reason)

    def _lost(self, reason: str) -> None:
        if self._closing:
            log.info("ARI %s: disconnected (%s)", self.base_url, reason)
            return
        self.last_error = reason
        log.warning("ARI %s: WebSocket lost: %s", self.base_url, reason)
        if self._on_disconnected is not None:
            try:
                self._on_disconnected(reason)
            except Exception:
                log.exception("ARI on_disconnected callback raised")

    async def _after_connect(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Subscriptions, then the caller's state rebuild. Events keep flowing to on_event meanwhile."""
        if self._event_sources and not await self._subscribe_now():
            return
        if self._on_connected is not None:
            try:
                await self._on_connected(self)
            except AriError as exc:
                log.warning("ARI on_connected did not complete: %s", exc)
            except Exception:
                log.exception("ARI on_connected callback raised")
        if self._ws is ws and not ws.closed:
            self._ready = True

    async def _subscribe_now(self) -> bool:
        """False when the connection is being replaced because the subscriptions could not be made. Only what the
        app does not hold yet is subscribed: an app outlives its WebSocket with its subscriptions (trace 33), and
        subscribing again on every reconnect would stack them."""
        sources = await self._missing(list(self._event_sources))
        if not sources:
            log.info("ARI app %r already holds its subscriptions", self.app)
            return True
        for attempt in range(1, _SUBSCRIBE_ATTEMPTS + 1):
            try:
                await self.post(f"applications/{self.app}/subscription", {"eventSource": sources})
                log.info("ARI app %r subscribed to %s", self.app, ", ".join(sources))
                return True
            except (AriUnavailable, AriTimeout, AriConnectError) as exc:
                if attempt < _SUBSCRIBE_ATTEMPTS:
                    log.info("ARI subscription attempt %d failed (%s); retrying", attempt, exc)
                    await asyncio.sleep(self._config.reconnect_min_s)
                    continue
                # A socket without its subscriptions would silently miss device events: start over instead.
                await self.reconnect(f"subscriptions failed: {exc}")
                return False
            except AriHttpError as exc:
                # e.g. 422 "Event source does not exist": a retry cannot fix it; the rest of the setup goes on.
                self.last_error = f"ARI subscription failed: {exc}"
                log.error("%s; events from these sources will not arrive", self.last_error)
                return True
        return True

    def _handle_text(self, data: str) -> None:
        received_at = time.time()
        if len(data) > MAX_EVENT_CHARS:
            self._malformed(f"an event of {len(data)} characters (limit {MAX_EVENT_CHARS})", data)
            return
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep, within the size limit
            self._malformed("a frame that is not JSON (or nested too deep)", data)
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self._malformed("a frame that is not an event object", data)
            return
        self.events_received += 1
        self.last_event_at = received_at
        if self._on_event is None:
            return
        try:
            self._on_event(event, received_at)
        except Exception:
            self.callback_errors += 1
            if self._callback_log.allow():
                log.exception("ARI on_event callback raised on a %s event (the stream goes on)", event["type"])

    def _malformed(self, what: str, data: str | bytes) -> None:
        self.malformed_events += 1
        if self._malformed_log.allow():
            log.error("ARI %s: skipped %s: %r", self.base_url, what, data[:_EXCERPT_CHARS])

    async def reconnect(self, reason: str = "reconnect requested") -> None:
        """Close the current WebSocket; run() then connects a new one (after the shortest backoff). E.g. when a
        health check finds the app missing from GET /applications."""
        ws = self._ws
        if ws is None or ws.closed:
            return
        self._drop_reason = reason
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await ws.close()

    async def _missing(self, sources: list[str]) -> list[str]:
        """The event sources the app does not hold now (all of them when that cannot be asked)."""
        try:
            app = await self.get(f"applications/{self.app}")
        except AriError:
            return sources
        if not isinstance(app, dict):
            return sources
        held: set[str] = set()
        for kind, key in (("endpoint", "endpoint_ids"), ("deviceState", "device_names"), ("channel", "channel_ids"),
                          ("bridge", "bridge_ids")):  # fmt: skip
            values = app.get(key)
            if isinstance(values, list):
                held.update(f"{kind}:{value}" for value in values if isinstance(value, str))
        return [source for source in sources if source not in held]

    async def close(self, *, unsubscribe: bool = True) -> None:
        """Drop the app's subscriptions (so Asterisk forgets the app once its socket is gone, trace 33; False: leave
        them, as a crash would), close the WebSocket (with a close frame), stop run() and release the HTTP session.
        Not reusable."""
        if unsubscribe and self._event_sources and self._ws is not None and self._session is not None:
            with contextlib.suppress(AriError, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await self.unsubscribe(self._event_sources)
        self._closing = True
        self._close_requested.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await ws.close()
        if self._running and asyncio.current_task() is not self._setup_task:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S * 2):
                    await self._stopped.wait()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _encode_params(params: Mapping[str, QueryValue] | None) -> dict[str, str]:
    """ARI takes lists comma-separated (addChannel?channel=a,b, eventSource=x,y) and booleans as true/false."""
    query: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            query[key] = "true" if value else "false"
        elif isinstance(value, str):
            query[key] = value
        elif isinstance(value, int | float):
            query[key] = f"{value:g}" if isinstance(value, float) else str(value)
        else:
            query[key] = ",".join(value)
    return query


def _decode_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if "json" in content_type or text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass
    return text


def _why_ended(ws: aiohttp.ClientWebSocketResponse, message: aiohttp.WSMessage) -> str:
    error = message.data if message.type is aiohttp.WSMsgType.ERROR else ws.exception()
    if isinstance(error, aiohttp.ServerTimeoutError):
        return f"no answer to WebSocket ping (silent link): {error}"
    code = ws.close_code
    if code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE or code is None:
        # Trace 34: Asterisk restarting closes the TCP connection without a close frame.
        detail = f" ({_describe(error)})" if isinstance(error, BaseException) else ""
        return f"WebSocket ended without a close frame (code 1006){detail}"
    return f"WebSocket closed (code {code})"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "DEFAULT_EVENT_SOURCES",
    "MAX_EVENT_CHARS",
    "AriAuthError",
    "AriBadRequest",
    "AriClient",
    "AriClosed",
    "AriConflict",
    "AriConnectError",
    "AriError",
    "AriEvent",
    "AriHttpError",
    "AriNotFound",
    "AriServerError",
    "AriTimeout",
    "AriUnauthorized",
    "AriUnavailable",
    "AriUnprocessable",
]
