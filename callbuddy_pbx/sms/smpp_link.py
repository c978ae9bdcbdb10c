"""One bound SMPP session on asyncio streams, with smpplib used only as the PDU codec.

Why not smpplib's Client with a reader thread: its listen loop writes to the socket as well (deliver_sm_resp,
enquire_link_resp, an enquire_link after every read timeout), so a reader thread and a sender thread are two writers
on one socket with no lock (python-smpplib issue 187); its unbind reads its own response and races the reader; its
default error-PDU handler raises out of listen(); enquire_link responses are never checked; data_sm is left
unanswered. Here the event loop is the socket's only owner: one task reads, writes are `writer.write` calls made on
the loop, nothing blocks a thread. A request's future is registered in `_pending` before its bytes are written, and
responses are dispatched on the same thread, so a response can never arrive before its waiter (the race a thread
bridge has to close with a lock-protected pending/early map does not exist).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smpplib import consts as smpp_consts  # type: ignore[import-untyped]
from smpplib import smpp

log = logging.getLogger(__name__)

Pdu = Any  # an smpplib.command.Command: smpplib has no type information
HEADER = struct.Struct(">LLLL")  # command_length, command_id, command_status, sequence_number
MAX_PDU_BYTES = 64 * 1024  # real PDUs stay under ~1 kB; a larger length means the stream is out of step
RESPONSE_BIT = 0x80000000
GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER_RESP = 0x80000009
ENQUIRE_LINK = 0x00000015
UNBIND = 0x00000006
DELIVER_SM = 0x00000005
DATA_SM = 0x00000103
ALERT_NOTIFICATION = 0x00000102
MAX_SEQUENCE = 0x7FFFFFFF
STATUS_NAMES = {
    int(value): name.removeprefix("SMPP_")
    for name, value in vars(smpp_consts).items()
    if name.startswith("SMPP_ESME_") and isinstance(value, int)
}


def describe_status(status: int) -> str:
    """`ESME_RTHROTTLED (0x58): Throttling error ...` for logs and SendResult.error."""
    name = STATUS_NAMES.get(status, "unknown status")
    words = smpp_consts.DESCRIPTIONS.get(status)
    return f"{name} (0x{status:02X})" + (f": {words}" if words else "")


class LinkDown(Exception):
    """The session is gone (or never came up): connection refused or lost, closed, unbound, unanswered."""


class RequestUnanswered(LinkDown):
    """The link went down after a request was written and before its response: the SMSC may have it."""


class PduError(ValueError):
    """A request that cannot be encoded (e.g. a sender id outside Latin-1): sending it again cannot help."""


class BindRejected(LinkDown):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"bind rejected by the SMSC: {describe_status(status)}")


@dataclass(frozen=True, slots=True)
class Credentials:
    system_id: str
    password: str = field(repr=False)  # never logged
    system_type: str = ""


class _Sequences:
    """The `client` smpplib's PDU constructors draw sequence numbers from (1 .. 2^31-1, then round again)."""

    def __init__(self) -> None:
        self._numbers = itertools.cycle(range(1, MAX_SEQUENCE + 1))
        self.sequence = 0

    def next_sequence(self) -> int:
        self.sequence = next(self._numbers)
        return self.sequence


MessageHandler = Callable[["SmppLink", Pdu], None]


