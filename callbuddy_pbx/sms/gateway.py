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
    key: str  # the outbox row's idempotency key (a call's Linkedid, or "optout:..." for a confirmation)
    to: str  # E.164
    sender: str  # E.164 number or an alphanumeric sender id (up to 11 characters)
    text: str


class SendStatus(StrEnum):
    ACCEPTED = "accepted"  # the gateway took it; `message_id` identifies it in later receipts
    RETRY = "retry"  # a transient failure (throttled, queue full, link down, 5xx): try again later
    REJECTED = "rejected"  # a permanent failure (invalid destination, bad credentials, 4xx): do not retry


@dataclass(frozen=True, slots=True)
class SendResult:
    status: SendStatus
    message_id: str | None = None
    error: str | None = None  # the gateway's code and words, for the operator (never contains credentials)
    retry_after_s: float | None = None  # when the gateway asked for a pause (throttling)

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


@dataclass(frozen=True, slots=True)
class InboundSms:
    sender: str  # the phone that wrote (E.164 when it parses, else as received)
    to: str  # our number it was sent to
    text: str  # bounded by the gateway to a few hundred characters
    at: float


ReportHandler = Callable[[DeliveryReport], Awaitable[None]]
InboundHandler = Callable[[InboundSms], Awaitable[None]]


class SmsGateway(Protocol):
    """One configured way of sending texts. Implementations own their connections and reconnect by themselves."""

    name: str

    async def start(self, on_report: ReportHandler, on_inbound: InboundHandler) -> None:
        """Connect (or prepare the HTTP client) and begin reporting receipts and inbound texts."""
        ...

    async def send(self, sms: OutgoingSms) -> SendResult:
        """Send one text. Never raises for gateway or network trouble: that is a RETRY or REJECTED result."""
        ...

    async def close(self) -> None: ...
