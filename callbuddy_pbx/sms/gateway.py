"""What every SMS gateway (SMPP, Twilio-style HTTP, Kannel, generic HTTP, simulated) offers the outbox.

A gateway sends one text and says what happened (`SendResult`); later it reports delivery receipts
(`DeliveryReport`) and texts from phones (`InboundSms`, e.g. STOP) through the callbacks given to `start()`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    key: str  # the outbox row's idempotency key (a call's Linkedid, or "help:..." for an answer to a reply)
    to: str  # E.164
    sender: str  # E.164 number or an alphanumeric sender id (up to 11 characters)
    text: str


class SendStatus(StrEnum):
    """What one send says. Only ACCEPTED, UNKNOWN and REJECTED are about the text itself; DEFERRED is about the
    gateway, so it never uses up a text's tries."""

    ACCEPTED = "accepted"  # the gateway took it; `message_id` identifies it in later receipts
    DEFERRED = "deferred"  # not sent: the gateway cannot take texts now (link down, not bound, throttled, queue
    #                        full, HTTP 429/5xx, cannot connect): wait for it, however long it takes
    RETRY = "retry"  # the gateway refused this text with an error it calls temporary: try again a few times
    UNKNOWN = "unknown"  # sent, and no answer came back (the link dropped or timed out after the request left):
    #                      the gateway may have it, so it is never sent again blindly
    REJECTED = "rejected"  # a definite no for this text (invalid destination, content, credentials): do not retry


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    message_id: str | None = None
    error: str | None = None  # the gateway's code and words, for the operator (never contains credentials)
    retry_after_s: float | None = None  # when the gateway asked for a pause (throttling)
    throttled: bool = False  # the gateway asked us to slow down (ESME_RTHROTTLED, ESME_RMSGQFUL, HTTP 429)

    @property
    def accepted(self) -> bool:
        return self.status is SendStatus.ACCEPTED


class DeliveryState(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # undeliverable or rejected by the network
    EXPIRED = "expired"  # the network gave up (validity period ran out)
    PENDING = "pending"  # an intermediate report (accepted by the SMSC, en route, buffered)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    message_id: str  # the id the gateway gave in its SendResult
    state: DeliveryState
    at: float  # unix time the report was received
    error_code: str | None = None  # e.g. SMPP `err:` field, Twilio ErrorCode, Kannel status code
    detail: str = ""  # the raw status word(s), bounded, for display
    # What a receipt may also say of its text, to find a text whose send went unanswered (it has no message id):
    recipient: str | None = None  # the number the text went to
    text_start: str | None = None  # the first characters of the text (an SMPP receipt's `text:`, up to 20)


@dataclass(frozen=True, slots=True)
class InboundSms:
    sender: str  # the phone that wrote (E.164 when it parses, else as received)
    to: str  # our number it was sent to
    text: str  # bounded by the gateway to a few hundred characters
    at: float
    # What the gateway calls this text, the same in each retry of one delivery: Twilio's MessageSid, Kannel's %I,
    # the generic webhook's `id`. None where there is none (an SMPP deliver_sm from a phone carries no id).
    message_id: str | None = None


ReportHandler = Callable[[DeliveryReport], Awaitable[None]]
InboundHandler = Callable[[InboundSms], Awaitable[None]]


class SmsGateway(Protocol):
    """One configured way of sending texts. Implementations own their connections and reconnect by themselves."""

    name: str
    # How many sends it puts on the wire at once. The outbox never hands it more: a text it is given is written out
    # straight away, so a text still waiting inside the process is never taken for one the SMSC may have.
    in_flight_limit: int

    async def start(self, on_report: ReportHandler, on_inbound: InboundHandler) -> None:
        """Connect (or prepare the HTTP client) and begin reporting receipts and inbound texts."""
        ...

    async def send(self, sms: OutgoingSms) -> SendResult:
        """Send one text. Never raises for gateway or network trouble: that is a RETRY or REJECTED result."""
        ...

    async def close(self) -> None: ...