class SmppLink:
    """A bound transceiver session: requests correlated by sequence number, deliver_sm/data_sm handed to
    `on_message` (which must answer them with `respond`), enquire_link answered, and kept alive when idle."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_message: MessageHandler, name: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_message = on_message
        self.name = name
        self._sequences = _Sequences()
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._loop = asyncio.get_running_loop()
        self._last_rx = self._loop.time()
        self._closed = asyncio.Event()
        self.close_reason = ""
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(
        cls, host: str, port: int, credentials: Credentials, *, timeout_s: float, on_message: MessageHandler, name: str
    ) -> SmppLink:
        """Connect and bind_transceiver; raises BindRejected or LinkDown (never leaves a socket open)."""
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            raise LinkDown(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from None
        link = cls(reader, writer, on_message, name)
        try:
            await link._bind(credentials, timeout_s)
        except BaseException:
            link.close("bind failed")
            raise
        link._tasks.append(asyncio.create_task(link._read_loop(), name=f"smpp-read-{name}"))
        return link

    async def _bind(self, credentials: Credentials, timeout_s: float) -> None:
        pdu = smpp.make_pdu(
            "bind_transceiver",
            client=self._sequences,
            system_id=credentials.system_id,
            password=credentials.password,
            system_type=credentials.system_type,
        )
        self._writer.write(pdu.generate())
        try:
            async with asyncio.timeout(timeout_s):
                while True:  # anything an SMSC sends before its bind response is not for us yet
                    command_id, status, sequence, _ = await self._read_pdu()
                    if command_id in (BIND_TRANSCEIVER_RESP, GENERIC_NACK) and sequence == pdu.sequence:
                        break
        except TimeoutError:
            raise LinkDown(f"no bind response within {timeout_s:g} s") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise LinkDown(f"connection lost during bind: {exc or type(exc).__name__}") from None
        if status != smpp_consts.SMPP_ESME_ROK:
            raise BindRejected(status)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def close(self, reason: str) -> None:
        """Drop the connection; requests still waiting fail with LinkDown. Idempotent."""
        if self._closed.is_set():
            return
        self.close_reason = reason
        self._closed.set()
        self._writer.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RequestUnanswered(reason))
        self._pending.clear()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    async def request(self, command: str, timeout_s: float, **fields: Any) -> Pdu:
        """Send a request and return its response (any status, or a generic_nack); raises LinkDown, TimeoutError or
        PduError."""
        if self.closed:
            raise LinkDown(self.close_reason)
        try:
            pdu = smpp.make_pdu(command, client=self._sequences, **fields)
            data = pdu.generate()
        except (ValueError, TypeError, struct.error) as exc:  # UnicodeEncodeError is a ValueError
            raise PduError(f"cannot encode {command}: {exc}") from None
        if self._writer.is_closing():  # the connection is already gone: these bytes would never leave
            self.close("connection lost")
            raise LinkDown(self.close_reason)
        future: asyncio.Future[Pdu] = self._loop.create_future()
        self._pending[pdu.sequence] = future  # before the bytes leave: the response always finds its waiter
        try:
            self._writer.write(data)
            async with asyncio.timeout(timeout_s):
                await self._writer.drain()
                return await future
        except (ConnectionError, OSError) as exc:  # some bytes may have left before the connection broke
            self.close(f"write failed: {exc}")
            raise RequestUnanswered(self.close_reason) from None
        finally:
            self._pending.pop(pdu.sequence, None)

    def respond(self, command: str, sequence: int, status: int = 0) -> None:
        """Answer a request the SMSC sent; silently nothing when the link is already gone (the SMSC re-sends)."""
        if self.closed:
            return
        pdu = smpp.make_pdu(command, client=self._sequences, status=status)
        pdu.sequence = sequence
        self._writer.write(pdu.generate())

    def keep_alive(self, idle_s: float, timeout_s: float) -> None:
        """After `idle_s` without a PDU from the SMSC, send enquire_link; close the link when it goes unanswered."""
        self._tasks.append(asyncio.create_task(self._keep_alive(idle_s, timeout_s), name=f"smpp-alive-{self.name}"))

    async def unbind(self, timeout_s: float) -> None:
        """Say goodbye politely, then close. The reader task takes the unbind_resp like any other response."""
        with contextlib.suppress(LinkDown, TimeoutError):
            await self.request("unbind", timeout_s)
        self.close("closed by us")

    async def _keep_alive(self, idle_s: float, timeout_s: float) -> None:
        while not self.closed:
            idle = self._loop.time() - self._last_rx
            if idle < idle_s:
                await asyncio.sleep(idle_s - idle)
                continue
            try:
                await self.request("enquire_link", timeout_s)
            except TimeoutError:
                log.warning("SMPP %s: enquire_link unanswered for %g s, dropping the link", self.name, timeout_s)
                self.close(f"enquire_link unanswered for {timeout_s:g} s")
            except LinkDown:
                return

    async def _read_pdu(self) -> tuple[int, int, int, bytes]:
        header = await self._reader.readexactly(HEADER.size)
        length, command_id, status, sequence = HEADER.unpack(header)
        if not HEADER.size <= length <= MAX_PDU_BYTES:
            raise ValueError(f"PDU length {length} out of range")
        data = header + await self._reader.readexactly(length - HEADER.size)
        self._last_rx = self._loop.time()
        return command_id, status, sequence, data

    async def _read_loop(self) -> None:
        reason = "connection closed by the SMSC"
        try:
            while True:
                command_id, status, sequence, data = await self._read_pdu()
                self._dispatch(command_id, status, sequence, data)
        except asyncio.IncompleteReadError:
            pass
        except (OSError, ValueError) as exc:
            reason = f"connection lost: {exc}"
        finally:
            self.close(reason)

    def _dispatch(self, command_id: int, status: int, sequence: int, data: bytes) -> None:
        """Never raises: one odd PDU must not end the session (smpplib's own listen loop dies on error PDUs)."""
        if command_id & RESPONSE_BIT:
            future = self._pending.get(sequence)
            if future is None or future.done():
                log.debug("SMPP %s: response 0x%08X to unknown sequence %d ignored", self.name, command_id, sequence)
                return
            pdu = _parse(data)
            if pdu is None:  # unreadable body: the status in the header still says what happened
                pdu = smpp.make_pdu("generic_nack", client=self._sequences, status=status or 0xFF)
                pdu.sequence = sequence
            future.set_result(pdu)
        elif command_id == ENQUIRE_LINK:
            self.respond("enquire_link_resp", sequence)
        elif command_id == UNBIND:
            self.respond("unbind_resp", sequence)
            self.close("unbound by the SMSC")
        elif command_id in (DELIVER_SM, DATA_SM):
            pdu = _parse(data)
            if pdu is None:  # acknowledged and dropped: an error answer would make the SMSC re-send it forever
                log.warning(
                    "SMPP %s: unreadable %s dropped", self.name, "deliver_sm" if command_id == DELIVER_SM else "data_sm"
                )
                self.respond("deliver_sm_resp" if command_id == DELIVER_SM else "data_sm_resp", sequence)
                return
            self._on_message(self, pdu)
        elif command_id != ALERT_NOTIFICATION:  # alert_notification has no response
            log.warning("SMPP %s: unsupported command 0x%08X answered with generic_nack", self.name, command_id)
            self.respond("generic_nack", sequence, smpp_consts.SMPP_ESME_RINVCMDID)


_PARSE_SEQUENCES = _Sequences()  # smpplib draws a number for every parsed request; the header's replaces it


def _parse(data: bytes) -> Pdu | None:
    try:
        return smpp.parse_pdu(data, client=_PARSE_SEQUENCES, allow_unknown_opt_params=True)
    except Exception:  # smpplib raises struct.error, IndexError, UnknownCommandError... on malformed bodies
        log.debug("SMPP: unparsable PDU, header %s", data[:16].hex(), exc_info=True)  # the body holds numbers
        return None
