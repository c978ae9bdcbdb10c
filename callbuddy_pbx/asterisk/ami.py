"""Asyncio AMI client: login, events to a callback, ActionID-correlated actions, keepalive and reconnect.

One connection at a time. Reading is `readuntil(b"\\r\\n\\r\\n")` on bytes and each message is decoded on its own
(ami_protocol.parse_message), so a UTF-8 character split across TCP reads arrives intact. The event path is kept short
because a busy PBX with `read = all` sends tens of thousands of events per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from callbuddy_pbx.asterisk.ami_protocol import (
    BANNER_PREFIX,
    MAX_MESSAGE_BYTES,
    TERMINATOR,
    AmiMessage,
    AmiProtocolError,
    encode_action,
    parse_message,
)
from callbuddy_pbx.config import AsteriskConfig

log = logging.getLogger(__name__)

_READ_CHUNK = 256 * 1024

EventCallback = Callable[[AmiMessage, float], None]
ConnectedCallback = Callable[["AmiClient"], Awaitable[None]]
DisconnectedCallback = Callable[[str], None]

LOGOFF_TIMEOUT_S = 2.0
CALLBACK_TRACEBACKS_PER_MINUTE = 10  # a callback failing on every event must not flood the log at 50k events/s


class AmiError(Exception):
    """Base class of every AMI client error. Messages never contain the secret."""


class AmiConnectError(AmiError):
    """TCP connect, banner or login did not complete (refused, timed out, not an AMI server)."""


class AmiAuthError(AmiConnectError):
    """Asterisk refused the login (wrong user name or secret, or the user is not allowed from this address)."""


class AmiNotConnected(AmiError):
    """An action was requested while no logged-in connection exists."""


class AmiConnectionLost(AmiNotConnected):
    """The connection dropped while an action was waiting for its response."""


class AmiActionTimeout(AmiError, TimeoutError):
    """No (complete) response to an action within its timeout."""


# Asterisk's `Message:` for an action the AMI user has none of the write classes of (manager.c).
PERMISSION_DENIED = "Permission denied"


class AmiActionError(AmiError):
    """Asterisk answered `Response: Error`; `message` is Asterisk's `Message:`."""

    def __init__(self, action: str, message: str, response: AmiMessage) -> None:
        super().__init__(f"AMI action {action} failed: {message or '(no message)'}")
        self.action = action
        self.message = message
        self.response = response

    @property
    def permission_denied(self) -> bool:
        """The AMI user lacks the class the action needs (write = ... in manager.conf)."""
        return self.message == PERMISSION_DENIED


class _Pending:
    """An action waiting for its response (and, for a list action, its items and `EventList: Complete`)."""

    __slots__ = ("action", "future", "is_list", "items", "response")

    def __init__(self, action: str, future: asyncio.Future[None], is_list: bool) -> None:
        self.action = action
        self.future = future
        self.is_list = is_list
        self.response: AmiMessage | None = None
        self.items: list[AmiMessage] = []


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    last_rx: float = field(default_factory=time.monotonic)
    up_since: float = field(default_factory=time.monotonic)
    logged_in: bool = False
    drop_reason: str | None = None  # set when we (or a Shutdown event) know why the stream is about to end
    read_task: asyncio.Task[None] | None = None
    keepalive_task: asyncio.Task[None] | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def abort(self, reason: str) -> None:
        """Close at once, without flushing: a half-open link would never flush."""
        if self.drop_reason is None:
            self.drop_reason = reason
        self.writer.transport.abort()


