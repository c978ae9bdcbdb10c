"""Which CallBuddy instance owns an Asterisk link: several instances of one config on one PostgreSQL database elect
one owner through a session-level advisory lock; the others stand by. On SQLite (one box) the instance always owns.

The lock is held on a connection of its own (never the store's pool: a pooled connection is reset and shared, and
the lock lives exactly as long as the session that took it). A standby asks for the lock every POLL_S; the owner
checks its connection every CHECK_S (an unanswered check within CHECK_TIMEOUT_S counts as lost) and asks the server
to drop the session when its TCP peer goes silent (keepalives), so a dead owner frees the lock within seconds.

"Exactly one" is kept by two rules. The links run only while the lock is held: a lost or failing lock connection
stops them at once (the lead task is cancelled; it stops its router first) and the instance stands by again. And a
new owner waits TAKEOVER_GRACE_S after taking the lock before starting its links: the server frees the lock when
it ends the old owner's session, which that owner may not have noticed yet; the grace is longer than the time it
takes to notice (CHECK_S + CHECK_TIMEOUT_S) and stop (LEAD_STOP_S). A network cut is noticed by the owner within
CHECK_S + CHECK_TIMEOUT_S, long before the server gives up on the session (SERVER_KEEPALIVE).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from callbuddy_pbx.config import AsteriskNode, Config

log = logging.getLogger(__name__)

POLL_S = 0.5  # a standby asks for the lock this often
CHECK_S = 0.5  # the owner checks its lock connection this often (a `SELECT 1`: nothing to the server)
CHECK_TIMEOUT_S = 1.0  # a check unanswered this long: the connection is lost
LEAD_STOP_S = 1.0  # how long stopping the links may take (handing routed calls back to the dialplan) on a loss
TAKEOVER_GRACE_S = CHECK_S + CHECK_TIMEOUT_S + LEAD_STOP_S + 0.5
RECONNECT_S = 1.0  # the lock connection failed or could not be made: try again after this
CONNECT_TIMEOUT_S = 5
# For this long after a process starts, its elections ask one at a time, each waiting POLL_S per link the process
# already holds: instances started together share the servers' links (each its own writer) instead of the first
# taking them all. Later (a takeover), nothing waits: the 5 s takeover is kept.
SHARE_WINDOW_S = 20.0
# The server drops a silent client's session (freeing its lock) after idle + interval * count seconds.
SERVER_KEEPALIVE = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 1, "tcp_keepalives_count": 3}

Lead = Callable[[], Coroutine[Any, Any, None]]
Hook = Callable[[], Awaitable[None]]


class Role(enum.StrEnum):
    OWNER = "owner"
    STANDBY = "standby"
    # The owner's lock connection failed: it goes on following Asterisk (its calls are kept until the database is
    # back) with what must never run twice (the router) stopped, until it knows whether the lock is still its own.
    HOLDING = "holding"


def lock_key(identity: str) -> int:
    """A stable signed 64-bit advisory lock key for a link's identity ("asterisk:<host>:<port>")."""
    digest = hashlib.sha256(f"callbuddy-pbx:{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def link_identity(host: str, port: int) -> str:
    return f"asterisk:{host}:{port}"


class Ownership(Protocol):
    """What the service asks of an election: run the links while owner, say the role, stop."""

    @property
    def role(self) -> Role: ...

    @property
    def owner_since(self) -> float | None: ...

    @property
    def elected(self) -> bool: ...

    @property
    def problem(self) -> str | None: ...

    async def run(self, lead: Lead, *, hold: Hook | None = None, resume: Hook | None = None) -> None: ...

    async def close(self) -> None: ...


class SingleBox:
    """One instance (SQLite): always the owner, nothing locked; `run` is `lead()`."""

    elected = False
    problem = None

    def __init__(self) -> None:
        self.role = Role.OWNER
        self.owner_since: float | None = time.time()

    async def run(self, lead: Lead, *, hold: Hook | None = None, resume: Hook | None = None) -> None:
        await lead()

    async def close(self) -> None:
        return None


class SharedLinks:
    """The links one process holds, shared by its elections (one per Asterisk server), to spread links over the
    instances started together (SHARE_WINDOW_S)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.held = 0
        self._clock = clock
        self._since = clock()
        self.turn = asyncio.Lock()

    @property
    def sharing(self) -> bool:
        return self._clock() - self._since < SHARE_WINDOW_S


class LockConnection(Protocol):
    """What Leadership needs of its database connection (psycopg's AsyncConnection, autocommit)."""

    async def execute(self, query: Any, params: Any = None, /) -> Any: ...
    async def close(self) -> None: ...


Connect = Callable[[], Awaitable[LockConnection]]


class Leadership:
    """The advisory lock `key` on the database `connect` reaches. `run(lead)` until `close()` (or `lead` returns):
    stand by, take the lock, run `lead` while it is held, cancel it when the lock is lost, stand by again."""

    elected = True

    def __init__(
        self,
        connect: Connect,
        key: int,
        *,
        name: str,
        grace_s: float = TAKEOVER_GRACE_S,
        shared: SharedLinks | None = None,
    ) -> None:
        self._connect = connect
        self._shared = shared  # this process's other elections (several Asterisk servers)
        self._counted = False  # this election's link counts in `shared`
        self._key = key
        self._name = name  # the link's identity, for log lines (never the database URL's secrets)
        self._grace_s = grace_s
        self._closing = asyncio.Event()
        self.role = Role.STANDBY
        self.owner_since: float | None = None  # epoch seconds this instance became owner; None while standby
        self.terms = 0  # how many times this instance became owner
        # Why the lock cannot be asked for (the database unreachable), None once it answers: a standby that cannot ask
        # could not take over either, and with every instance so, nobody follows Asterisk (health says so).
        self.problem: str | None = None
        self._held: asyncio.Task[None] | None = None  # the links, kept running while holding (see run)
        self._hold: Hook | None = None
        self._resume: Hook | None = None

    async def close(self) -> None:
        self._closing.set()

    async def run(self, lead: Lead, *, hold: Hook | None = None, resume: Hook | None = None) -> None:
        """`hold` (when given): the lock connection failed while owning; stop what must never run twice and keep
        `lead` running (the database may just be away: nobody else can take the lock then, and the calls followed
        meanwhile are kept). Once a connection is back, the lock is taken again (then `resume`, after the grace) or
        it is another instance's (then `lead` is stopped). Without `hold`, a failed connection stops `lead` at once."""
        self._hold, self._resume = hold, resume
        try:
            while not self._closing.is_set():
                conn: LockConnection | None = None
                try:
                    conn = await self._connect()
                    await self._keepalive(conn)
                    if self._held is not None:
                        await self._take_back(conn)
                    if self._held is None and not await self._wait_for_lock(conn):
                        return
                    if await self._own(conn, lead):
                        return  # lead returned: the service is stopping
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # psycopg.Error, OSError, TimeoutError: the lock connection is gone
                    problem = f"lock connection: {_described(exc)}"
                    if self._held is not None:
                        if self.role is not Role.HOLDING:
                            log.warning(
                                "role: holding %s (%s): following Asterisk on, its calls kept until the database is "
                                "back; the router stopped",
                                self._name,
                                problem,
                            )
                        self.role = Role.HOLDING
                    elif problem != self.problem or self.role is Role.OWNER:  # said once, not at every try
                        self._standby(problem)
                    self.problem = problem
                finally:
                    if conn is not None:
                        await _close_quietly(conn)
                await self._pause(RECONNECT_S)
        finally:
            if self._held is not None:  # stopping while holding: the links end with the service
                held, self._held = self._held, None
                await _stop(held)

    async def _take_back(self, conn: LockConnection) -> None:
        """Holding, with a connection again: the lock is ours again (`_held` stays, for `_own` to go on with), or
        it is another instance's (the links stop: it adopts the calls in progress; ours already ended are kept)."""
        assert self._held is not None
        if self._held.done():
            self._held = None
            self._standby("the links ended while the database was away")
            return
        taken = await self._try_lock(conn)
        self.problem = None
        if taken:
            return
        held, self._held = self._held, None
        await _stop(held)
        self._standby("another instance took the links while the database was away")

    async def _keepalive(self, conn: LockConnection) -> None:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):  # a server that accepts and then hangs is no server
            for setting, value in SERVER_KEEPALIVE.items():
                await conn.execute(f"SET {setting} = {int(value)}")  # fixed names and numbers, not data

    async def _wait_for_lock(self, conn: LockConnection) -> bool:
        """Poll until the lock is ours (True) or close() (False). A failing poll raises: reconnect."""
        while not self._closing.is_set():
            if self._shared is not None and self._shared.sharing:
                async with self._shared.turn:  # one at a time, after the others this process took
                    await self._pause(POLL_S * self._shared.held)
                    taken = await self._try_lock(conn)
            else:
                taken = await self._try_lock(conn)
            self.problem = None
            if taken:
                if self._shared is not None and not self._counted:
                    self._shared.held += 1
                    self._counted = True
                return True
            await self._pause(POLL_S)
        return False

    async def _try_lock(self, conn: LockConnection) -> bool:
        async with asyncio.timeout(CHECK_TIMEOUT_S + POLL_S):
            cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
            row = await cursor.fetchone()
        return row is not None and row[0] is True

    async def _own(self, conn: LockConnection, lead: Lead) -> bool:
        """Hold the lock: wait out the grace, run `lead`, check the connection. True: lead returned (stop)."""
        log.info("took the lock of %s; links start in %.1f s (the previous owner's grace)", self._name, self._grace_s)
        grace_until = time.monotonic() + self._grace_s
        while time.monotonic() < grace_until:  # checked meanwhile: a lock lost in the grace starts nothing
            if self._closing.is_set():
                return True
            await self._check(conn)
            await self._pause(min(CHECK_S, max(0.0, grace_until - time.monotonic())))
        if self._closing.is_set():
            return True
        task, self._held = self._held, None
        if task is None:
            self.role, self.owner_since = Role.OWNER, time.time()
            self.terms += 1
            log.info("role: owner of %s (Asterisk links start now)", self._name)
            task = asyncio.create_task(lead(), name=f"lead {self._name}")
        else:
            self.role = Role.OWNER
            log.info("role: owner of %s again (the database is back; the router starts again)", self._name)
            if self._resume is not None:
                await self._resume()
        try:
            while not task.done():
                await asyncio.wait([task], timeout=CHECK_S)
                if not task.done():
                    await self._check(conn)
        except Exception:
            if self._hold is None or self._closing.is_set():
                await _stop(task)
                raise
            self._held = task  # the database may only be away: go on following Asterisk, the router stopped
            await self._hold()
            raise
        except BaseException:
            await _stop(task)  # run() cancelled: the links stop before anything else
            raise
        if task.cancelled() or task.exception() is None:
            self._standby("stopping")
            return True
        error = task.exception()
        self._standby(f"the links failed: {_described(error)}")
        return False

    async def _check(self, conn: LockConnection) -> None:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await conn.execute("SELECT 1")

    def _standby(self, why: str) -> None:
        if why == "stopping":
            log.info("role: none for %s (stopping); lock released", self._name)
        elif self.role is not Role.STANDBY:  # owning, or holding on: its links ran until now
            log.warning("role: standby for %s (%s); links stopped", self._name, why)
        else:
            log.info("role: standby for %s (%s)", self._name, why)
        self.role, self.owner_since = Role.STANDBY, None
        if self._shared is not None and self._counted:
            self._shared.held -= 1
            self._counted = False

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel the links and wait for them; a stop that takes too long (calls handed back to a dialplan that does
    not answer) is cut short by a second cancel: links left running would make two owners."""
    for wait_s in (LEAD_STOP_S + 0.25, 0.25):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
            async with asyncio.timeout(wait_s):
                await asyncio.shield(task)
        if task.done():
            return
    log.error("the links did not stop within %.1f s of losing the lock", LEAD_STOP_S + 0.5)


async def _close_quietly(conn: LockConnection) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await conn.close()


def _described(exc: BaseException | None) -> str:
    """The error's type and first line (libpq's words name the host and the user, never the password)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def postgresql_connect(url: str, password: str | None) -> Connect:
    """A dedicated autocommit psycopg connection to the store's database (not from the pool)."""

    async def connect() -> LockConnection:
        import psycopg  # only on PostgreSQL: a single box never loads it

        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "callbuddy-leadership",
        }
        if password is not None:
            kwargs["password"] = password
        conn: LockConnection = await psycopg.AsyncConnection.connect(url, **kwargs)
        return conn

    return connect


def election(config: Config, node: AsteriskNode | None = None, shared: SharedLinks | None = None) -> Ownership:
    """The election for one Asterisk server's link (None: the first, or only, one): on the store's PostgreSQL
    database when there is one (several instances may share it), else none (a single box owns its links). Each
    server is elected on its own, so the links of several spread over the instances that ask first."""
    if config.storage.url is None:
        return SingleBox()
    from callbuddy_pbx.store.pg import password_from_environment  # psycopg: PostgreSQL installations only

    ami = (node or config.asterisk_nodes[0]).ami
    identity = link_identity(ami.host, ami.port)
    connect = postgresql_connect(config.storage.url, password_from_environment())
    return Leadership(connect, lock_key(identity), name=identity, shared=shared)
