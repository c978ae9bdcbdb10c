"""A simulated SMSC over real loopback TCP, for tests and the demo: smpp34's Server behind a small front door.

The SMPP sessions are smpp34's (a Rust implementation written elsewhere, so our client is checked against a peer
that does not share its code). smpp34 has no bind-authentication hook, cannot listen on port 0 and tell the port, and
answers enquire_link by itself; so clients connect to a front door here that checks the bind's credentials, can drop
connections, refuse new ones for a while, swallow enquire_link, and slip a data_sm into the stream. Every other PDU is
passed through unchanged, one whole PDU at a time.

Every submit_sm is recorded (`submits`, `messages()`, the `on_submit` callback) and answered: accepted with a new
message id, or rejected as injected (`throttle`, `queue_full`, `reject_destination`). Receipts follow accepted
submits that ask for one after `receipt_delay_s`, or are sent by hand with `deliver_receipt`; `send_mo` sends a text
from a phone. smpp34 may hand submits of one client over out of order: records are in the order they were handled.

Texts are read, and sent, with the simulator's own GSM 03.38 table (sim/gsm0338) and Python's UTF-16 codec, never
with the service's (sms/smpp_text): a table wrong on both sides would otherwise read back what it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct
import time
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import smpp34
from smpplib import consts as smpp_consts  # type: ignore[import-untyped]
from smpplib import gsm as smpp_gsm
from smpplib import smpp

from callbuddy_pbx.phone import mask
from callbuddy_pbx.sim import gsm0338

log = logging.getLogger(__name__)

ReceiptFormat = Literal["text", "tlv", "both", "data_sm"]
KeyCase = Literal["lower", "upper", "title"]
HEADER = struct.Struct(">LLLL")
MAX_PDU_BYTES = 64 * 1024
BIND_COMMANDS = {0x00000001, 0x00000002, 0x00000009}  # bind_receiver, bind_transmitter, bind_transceiver
ENQUIRE_LINK = 0x00000015
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DATA_SM_RESP = 0x80000103
RESPONSE_BIT = 0x80000000
RECEIPT = 0x04  # esm_class of a delivery receipt
UDHI = int(smpp_consts.SMPP_GSMFEAT_UDHI)  # esm_class bit: short_message starts with a user data header
GSM7 = int(smpp_consts.SMPP_ENCODING_DEFAULT)  # data_coding 0, taken as GSM 03.38 septets, unpacked
UCS2 = int(smpp_consts.SMPP_ENCODING_ISO10646)  # data_coding 8
STOP_SETTLE_S = 0.2

# smpp34 sets its ESME_*/TLV_* constants at import time, out of mypy's sight; smpplib's have the same values.
TLV_RECEIPTED_MESSAGE_ID = int(smpp_consts.OPTIONAL_PARAMS["receipted_message_id"])
TLV_MESSAGE_STATE = int(smpp_consts.OPTIONAL_PARAMS["message_state"])
TLV_MESSAGE_PAYLOAD = int(smpp_consts.OPTIONAL_PARAMS["message_payload"])
ESME_RINVDSTADR = int(smpp_consts.SMPP_ESME_RINVDSTADR)
ESME_RTHROTTLED = int(smpp_consts.SMPP_ESME_RTHROTTLED)
ESME_RMSGQFUL = int(smpp_consts.SMPP_ESME_RMSGQFUL)
# message_state TLV values by `stat:` word.
MESSAGE_STATE = {"ENROUTE": 1, "DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7}
MESSAGE_STATE["REJECTD"] = 8


@dataclass(frozen=True, slots=True)
class SubmitRecord:
    destination: str  # "+" and the digits when the client said the number is international (TON 1)
    source: str
    text: str  # this part's text, user data header removed
    data_coding: int
    esm_class: int
    registered_delivery: int
    part: tuple[int, int, int] | None  # (reference, parts, number) when part of a concatenated text
    short_message: bytes  # as received, user data header included
    message_id: str | None  # None when rejected
    status: int  # 0, or the ESME_* error it was answered with
    at: float  # unix time


@dataclass(frozen=True, slots=True)
class ReceivedText:
    """A whole text as the phone would show it: its accepted parts put together in order."""

    destination: str
    source: str
    text: str
    data_coding: int
    parts: tuple[SubmitRecord, ...]
    complete: bool  # every part arrived


@dataclass(frozen=True, slots=True)
class BindAttempt:
    at: float  # time.monotonic()
    system_id: str
    accepted: bool


@dataclass(eq=False)
class _Connection:
    """One client connection at the front door and its twin to smpp34."""

    client: asyncio.StreamWriter
    backend: asyncio.StreamWriter
    injected: dict[int, asyncio.Future[int]] = field(default_factory=dict)  # our data_sm by sequence -> its status
    in_flight: int = 0  # submit_sm not answered yet

    def abort(self) -> None:
        for writer in (self.client, self.backend):
            writer.transport.abort()
        for future in self.injected.values():
            if not future.done():
                future.set_exception(ConnectionError("connection dropped"))


class SimulatedSmsc:
    def __init__(
        self,
        *,
        system_id: str = "callbuddy",
        password: str = "secret",  # noqa: S107 - a test peer's default
        receipt_delay_s: float | None = 0.05,  # None: no automatic receipts
        receipt_stat: str = "DELIVRD",
        receipt_fmt: ReceiptFormat = "both",
        on_submit: Callable[[SubmitRecord], None] | None = None,
        host: str = "127.0.0.1",
        max_records: int = 100_000,
    ) -> None:
        self.system_id = system_id
        self._password = password
        self.receipt_delay_s = receipt_delay_s
        self.receipt_stat = receipt_stat
        self.receipt_fmt: ReceiptFormat = receipt_fmt
        self.on_submit = on_submit
        self.answer_enquire_link = True  # False: enquire_link from clients goes unanswered
        self.host = host
        self.submits: list[SubmitRecord] = []
        self.binds: list[BindAttempt] = []
        self.enquire_links = 0  # received from clients
        self.max_in_flight = 0  # the most submit_sm one client had waiting for their response at once
        self._max_records = max_records
        self._by_id: dict[str, SubmitRecord] = {}
        self._ids = itertools.count(1_000_001)
        self._injected_sequences = itertools.count(0x70000000)
        self._throttle = 0
        self._queue_full = 0
        self._invalid: set[str] = set()
        self._refuse_until = 0.0
        self._cut_after_accept = 0  # submits still to be accepted and then cut off before their answer
        self._server: smpp34.Server | None = None
        self._backend_port = 0
        self._front: asyncio.Server | None = None
        self._connections: list[_Connection] = []
        self._sessions: dict[str, smpp34.Esme] = {}  # smpp34 session id -> session, newest last
        self._session_added = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        for _ in range(5):  # smpp34 needs a port number up front: take a free one, another process may win it
            self._backend_port = _free_port(self.host)
            server = smpp34.Server(self.host, self._backend_port, system_id="SIMSMSC")
            try:
                await server.start()
            except smpp34.SmppError:
                continue
            self._server = server
            break
        else:
            raise OSError("no free port for the simulated SMSC")
        self._spawn(self._serve_backend())
        self._front = await asyncio.start_server(self._serve_client, self.host, 0)

    @property
    def port(self) -> int:
        if self._front is None:
            raise RuntimeError("SimulatedSmsc not started")
        return int(self._front.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._front is not None:
            self._front.close()
        for connection in self._connections:
            connection.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.stop()
            # smpp34's Rust runtime finishes its sessions on its own threads after stop(); let it, so that none of
            # them calls back into Python while the interpreter shuts down (seen: an abort at exit under load).
            await asyncio.sleep(STOP_SETTLE_S)
        if self._front is not None:
            await self._front.wait_closed()
        self._server = self._front = None

    # -- what clients sent -------------------------------------------------------------------------------------------

    @property
    def accepted(self) -> list[SubmitRecord]:
        return [record for record in self.submits if record.message_id is not None]

    def messages(self) -> list[ReceivedText]:
        """The accepted submits as whole texts, in the order their first part was handled."""
        texts: dict[tuple[str, ...], list[SubmitRecord]] = {}
        for record in self.accepted:
            if record.part is None:
                key: tuple[str, ...] = ("single", str(record.message_id))
            else:
                reference, total, _ = record.part
                key = ("parts", record.source, record.destination, str(reference), str(total))
            texts.setdefault(key, []).append(record)
        received: list[ReceivedText] = []
        for parts in texts.values():
            parts.sort(key=lambda record: record.part[2] if record.part else 0)
            first = parts[0]
            numbers = [record.part[2] for record in parts if record.part]
            complete = first.part is None or numbers == list(range(1, first.part[1] + 1))
            text = "".join(record.text for record in parts)
            received.append(
                ReceivedText(first.destination, first.source, text, first.data_coding, tuple(parts), complete)
            )
        return received

    @property
    def bound_sessions(self) -> int:
        return len(self._sessions)

    async def wait_bound(self, timeout_s: float = 5.0) -> None:
        await self._session(timeout_s)

    # -- faults ----------------------------------------------------------------------------------------------------

    def throttle(self, count: int = 1) -> None:
        """The next `count` submits are answered ESME_RTHROTTLED."""
        self._throttle += count

    def queue_full(self, count: int = 1) -> None:
        """The next `count` submits are answered ESME_RMSGQFUL."""
        self._queue_full += count

    def reject_destination(self, *numbers: str) -> None:
        """Submits to these numbers (E.164, or as sent) are answered ESME_RINVDSTADR."""
        self._invalid.update(numbers)

    def cut_after_accept(self, count: int = 1) -> None:
        """For the next `count` submits it accepts: keep the text (its receipt follows, on the next bind) but cut
        the connection instead of sending the submit_sm_resp, as an SMSC whose link drops at the worst moment."""
        self._cut_after_accept += count

    async def drop_connections(self, refuse_s: float = 0.0) -> int:
        """Cut every client connection (no unbind), and refuse new ones for `refuse_s`; returns how many were cut."""
        self._refuse_until = time.monotonic() + refuse_s
        dropped = list(self._connections)
        for connection in dropped:
            connection.abort()
        await asyncio.sleep(0)
        return len(dropped)

    # -- sending to clients ----------------------------------------------------------------------------------------

    async def deliver_receipt(
        self,
        message_id: str,
        stat: str = "DELIVRD",
        *,
        fmt: ReceiptFormat = "text",
        late_s: float = 0.0,
        err: str = "000",
        key_case: KeyCase = "lower",
        hex_id: bool = False,
        omit: Collection[str] = (),
        timeout_s: float = 5.0,
    ) -> int:
        """Send a delivery receipt to the newest bound client (waiting up to `timeout_s` for one) after `late_s`;
        returns the client's command_status. `fmt`: the `id:... stat:...` text, the receipted_message_id and
        message_state TLVs, both, or a data_sm with the TLVs. Odd SMSCs: `key_case` ("ID:", "Stat:"), `hex_id`
        (the id written in hex), `omit` (fields left out of the text, e.g. {"sub", "dlvrd", "submit date"})."""
        if late_s > 0:
            await asyncio.sleep(late_s)
        record = self._by_id.get(message_id)
        shown_id = format(int(message_id), "X") if hex_id else message_id
        now = time.time()
        text = receipt_text(
            shown_id,
            stat,
            err=err,
            text=record.text if record else "",
            submitted=record.at if record else now,
            done=now,
            key_case=key_case,
            omit=omit,
        )
        tlvs: list[smpp34.Tlv] = []
        if fmt != "text":
            tlvs.append(smpp34.Tlv(TLV_RECEIPTED_MESSAGE_ID, shown_id.encode() + b"\x00"))
            tlvs.append(smpp34.Tlv(TLV_MESSAGE_STATE, bytes((MESSAGE_STATE.get(stat.upper(), 7),))))
        phone = (record.destination if record else "").lstrip("+")
        ours = (record.source if record else "").lstrip("+")
        if fmt == "data_sm":
            return await self._inject_data_sm(shown_id, stat, text, phone, ours, timeout_s)
        return await self._deliver(
            timeout_s,
            destination_addr=ours,
            short_message=text.encode("ascii", "replace") if fmt in ("text", "both") else b"",
            source_addr=phone,
            source_addr_ton=1 if phone else 0,
            source_addr_npi=1 if phone else 0,
            esm_class=RECEIPT,
            tlvs=tlvs,
        )

    async def send_mo(self, sender: str, to: str, text: str, *, timeout_s: float = 5.0) -> int:
        """A text from a phone (`sender`) to one of our numbers (`to`): GSM-7 when it can, else UCS-2, in parts when
        long. Returns the client's command_status for the last part."""
        # smpplib lays the parts out; its GSM table is not 03.38's (it sends a backtick as 0x5F, '§').
        septets = gsm0338.encode(text)
        if septets is None:
            parts, coding, esm_class = smpp_gsm.make_parts(text, encoding=UCS2)
        elif len(septets) > int(smpp_consts.SEVENBIT_LENGTH):
            parts, coding, esm_class = smpp_gsm.make_parts_encoded(septets, smpp_consts.SEVENBIT_PART_SIZE), GSM7, UDHI
        else:
            parts, coding, esm_class = [septets], GSM7, 0
        status = 0
        for part in parts:
            status = await self._deliver(
                timeout_s,
                destination_addr=to.lstrip("+"),
                short_message=bytes(part),
                source_addr=sender.lstrip("+"),
                source_addr_ton=1 if sender.startswith("+") else 0,
                source_addr_npi=1,
                dest_addr_ton=1 if to.startswith("+") else 0,
                dest_addr_npi=1,
                esm_class=int(esm_class),
                data_coding=int(coding),
            )
        return status

    async def _deliver(
        self,
        timeout_s: float,
        *,
        destination_addr: str,
        short_message: bytes,
        source_addr: str,
        source_addr_ton: int = 0,
        source_addr_npi: int = 0,
        dest_addr_ton: int = 0,
        dest_addr_npi: int = 0,
        esm_class: int = 0,
        data_coding: int = 0,
        tlvs: list[smpp34.Tlv] | None = None,
    ) -> int:
        """deliver_sm to the newest session; a session that died meanwhile is forgotten and the next one tried."""
        async with asyncio.timeout(timeout_s):
            while True:
                session_id, esme = await self._session(timeout_s)
                try:
                    response = await esme.deliver_sm(
                        destination_addr,
                        short_message,
                        source_addr=source_addr,
                        source_addr_ton=source_addr_ton,
                        source_addr_npi=source_addr_npi,
                        dest_addr_ton=dest_addr_ton,
                        dest_addr_npi=dest_addr_npi,
                        esm_class=esm_class,
                        data_coding=data_coding,
                        tlvs=tlvs or [],
                    )
                except smpp34.SmppError:
                    if self._sessions.get(session_id) is esme:
                        del self._sessions[session_id]
                    await asyncio.sleep(0.01)
                    continue
                return response.command_status

    async def _inject_data_sm(
        self, message_id: str, stat: str, text: str, phone: str, ours: str, timeout_s: float
    ) -> int:
        """smpp34's server cannot send data_sm: the front door writes one itself and catches the answer."""
        async with asyncio.timeout(timeout_s):
            await self._session(timeout_s)  # a bound session has its connection at the front door
            connection = self._connections[-1]
            pdu = smpp.make_pdu(
                "data_sm",
                client=_InjectedSequences(self._injected_sequences),
                source_addr_ton=1 if phone else 0,
                source_addr_npi=1 if phone else 0,
                source_addr=phone,
                destination_addr=ours,
                esm_class=RECEIPT,
                receipted_message_id=message_id,
                message_state=MESSAGE_STATE.get(stat.upper(), 7),
                message_payload=text.encode("ascii", "replace"),
            )
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            connection.injected[pdu.sequence] = future
            connection.client.write(pdu.generate())
            return await future

    async def _session(self, timeout_s: float) -> tuple[str, smpp34.Esme]:
        async with asyncio.timeout(timeout_s):
            while True:
                for session_id in reversed(self._sessions):
                    esme = self._sessions[session_id]
                    if esme.can_receive:
                        return session_id, esme
                self._session_added.clear()
                await self._session_added.wait()

    # -- the SMSC (smpp34) -----------------------------------------------------------------------------------------

    async def _serve_backend(self) -> None:
        assert self._server is not None
        while True:
            event = await self._server.next()
            if isinstance(event, smpp34.Esme):
                self._sessions[event.session_id] = event
                self._session_added.set()
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._on_submit_event(event)
            elif isinstance(event, smpp34.Unbound):
                self._sessions.pop(event.session_id, None)

    def _on_submit_event(self, event: smpp34.SubmitSmEvent) -> None:
        destination = _number(event.destination_addr, event.dest_addr_ton)
        status = 0
        if destination in self._invalid or event.destination_addr in self._invalid:
            status = ESME_RINVDSTADR
        elif self._throttle > 0:
            self._throttle -= 1
            status = ESME_RTHROTTLED
        elif self._queue_full > 0:
            self._queue_full -= 1
            status = ESME_RMSGQFUL
        message_id = None
        if status:
            event.reject(status)
        else:
            message_id = str(next(self._ids))
            event.accept(message_id)
        data = event.short_message
        if not data:
            data = next((tlv.value for tlv in event.tlvs if tlv.tag == TLV_MESSAGE_PAYLOAD), b"")
        has_udh = bool(event.esm_class & UDHI)
        record = SubmitRecord(
            destination=destination,
            source=_number(event.source_addr, event.source_addr_ton),
            text=decode_short_message(data, event.data_coding, has_udh=has_udh),
            data_coding=event.data_coding,
            esm_class=event.esm_class,
            registered_delivery=event.registered_delivery,
            part=_concatenation(data) if has_udh else None,
            short_message=data,
            message_id=message_id,
            status=status,
            at=time.time(),
        )
        self._remember(record)
        log.debug("simulated SMSC: submit to %s answered 0x%02X", mask(destination), status)
        if self.on_submit is not None:
            try:
                self.on_submit(record)
            except Exception:
                log.exception("simulated SMSC: on_submit callback failed")
        if message_id is not None and record.registered_delivery & 0x01 and self.receipt_delay_s is not None:
            self._spawn(self._auto_receipt(message_id))

    def _remember(self, record: SubmitRecord) -> None:
        if len(self.submits) >= self._max_records:  # the demo may run for days
            for old in self.submits[: self._max_records // 2]:
                self._by_id.pop(old.message_id or "", None)
            del self.submits[: self._max_records // 2]
        self.submits.append(record)
        if record.message_id is not None:
            self._by_id[record.message_id] = record

    async def _auto_receipt(self, message_id: str) -> None:
        try:
            await self.deliver_receipt(
                message_id, self.receipt_stat, fmt=self.receipt_fmt, late_s=self.receipt_delay_s or 0.0
            )
        except (TimeoutError, ConnectionError, smpp34.SmppError) as exc:
            log.info("simulated SMSC: receipt for %s not delivered: %s", message_id, exc or type(exc).__name__)

    # -- the front door --------------------------------------------------------------------------------------------

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            writer.transport.abort()
            return
        try:
            async with asyncio.timeout(5.0):
                first = await _read_pdu(reader)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            writer.transport.abort()
            return
        _, command_id, _, sequence = HEADER.unpack_from(first)
        status = self._check_bind(command_id, first)
        if status:
            writer.write(HEADER.pack(HEADER.size, (command_id | RESPONSE_BIT) & 0xFFFFFFFF, status, sequence))
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()
            return
        try:
            backend_reader, backend = await asyncio.open_connection(self.host, self._backend_port)
        except OSError:
            writer.transport.abort()
            return
        connection = _Connection(writer, backend)
        self._connections.append(connection)
        backend.write(first)
        pumps = {
            asyncio.create_task(self._from_client(reader, connection)),
            asyncio.create_task(self._from_backend(backend_reader, connection)),
        }
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            connection.abort()
            self._connections.remove(connection)

    def _check_bind(self, command_id: int, data: bytes) -> int:
        if command_id not in BIND_COMMANDS:
            return int(smpp_consts.SMPP_ESME_RINVBNDSTS)
        try:
            pdu = smpp.parse_pdu(data, client=_NoSequences(), allow_unknown_opt_params=True)
            system_id, password = _text(pdu.system_id), _text(pdu.password)
        except Exception:
            return int(smpp_consts.SMPP_ESME_RBINDFAIL)
        accepted = system_id == self.system_id and password == self._password
        self.binds.append(BindAttempt(time.monotonic(), system_id, accepted))
        if accepted:
            return 0
        log.info("simulated SMSC: bind of %r refused", system_id)
        if system_id != self.system_id:
            return int(smpp_consts.SMPP_ESME_RINVSYSID)
        return int(smpp_consts.SMPP_ESME_RINVPASWD)

    async def _from_client(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            while True:
                data = await _read_pdu(reader)
                _, command_id, status, sequence = HEADER.unpack_from(data)
                if command_id == ENQUIRE_LINK:
                    self.enquire_links += 1
                    if not self.answer_enquire_link:
                        continue
                elif command_id == SUBMIT_SM:
                    connection.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, connection.in_flight)
                elif command_id == DATA_SM_RESP and sequence in connection.injected:
                    future = connection.injected.pop(sequence)
                    if not future.done():
                        future.set_result(status)
                    continue
                connection.backend.write(data)
                await connection.backend.drain()

    async def _from_backend(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
            while True:
                data = await _read_pdu(reader)
                _, command_id, status, _ = HEADER.unpack_from(data)
                if command_id == SUBMIT_SM_RESP:
                    connection.in_flight -= 1
                    if status == 0 and self._cut_after_accept > 0:
                        self._cut_after_accept -= 1
                        connection.abort()
                        return
                connection.client.write(data)
                await connection.client.drain()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _NoSequences:
    """What smpplib's PDU constructors draw a sequence number from; a parsed PDU keeps the one in its header."""

    sequence = 0

    def next_sequence(self) -> int:
        return 0


class _InjectedSequences(_NoSequences):
    def __init__(self, numbers: itertools.count[int]) -> None:
        self._numbers = numbers

    def next_sequence(self) -> int:
        return next(self._numbers)


async def _read_pdu(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(HEADER.size)
    length = HEADER.unpack(header)[0]
    if not HEADER.size <= length <= MAX_PDU_BYTES:
        raise ValueError(f"PDU length {length} out of range")
    return header + await reader.readexactly(length - HEADER.size)


def receipt_text(
    message_id: str,
    stat: str,
    *,
    err: str = "000",
    text: str = "",
    submitted: float | None = None,
    done: float | None = None,
    key_case: KeyCase = "lower",
    omit: Collection[str] = (),
) -> str:
    """`id:... sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...`"""
    now = time.time()
    delivered = "001" if stat.upper() == "DELIVRD" else "000"
    fields = (
        ("id", message_id),
        ("sub", "001"),
        ("dlvrd", delivered),
        ("submit date", time.strftime("%y%m%d%H%M", time.gmtime(submitted or now))),
        ("done date", time.strftime("%y%m%d%H%M", time.gmtime(done or now))),
        ("stat", stat),
        ("err", err),
        ("text", text[:20]),
    )
    shown = {"lower": str.lower, "upper": str.upper, "title": str.title}[key_case]
    return " ".join(f"{shown(key)}:{value}" for key, value in fields if key not in omit)


def decode_short_message(data: bytes, data_coding: int, *, has_udh: bool = False) -> str:
    """What a phone shows for one short_message: GSM-7 and UCS-2 (all the service sends) from the standards, any
    other data_coding as Latin-1 octets. Damage (a split escape or surrogate pair, odd bytes) shows as U+FFFD."""
    if has_udh:
        data = data[1 + data[0] :] if data else data
    if data_coding == GSM7:
        return gsm0338.decode(data)
    if data_coding == UCS2:
        return data.decode("utf-16-be", errors="replace")
    return data.decode("latin-1")


def _concatenation(data: bytes) -> tuple[int, int, int] | None:
    """(reference, parts, number) from a user data header's concatenation element (8- or 16-bit reference)."""
    header = data[1 : 1 + data[0]] if data else b""
    at = 0
    while at + 2 <= len(header):
        element, length = header[at], header[at + 1]
        value = header[at + 2 : at + 2 + length]
        if element == 0x00 and length == 3:
            return value[0], value[1], value[2]
        if element == 0x08 and length == 4:
            return int.from_bytes(value[:2], "big"), value[2], value[3]
        at += 2 + length
    return None


def _number(address: str, ton: int) -> str:
    return f"+{address}" if ton == 1 and address.isdigit() else address


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00")
    return value or ""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
