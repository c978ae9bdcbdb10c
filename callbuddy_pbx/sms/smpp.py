"""SmsGateway over SMPP 3.4: one bind_transceiver session to an SMSC, kept up for the life of the service.

Sending: each text becomes one submit_sm per part (smpp_text), at most `window` submits wait for their
submit_sm_resp at once; the response decides the SendResult. ESME_RTHROTTLED and ESME_RMSGQFUL pause the whole
gateway for a moment (the outbox is told to come back after `retry_after_s`). A text is never half-sent on purpose:
once its first part is in, later parts wait out such pauses themselves.
Receiving: delivery receipts and texts from phones arrive as deliver_sm (or data_sm) at any time, even hours later on
another session; they are handed to the callbacks and acknowledged afterwards, so the SMSC sends again whatever a
crash lost. The session itself (socket, sequence numbers, enquire_link) lives in smpp_link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from smpplib import consts as smpp_consts  # type: ignore[import-untyped]

from callbuddy_pbx.config import GatewayConfig
from callbuddy_pbx.phone import mask, to_e164
from callbuddy_pbx.sms.gateway import (
    DeliveryReport,
    InboundHandler,
    InboundSms,
    OutgoingSms,
    ReportHandler,
    SendResult,
    SendStatus,
)
from callbuddy_pbx.sms.smpp_link import (
    BindRejected,
    Credentials,
    LinkDown,
    Pdu,
    PduError,
    RequestUnanswered,
    SmppLink,
    describe_status,
)
from callbuddy_pbx.sms.smpp_receipts import LongTexts, parse_receipt, text_field
from callbuddy_pbx.sms.smpp_text import UCS2, UDHI, EncodedText, TextTooLong, decode_text, encode_text

log = logging.getLogger(__name__)

MAX_INBOUND_CHARS = 640
MAX_PASSWORD_CHARS, MAX_SYSTEM_ID_CHARS = 8, 15  # SMPP 3.4 C-strings of 9 and 16 octets
MESSAGE_TYPE = 0x3C  # esm_class bits 2-5 of a deliver_sm: what kind of message it is
RECEIPTS = (0x04, 0x24)  # SMSC delivery receipt, intermediate delivery notification (0x00: a text from a phone)
REGISTERED_DELIVERY = 0x01  # a receipt on final delivery or failure
TON_INTERNATIONAL, TON_UNKNOWN, TON_ALPHANUMERIC = 0x01, 0x00, 0x05
NPI_E164, NPI_UNKNOWN = 0x01, 0x00
# Statuses that say the text itself (its addresses, coding or options) is wrong: sending it again cannot help.
PERMANENT_STATUSES = frozenset(
    {
        0x01,  # ESME_RINVMSGLEN
        0x02,  # ESME_RINVCMDLEN
        0x06,  # ESME_RINVPRTFLG
        0x07,  # ESME_RINVREGDLVFLG
        0x0A,  # ESME_RINVSRCADR
        0x0B,  # ESME_RINVDSTADR
        0x15,  # ESME_RINVSERTYP
        0x33,  # ESME_RINVNUMDESTS
        0x40,  # ESME_RINVDESTFLAG
        0x43,  # ESME_RINVESMCLASS
        0x48,  # ESME_RINVSRCTON
        0x49,  # ESME_RINVSRCNPI
        0x50,  # ESME_RINVDSTTON
        0x51,  # ESME_RINVDSTNPI
        0x61,  # ESME_RINVSCHED
        0x62,  # ESME_RINVEXPIRY
        0x63,  # ESME_RINVDFTMSGID
        0x65,  # ESME_RX_P_APPN
        0x66,  # ESME_RX_R_APPN
        0xC1,  # ESME_ROPTPARNOTALLWD
        0xC2,  # ESME_RINVPARLEN
        0xC3,  # ESME_RMISSINGOPTPARAM
        0xC4,  # ESME_RINVOPTPARAMVAL
    }
)
THROTTLED = int(smpp_consts.SMPP_ESME_RTHROTTLED)
QUEUE_FULL = int(smpp_consts.SMPP_ESME_RMSGQFUL)
NOT_BOUND = int(smpp_consts.SMPP_ESME_RINVBNDSTS)
TEMPORARY_APP_ERROR = int(smpp_consts.SMPP_ESME_RX_T_APPN)


@dataclass(frozen=True, slots=True)
class SmppTiming:
    connect_timeout_s: float = 10.0  # TCP connect, and then the bind response
    response_timeout_s: float = 10.0  # submit_sm_resp, enquire_link_resp
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 2.0  # capped low: texts wait for the bind, so it is back ~2 s after the SMSC is
    rejected_max_s: float = 60.0  # the cap after a refused bind (wrong password): do not hammer the account
    stable_s: float = 30.0  # a session that lasted this long starts the backoff over
    throttle_pause_s: float = 1.0  # after ESME_RTHROTTLED
    queue_full_pause_s: float = 5.0  # after ESME_RMSGQFUL
    part_waits: int = 3  # how many pauses a later part of a long text waits out before giving up


class SmppGateway:
    """SmsGateway over one SMPP transceiver bind; reconnects by itself and never raises for SMSC trouble."""

    def __init__(
        self, config: GatewayConfig, timing: SmppTiming | None = None, *, default_region: str | None = None
    ) -> None:
        self.name = config.name
        self._region = default_region  # for phones' numbers that arrive without their country code
        self._config = config
        self._timing = timing or SmppTiming()
        self._credentials = Credentials(config.system_id, config.password, config.system_type)
        self.in_flight_limit = max(1, config.window)  # submits on the wire at once; the outbox hands us no more
        self._window = asyncio.Semaphore(self.in_flight_limit)
        self._link: SmppLink | None = None
        self._last_error: str | None = None
        self._paused_until = 0.0  # loop time
        self._next_attempt_at = 0.0
        self._long_texts = LongTexts()
        self._sending_long: set[asyncio.Future[None]] = set()
        self._events: asyncio.Queue[tuple[SmppLink, Pdu]] = asyncio.Queue()
        self._first_attempt = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._on_report: ReportHandler | None = None
        self._on_inbound: InboundHandler | None = None
        self._closed = False
        # smpplib cuts longer values to SMPP 3.4's sizes without a word: a bind that fails for that is a riddle.
        if len(config.password) > MAX_PASSWORD_CHARS:
            log.warning(
                "SMPP %s: the password is longer than SMPP's %d characters; only those are sent",
                self.name,
                MAX_PASSWORD_CHARS,
            )
        if len(config.system_id) > MAX_SYSTEM_ID_CHARS:
            log.warning(
                "SMPP %s: system_id %r is cut to %d characters", self.name, config.system_id, MAX_SYSTEM_ID_CHARS
            )

    @property
    def bound(self) -> bool:
        return self._link is not None and not self._link.closed

    @property
    def last_error(self) -> str | None:
        """Why the gateway is not bound (bind rejected, connection refused, link lost), for health checks."""
        return self._last_error

    async def start(self, on_report: ReportHandler, on_inbound: InboundHandler) -> None:
        if self._tasks:
            raise RuntimeError(f"SMPP gateway {self.name} already started")
        self._on_report, self._on_inbound = on_report, on_inbound
        self._tasks = [
            asyncio.create_task(self._supervise(), name=f"smpp-session-{self.name}"),
            asyncio.create_task(self._consume(), name=f"smpp-inbound-{self.name}"),
        ]
        # The first bind takes milliseconds: waiting for its outcome spares the first texts a needless RETRY.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2 * self._timing.connect_timeout_s):
                await self._first_attempt.wait()

    async def close(self) -> None:
        self._closed = True
        if self._tasks:
            self._tasks[0].cancel()  # the session supervisor first: no new bind while we say goodbye
        link, self._link = self._link, None
        if link is not None:
            await link.unbind(min(1.0, self._timing.response_timeout_s))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def send(self, sms: OutgoingSms) -> SendResult:
        try:
            encoded = encode_text(sms.text)
        except TextTooLong as exc:
            return SendResult(SendStatus.REJECTED, error=f"text too long: {exc}")
        fields = _submit_fields(sms, encoded)
        if len(encoded.parts) == 1:
            result = await self._submit({**fields, "short_message": encoded.parts[0]}, patient=False)
        else:
            result = await self._send_long(sms, fields, encoded)
        if not result.accepted:
            # A pause or a lost link is logged once where it happens; each text it holds back only at debug level.
            level = logging.WARNING if result.status is SendStatus.REJECTED else logging.DEBUG
            log.log(
                level, "SMPP %s: text to %s not sent (%s): %s", self.name, mask(sms.to), result.status, result.error
            )
        return result

    async def _send_long(self, sms: OutgoingSms, fields: dict[str, Any], encoded: EncodedText) -> SendResult:
        # Receipts for these parts may overtake their submit_sm_resp; _report waits for this future before giving up.
        sending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sending_long.add(sending)
        try:
            ids: list[str] = []
            total = len(encoded.parts)
            for index, part in enumerate(encoded.parts):
                result = await self._submit({**fields, "short_message": part}, patient=index > 0)
                if not result.accepted:
                    if index:
                        log.warning(
                            "SMPP %s: text to %s broke off after %d of %d parts", self.name, mask(sms.to), index, total
                        )
                    if index and result.status is not SendStatus.REJECTED:  # the SMSC has the first parts already:
                        result = replace(result, status=SendStatus.UNKNOWN)  # sending it all again would repeat them
                    return replace(result, error=f"part {index + 1} of {total}: {result.error}")
                ids.append(result.message_id or "")
            if all(ids):
                self._long_texts.add(ids)
            return SendResult(SendStatus.ACCEPTED, message_id=ids[0] or None)
        finally:
            self._sending_long.discard(sending)
            sending.set_result(None)

    async def _submit(self, fields: dict[str, Any], *, patient: bool) -> SendResult:
        """One submit_sm. A text's first part is impatient: a pause the SMSC asked for is a RETRY for the outbox to
        wait out. Later parts are patient (the SMSC holds the earlier ones already): they wait, a few times."""
        loop = asyncio.get_running_loop()
        waits = self._timing.part_waits if patient else 0
        while True:
            pause = self._paused_until - loop.time()
            if pause > 0:
                if waits <= 0:
                    return SendResult(
                        SendStatus.DEFERRED, error="the SMSC asked us to slow down", retry_after_s=pause, throttled=True
                    )
                waits -= 1
                await asyncio.sleep(pause)
                continue
            result = await self._submit_once(fields)
            if not result.throttled or waits <= 0:
                return result

    async def _submit_once(self, fields: dict[str, Any]) -> SendResult:
        async with self._window:
            link = self._link
            if link is None or link.closed:
                return self._not_bound()
            try:
                response = await link.request("submit_sm", self._timing.response_timeout_s, **fields)
            except RequestUnanswered as exc:
                return SendResult(SendStatus.UNKNOWN, error=f"SMPP link lost before the SMSC answered: {exc}")
            except LinkDown as exc:
                return SendResult(SendStatus.DEFERRED, error=f"SMPP link down: {exc}")
            except TimeoutError:
                return SendResult(
                    SendStatus.UNKNOWN, error=f"no submit_sm_resp within {self._timing.response_timeout_s:g} s"
                )
            except PduError as exc:
                return SendResult(SendStatus.REJECTED, error=str(exc))
        return self._result(link, response)

    def _result(self, link: SmppLink, response: Pdu) -> SendResult:
        status = int(response.status or 0)
        if response.command == "submit_sm_resp" and status == 0:
            return SendResult(SendStatus.ACCEPTED, message_id=_text(response.message_id) or None)
        error = describe_status(status) if status else f"{response.command} without a status"
        if status == THROTTLED:
            return self._pause(self._timing.throttle_pause_s, error)
        if status == QUEUE_FULL:
            return self._pause(self._timing.queue_full_pause_s, error)
        if status in PERMANENT_STATUSES:
            return SendResult(SendStatus.REJECTED, error=error)
        if status == NOT_BOUND:  # the SMSC forgot our bind: bind again; the text was not taken
            link.close("the SMSC says we are not bound")
            return SendResult(SendStatus.DEFERRED, error=error)
        return SendResult(SendStatus.RETRY, error=error)

    def _pause(self, seconds: float, error: str) -> SendResult:
        now = asyncio.get_running_loop().time()
        if self._paused_until <= now:
            log.warning("SMPP %s: %s; pausing sends for %g s", self.name, error, seconds)
        self._paused_until = max(self._paused_until, now + seconds)
        return SendResult(SendStatus.DEFERRED, error=error, retry_after_s=seconds, throttled=True)

    def _not_bound(self) -> SendResult:
        if self._closed or not self._tasks:
            return SendResult(SendStatus.DEFERRED, error="SMPP gateway not running")
        wait = self._next_attempt_at - asyncio.get_running_loop().time()
        reason = self._last_error or "connecting"
        return SendResult(
            SendStatus.DEFERRED, error=f"not bound to the SMSC: {reason}", retry_after_s=max(wait, 0.0) or None
        )

    # -- session --------------------------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Bind, hold the session until it drops, wait (capped exponential backoff), bind again; forever."""
        loop = asyncio.get_running_loop()
        config, timing = self._config, self._timing
        failures = 0
        while True:
            started = loop.time()
            rejected = False
            try:
                link = await SmppLink.open(
                    config.host,
                    config.port,
                    self._credentials,
                    timeout_s=timing.connect_timeout_s,
                    on_message=self._enqueue,
                    name=self.name,
                )
            except BindRejected as exc:
                self._last_error, rejected = str(exc), True
                log.error(
                    "SMPP %s: %s (system_id %r at %s:%d)", self.name, exc, config.system_id, config.host, config.port
                )
            except LinkDown as exc:
                self._last_error = str(exc)
                log.warning("SMPP %s: %s", self.name, exc)
            else:
                idle_s = max(config.enquire_link_s, 0.05)
                link.keep_alive(idle_s, min(timing.response_timeout_s, idle_s))
                self._link, self._last_error = link, None
                log.info("SMPP %s: bound to %s:%d as %r", self.name, config.host, config.port, config.system_id)
                self._first_attempt.set()
                await link.wait_closed()
                self._link = None
                self._last_error = f"link lost: {link.close_reason}"
                log.warning("SMPP %s: %s", self.name, self._last_error)
                if loop.time() - started >= timing.stable_s:
                    failures = 0
            self._first_attempt.set()
            cap = max(timing.rejected_max_s, timing.reconnect_max_s) if rejected else timing.reconnect_max_s
            delay = min(cap, timing.reconnect_min_s * 2**failures) * random.uniform(0.8, 1.0)
            failures = min(failures + 1, 32)
            self._next_attempt_at = loop.time() + delay
            log.info("SMPP %s: binding again in %.1f s", self.name, delay)
            await asyncio.sleep(delay)

    # -- receipts and texts from phones ----------------------------------------------------------------------------

    def _enqueue(self, link: SmppLink, pdu: Pdu) -> None:
        self._events.put_nowait((link, pdu))  # bounded by the SMSC's window: we answer each one after handling it

    async def _consume(self) -> None:
        while True:
            link, pdu = await self._events.get()
            status = 0
            try:
                await self._handle(pdu)
            except Exception:
                # Temporary application error: the SMSC keeps the receipt or text and delivers it again later.
                log.exception("SMPP %s: handling a %s failed", self.name, pdu.command)
                status = TEMPORARY_APP_ERROR
            # Answered only now: whatever a crash loses before this point, the SMSC sends again.
            link.respond(f"{pdu.command}_resp", pdu.sequence, status)

    async def _handle(self, pdu: Pdu) -> None:
        receipted_id = _text(pdu.receipted_message_id)
        message_type = int(pdu.esm_class or 0) & MESSAGE_TYPE
        if message_type in RECEIPTS or receipted_id:
            await self._report(pdu, receipted_id)
        elif message_type == 0:
            await self._inbound(pdu)
        else:  # SME delivery/user acknowledgement, conversation abort: nothing a person wrote
            log.debug("SMPP %s: %s with esm_class 0x%02X ignored", self.name, pdu.command, pdu.esm_class)

    async def _report(self, pdu: Pdu, receipted_id: str) -> None:
        payload = _payload(pdu)
        # Receipt texts are ASCII whatever data_coding claims (read as GSM-7, '_' would turn into '§').
        text = decode_text(payload, UCS2) if pdu.data_coding == UCS2 else payload.decode("latin-1")
        receipt = parse_receipt(text, receipted_id or None, pdu.message_state, pdu.network_error_code)
        if receipt is None:
            log.warning("SMPP %s: delivery receipt without a message id dropped", self.name)
            return
        if self._sending_long and not self._long_texts.knows(receipt.message_id):
            # A receipt can overtake the submit_sm_resp of its own part: let long texts in flight note their ids.
            await asyncio.wait(set(self._sending_long), timeout=2 * self._timing.response_timeout_s)
        resolved = self._long_texts.resolve(receipt)
        if resolved is not None and self._on_report is not None:
            report = DeliveryReport(
                resolved.message_id,
                resolved.state,
                time.time(),
                resolved.error_code,
                resolved.detail,
                recipient=self._e164(_number(pdu.source_addr, pdu.source_addr_ton)) or None,
                text_start=text_field(text),
            )
            await self._on_report(report)

    async def _inbound(self, pdu: Pdu) -> None:
        esm_class = int(pdu.esm_class or 0)
        text = decode_text(_payload(pdu), int(pdu.data_coding or 0), has_udh=bool(esm_class & UDHI))
        sender = self._e164(_number(pdu.source_addr, pdu.source_addr_ton))
        to = self._e164(_number(pdu.destination_addr, pdu.dest_addr_ton))
        log.info("SMPP %s: text from %s to %s (%d characters)", self.name, mask(sender), mask(to), len(text))
        if self._on_inbound is not None:
            await self._on_inbound(InboundSms(sender, to, text[:MAX_INBOUND_CHARS], time.time()))

    def _e164(self, number: str) -> str:
        return (to_e164(number, self._region) if self._region else None) or number