class AmiClient:
    """Watches one Asterisk over AMI. Use `run()` (reconnects forever) or `connect()` once; `close()` stops both."""

    def __init__(
        self,
        config: AsteriskConfig,
        *,
        on_event: EventCallback,
        on_connected: ConnectedCallback | None = None,
        on_disconnected: DisconnectedCallback | None = None,
        events: str = "on",
    ) -> None:
        self._config = config
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._events = events  # Login's `Events:`: "on", "off" or a class list such as "call,system"
        self._conn: _Connection | None = None
        self._pending: dict[str, _Pending] = {}
        # A random prefix keeps ActionIDs unique across clients sharing one AMI user and across restarts.
        self._id_prefix = f"cb-{secrets.token_hex(4)}-"
        self._ids = itertools.count(1)
        self._closing = False
        self._close_requested = asyncio.Event()
        self._running = False
        self._connect_task: asyncio.Task[None] | None = None
        self._tb_window_start = 0.0
        self._tb_logged = 0
        self.events_received = 0  # events passed to on_event
        self.callback_errors = 0
        self.connects = 0  # successful logins
        self.last_error = ""
        self.banner: str | None = None

    @property
    def connected(self) -> bool:
        """True while a connection is logged in."""
        return self._conn is not None and self._conn.logged_in

    @property
    def _where(self) -> str:
        return f"{self._config.host}:{self._config.port}"

    # -- connecting ------------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect, read the banner and log in (all within connect_timeout_s), then await on_connected.

        Raises AmiAuthError when Asterisk refuses the login and AmiConnectError for everything else.
        """
        if self._conn is not None:
            raise AmiError(f"AMI {self._where}: already connected")
        if self._closing:
            raise AmiError(f"AMI {self._where}: client is closed")
        cfg = self._config
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(cfg.connect_timeout_s):
                reader, writer = await asyncio.open_connection(cfg.host, cfg.port, limit=MAX_MESSAGE_BYTES)
                conn = _Connection(reader, writer, self._where)
                self.banner = await self._read_banner(reader)
                self._conn = conn
                conn.read_task = asyncio.create_task(self._read_loop(conn), name=f"ami-read {self._where}")
                fields = {"Username": cfg.username, "Secret": cfg.secret, "Events": self._events}
                await self._request("Login", fields, cfg.connect_timeout_s, is_list=False, conn=conn)
        except AmiActionError as exc:
            self._discard(conn, "login refused")
            refused = AmiAuthError(f"AMI login to {self._where} as {cfg.username!r} failed: {exc.message}")
            self.last_error = str(refused)
            raise refused from None
        except TimeoutError:
            self._discard(conn, "connect timeout")
            late = AmiConnectError(f"AMI {self._where}: no banner/login answer within {cfg.connect_timeout_s:g} s")
            self.last_error = str(late)
            raise late from None
        except AmiConnectError as exc:
            self._discard(conn, "connect failed")
            self.last_error = str(exc)
            raise
        except (OSError, AmiError) as exc:
            self._discard(conn, "connect failed")
            error = AmiConnectError(f"AMI {self._where}: cannot connect: {exc}")
            self.last_error = str(error)
            raise error from exc
        except BaseException:
            self._discard(conn, "connect cancelled")
            raise

        assert conn is not None
        if conn.closed.is_set():  # the stream ended right behind the login response
            self.last_error = f"AMI {self._where}: connection closed right after login"
            raise AmiConnectError(self.last_error)
        conn.logged_in = True
        conn.up_since = time.monotonic()
        self.connects += 1
        log.info("AMI connected to %s as %r (%s)", self._where, cfg.username, self.banner)
        if cfg.ping_interval_s > 0:
            conn.keepalive_task = asyncio.create_task(self._keepalive(conn), name=f"ami-keepalive {self._where}")
        if self._on_connected is not None:
            try:
                await self._on_connected(self)
            except AmiError as exc:
                log.warning("AMI on_connected did not complete: %s", exc)
            except Exception:
                log.exception("AMI on_connected callback raised")

    async def _read_banner(self, reader: asyncio.StreamReader) -> str:
        """The first line, `Asterisk Call Manager/x.y.z`, has no blank line after it."""
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError:
            raise AmiConnectError(f"AMI {self._where}: connection closed before the banner") from None
        except asyncio.LimitOverrunError:
            raise AmiConnectError(f"AMI {self._where}: no banner line (not an AMI port?)") from None
        if not line.startswith(BANNER_PREFIX):
            shown = line[:60].decode("utf-8", "replace").strip()
            raise AmiConnectError(f"AMI {self._where}: unexpected banner {shown!r} (not an AMI port?)")
        return line[:-2].decode("utf-8", "replace")

    def _discard(self, conn: _Connection | None, reason: str) -> None:
        """Drop a connection that never logged in (its reader, if started, finishes on its own)."""
        if conn is not None:
            conn.abort(reason)
            if self._conn is conn:
                self._conn = None  # so connect() can be retried at once
            if conn.read_task is None:
                conn.closed.set()

    # -- reading ----------------------------------------------------------------------------------------------------

    async def _read_loop(self, conn: _Connection) -> None:
        # Reads whole chunks and splits them on bytes: one await per TCP read rather than per message keeps the
        # per-event cost to parsing and the callback. A message is decoded only once complete, so UTF-8 split
        # across reads is intact. Events of one chunk share its arrival time.
        read = conn.reader.read
        on_event = self._on_event
        pending = self._pending
        notable = _NOTABLE_EVENTS
        wall_clock = time.time
        monotonic = time.monotonic
        tail = b""
        discarding = False  # inside an oversized message: drop everything up to its terminator
        reason = "connection closed by Asterisk"
        try:
            while True:
                data = await read(_READ_CHUNK)
                if not data:
                    raise asyncio.IncompleteReadError(tail, None)
                received_at = wall_clock()
                conn.last_rx = monotonic()
                blocks = (tail + data).split(TERMINATOR) if tail else data.split(TERMINATOR)
                tail = blocks.pop()
                if discarding and blocks:
                    discarding = False
                    del blocks[0]  # the end of the oversized message
                if len(tail) > MAX_MESSAGE_BYTES:
                    if not discarding:
                        log.error("AMI %s: dropped a message larger than %d bytes", conn.peer, MAX_MESSAGE_BYTES)
                        discarding = True
                    tail = tail[-3:]  # the terminator may straddle the next read
                for block in blocks:
                    if len(block) > MAX_MESSAGE_BYTES:
                        log.error("AMI %s: dropped a message larger than %d bytes", conn.peer, MAX_MESSAGE_BYTES)
                        continue
                    message = parse_message(block)
                    name = message.get("Event")
                    if name is not None:
                        if (
                            pending
                            and (action_id := message.get("ActionID")) is not None
                            and self._list_item(action_id, message)
                        ):
                            continue
                        self.events_received += 1
                        try:
                            on_event(message, received_at)
                        except Exception:
                            self._callback_failed(name)
                        if name in notable:
                            self._notable_event(conn, name, message)
                    elif "Response" in message:
                        self._response(message)
                    elif message:
                        keys = ", ".join(list(message)[:5])
                        log.error(
                            "AMI %s: skipped a message that is neither event nor response (keys: %s)",
                            conn.peer,
                            keys,
                        )
        except asyncio.IncompleteReadError:
            reason = conn.drop_reason or "connection closed by Asterisk"
        except OSError as exc:
            reason = conn.drop_reason or f"connection error: {exc}"
        except asyncio.CancelledError:
            reason = conn.drop_reason or "client stopped"
            raise
        except Exception as exc:  # a bug here must not leave a connection that silently reads nothing
            log.exception("AMI %s: reader failed", conn.peer)
            reason = f"reader failed: {exc!r}"
        finally:
            self._connection_lost(conn, reason)

    def _list_item(self, action_id: str, message: AmiMessage) -> bool:
        """Route an event that belongs to a running list action; False when it is an ordinary event."""
        waiting = self._pending.get(action_id)
        if waiting is None or not waiting.is_list or waiting.response is None:
            return False
        if message.get("EventList", "").lower() == "complete":
            expected = message.get("ListItems")
            if expected is not None and expected.isdigit() and int(expected) != len(waiting.items):
                log.warning(
                    "AMI %s: %s announced %s items, received %d",
                    self._where,
                    waiting.action,
                    expected,
                    len(waiting.items),
                )
            if not waiting.future.done():
                waiting.future.set_result(None)
        else:
            waiting.items.append(message)
        return True

    def _response(self, message: AmiMessage) -> None:
        action_id = message.get("ActionID")
        waiting = self._pending.get(action_id) if action_id is not None else None
        if waiting is None or waiting.future.done():
            log.debug("AMI %s: response to an action nobody waits for (ActionID %r)", self._where, action_id)
            return
        waiting.response = message
        if waiting.is_list and message.get("Response") == "Success" and message.get("EventList", "").lower() == "start":
            return  # the items follow as events with this ActionID
        waiting.future.set_result(None)

    def _notable_event(self, conn: _Connection, name: str, message: AmiMessage) -> None:
        if name == "Shutdown":
            restart = message.get("Restart", "")
            log.warning(
                "AMI %s: Asterisk is shutting down (Shutdown: %s, Restart: %s)",
                conn.peer,
                message.get("Shutdown", "?"),
                restart or "?",
            )
            conn.drop_reason = "Asterisk restarting" if restart.lower() in ("true", "yes") else "Asterisk shut down"
        elif name == "FullyBooted":
            log.debug("AMI %s: Asterisk fully booted (Uptime: %s)", conn.peer, message.get("Uptime", "?"))

    def _callback_failed(self, name: str) -> None:
        """Called inside the except block, so log.exception carries the traceback."""
        self.callback_errors += 1
        now = time.monotonic()
        if now - self._tb_window_start >= 60.0:
            self._tb_window_start = now
            self._tb_logged = 0
        self._tb_logged += 1
        if self._tb_logged <= CALLBACK_TRACEBACKS_PER_MINUTE:
            log.exception("AMI on_event callback raised on a %s event (the stream goes on)", name)
        elif self._tb_logged == CALLBACK_TRACEBACKS_PER_MINUTE + 1:
            log.error("AMI on_event callback keeps raising; further tracebacks suppressed for up to a minute")

    def _connection_lost(self, conn: _Connection, reason: str) -> None:
        was_up = conn.logged_in
        conn.logged_in = False
        conn.writer.transport.abort()
        if self._conn is conn:
            self._conn = None
        for waiting in self._pending.values():
            if not waiting.future.done():
                waiting.future.set_exception(AmiConnectionLost(f"AMI {conn.peer}: connection lost ({reason})"))
        if conn.keepalive_task is not None and conn.keepalive_task is not asyncio.current_task():
            conn.keepalive_task.cancel()
        conn.closed.set()
        if not was_up:
            return
        if self._closing:
            log.info("AMI %s: disconnected (%s)", conn.peer, reason)
            return
        self.last_error = reason
        log.warning("AMI %s: connection lost: %s", conn.peer, reason)
        if self._on_disconnected is not None:
            try:
                self._on_disconnected(reason)
            except Exception:
                log.exception("AMI on_disconnected callback raised")

    # -- actions ----------------------------------------------------------------------------------------------------

    async def action(
        self,
        name: str,
        fields: Mapping[str, str | int | None] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (per action; defaults to action_timeout_s)
    ) -> AmiMessage:
        """Send an action and return its response. Raises AmiActionError on `Response: Error`,
        AmiActionTimeout after `timeout` (default action_timeout_s), AmiNotConnected when not logged in."""
        response, _ = await self._request(name, fields, timeout, is_list=False)
        return response

    async def list_action(
        self,
        name: str,
        fields: Mapping[str, str | int | None] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (per action; defaults to action_timeout_s)
    ) -> tuple[AmiMessage, list[AmiMessage]]:
        """Send a list action (CoreShowChannels, Status...) and return its response and item events.

        The timeout covers the whole list, up to its `EventList: Complete` event."""
        return await self._request(name, fields, timeout, is_list=True)

    async def _request(
        self,
        name: str,
        fields: Mapping[str, str | int | None] | None,
        limit: float | None,
        *,
        is_list: bool,
        conn: _Connection | None = None,
    ) -> tuple[AmiMessage, list[AmiMessage]]:
        if conn is None:
            conn = self._conn
            if conn is None or not conn.logged_in:
                raise AmiNotConnected(f"AMI action {name}: not connected to Asterisk at {self._where}")
        action_id = f"{self._id_prefix}{next(self._ids)}"
        payload: dict[str, str | int | None] = {"ActionID": action_id}
        if fields:
            if any(key.lower() == "actionid" for key in fields):
                raise ValueError("ActionID is set by AmiClient; do not pass it")
            payload.update(fields)
        data = encode_action(name, payload)
        if limit is None:
            limit = self._config.action_timeout_s
        waiting = _Pending(name, asyncio.get_running_loop().create_future(), is_list)
        self._pending[action_id] = waiting
        try:
            async with asyncio.timeout(limit):
                try:
                    conn.writer.write(data)
                    await conn.writer.drain()
                except OSError as exc:
                    raise AmiConnectionLost(f"AMI action {name}: connection lost ({exc})") from None
                await waiting.future
        except TimeoutError:
            raise AmiActionTimeout(
                f"AMI action {name} (ActionID {action_id}): no complete response within {limit:g} s"
            ) from None
        finally:
            del self._pending[action_id]
        response = waiting.response
        assert response is not None  # the future only completes after a response
        if response.get("Response") == "Error":
            raise AmiActionError(name, response.get("Message", ""), response)
        return response, waiting.items

    # -- keepalive --------------------------------------------------------------------------------------------------

    async def _keepalive(self, conn: _Connection) -> None:
        """Ping after ping_interval_s of silence; no answer within ping_timeout_s means the link is half-open."""
        interval = self._config.ping_interval_s
        ping_timeout = self._config.ping_timeout_s
        while conn.logged_in:
            idle = time.monotonic() - conn.last_rx
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            try:
                await self._request("Ping", None, ping_timeout, is_list=False, conn=conn)
            except AmiActionTimeout:
                reason = f"no answer to Ping within {ping_timeout:g} s (half-open connection)"
                log.warning("AMI %s: %s; closing it", conn.peer, reason)
                conn.abort(reason)
                return
            except AmiError:
                return  # the reader reports the drop

    # -- run / close ------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected until close(): reconnect after every drop with capped exponential backoff and jitter."""
        if self._running:
            raise RuntimeError("AmiClient.run() is already running")
        self._running = True
        cfg = self._config
        delay = cfg.reconnect_min_s
        try:
            while not self._closing:
                attempt = asyncio.create_task(self.connect(), name=f"ami-connect {self._where}")
                self._connect_task = attempt
                try:
                    await asyncio.wait([attempt])
                finally:
                    self._connect_task = None
                    if not attempt.done():  # run() itself was cancelled
                        attempt.cancel()
                if attempt.cancelled():
                    break  # close() during connect
                error = attempt.exception()
                if isinstance(error, AmiAuthError):
                    # Retrying a wrong secret quickly only fills Asterisk's security log: wait the longest backoff.
                    wait = cfg.reconnect_max_s * random.uniform(1.0, 1.1)
                    log.error("%s; retrying in %.1f s", error, wait)
                elif error is not None:
                    wait = self._backoff(delay)
                    log.warning("%s; retrying in %.1f s", error, wait)
                    delay = min(delay * 2, cfg.reconnect_max_s)
                else:
                    conn = self._conn
                    if conn is not None:
                        await conn.closed.wait()
                        if time.monotonic() - conn.up_since >= cfg.reconnect_max_s:
                            delay = cfg.reconnect_min_s  # it stayed up: start the backoff afresh
                    if self._closing:
                        break
                    wait = self._backoff(delay)
                    log.info("AMI %s: reconnecting in %.1f s", self._where, wait)
                    delay = min(delay * 2, cfg.reconnect_max_s)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._close_requested.wait()
        finally:
            self._running = False
            conn = self._conn
            if conn is not None:
                conn.abort("client stopped")

    def _backoff(self, delay: float) -> float:
        cfg = self._config
        return max(cfg.reconnect_min_s, random.uniform(delay / 2, delay))

    async def close(self) -> None:
        """Log off politely if connected and stop run(). The client cannot be reused afterwards."""
        self._closing = True
        self._close_requested.set()
        if self._connect_task is not None and self._connect_task is not asyncio.current_task():
            self._connect_task.cancel()  # (not when close() is called from on_connected)
        conn = self._conn
        if conn is None:
            return
        if conn.logged_in:
            try:
                await self._request("Logoff", None, min(self._config.action_timeout_s, LOGOFF_TIMEOUT_S), is_list=False)
            except AmiError as exc:
                log.debug("AMI %s: Logoff not answered: %s", conn.peer, exc)
        conn.abort("logged off")
        await conn.closed.wait()


_NOTABLE_EVENTS = frozenset({"Shutdown", "FullyBooted"})

__all__ = [
    "PERMISSION_DENIED",
    "AmiActionError",
    "AmiActionTimeout",
    "AmiAuthError",
    "AmiClient",
    "AmiConnectError",
    "AmiConnectionLost",
    "AmiError",
    "AmiMessage",
    "AmiNotConnected",
    "AmiProtocolError",
]