def _submit_fields(sms: OutgoingSms, encoded: EncodedText) -> dict[str, Any]:
    source_ton, source_npi, source = _address(sms.sender)
    dest_ton, dest_npi, destination = _address(sms.to)
    return {
        "source_addr_ton": source_ton,
        "source_addr_npi": source_npi,
        "source_addr": source,
        "dest_addr_ton": dest_ton,
        "dest_addr_npi": dest_npi,
        "destination_addr": destination,
        "esm_class": encoded.esm_class,
        "data_coding": encoded.data_coding,
        "registered_delivery": REGISTERED_DELIVERY,
    }


def _address(number: str) -> tuple[int, int, str]:
    """(TON, NPI, digits) of an E.164 number, a bare number, or an alphanumeric sender id."""
    text = number.strip()
    if text.startswith("+") and text[1:].isdigit():
        return TON_INTERNATIONAL, NPI_E164, text[1:]
    if text.isdigit():
        return TON_UNKNOWN, NPI_E164, text
    return TON_ALPHANUMERIC, NPI_UNKNOWN, text[:11]


def _number(address: bytes | str | None, ton: int | None) -> str:
    text = _text(address)
    return f"+{text}" if ton == TON_INTERNATIONAL and text.isdigit() else text


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    return (value or "").strip("\x00 ")


def _payload(pdu: Pdu) -> bytes:
    """short_message, or message_payload where the SMSC put the text there (always so in data_sm)."""
    payload = getattr(pdu, "short_message", None) or getattr(pdu, "message_payload", None) or b""
    return bytes(payload)
