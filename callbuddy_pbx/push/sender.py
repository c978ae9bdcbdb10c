"""What every push service client (APNs, FCM) offers the router: a call push, a cancel push, and what came of each.

The router sends one call push per ring attempt and, when the call is answered elsewhere or the caller hangs up, a
cancel push with the same call id, so the phone stops showing a ringing call. A client never raises for what the
push service or the network says: every answer is a `PushResult`, whose `outcome` tells the router what to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.push.http2 import Http2Error, Http2Response, Http2Timeout

MAX_REASON_CHARS = 200  # a service's own words are kept for the operator, bounded
MAX_NAME_CHARS = 80  # a caller name comes from the network; APNs refuses a VoIP payload over 5 KB


class PushOutcome(StrEnum):
    SENT = "sent"  # the push service took it (delivery to the phone is not confirmed)
    UNREGISTERED = "unregistered"  # the token is dead (APNs 410 / BadDeviceToken, FCM UNREGISTERED): end the binding
    RETRY_LATER = "retry_later"  # throttled (429), the service failed (5xx) or could not be reached: this call goes on
    #                              without the phone; `retry_after_s` when the service asked for a pause
    CREDENTIALS_REJECTED = "credentials_rejected"  # our key or account was refused (APNs 403, FCM 401/403): alert
    BAD_REQUEST = "bad_request"  # the service refused this push as malformed (or it could not be built): a bug to log


class CancelReason(StrEnum):
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    CALLER_HUNG_UP = "caller_hung_up"


@dataclass(frozen=True, slots=True)
class CallPush:
    """What the phone shows while it wakes, and the id that ties the call push, its cancel and the call together."""

    call_id: str  # the router's id of the call (e.g. the caller's channel's Linkedid)
    caller_number: str
    caller_name: str = ""

    @property
    def shown_name(self) -> str:
        """The caller name as the push carries it: bounded."""
        return self.caller_name[:MAX_NAME_CHARS]


@dataclass(frozen=True, slots=True)
class PushResult:
    outcome: PushOutcome
    status: int | None = None  # the service's HTTP status; None when no answer came
    reason: str = ""  # the service's reason (APNs `reason`, FCM `errorCode`), or what went wrong on the way
    retry_after_s: float | None = None
    push_id: str | None = None  # the service's id of an accepted push (`apns-id`, FCM message name)

    @property
    def sent(self) -> bool:
        return self.outcome is PushOutcome.SENT


class PushSender(Protocol):
    """One push service. A client is used by many calls at once; `close` ends its connections."""

    @property
    def provider(self) -> Provider: ...

    def start_call(self, binding: PushBinding, call: CallPush) -> asyncio.Future[PushResult]:
        """Send the call push, begun before this returns (written to an open connection): a phone wakes sooner
        when its push is not queued behind the rest of the call's work. The future never raises for an answer."""
        ...

    async def send_cancel(self, binding: PushBinding, call: CallPush, reason: CancelReason) -> PushResult: ...

    async def close(self) -> None: ...


# A request on its way (its answer, or a result without one: a token could not be had), or the result of one that
# needed no request (a binding it could not be sent to).
Pending = Awaitable[Http2Response | PushResult] | PushResult
Answer = Callable[[int, bytes, Mapping[str, str]], PushResult]  # what a service's HTTP answer means


async def settle(pending: Pending, service: str, answer: Answer) -> PushResult:
    """What came of a begun request: the service's answer as `answer` reads it, or RETRY_LATER when none came."""
    if isinstance(pending, PushResult):
        return pending
    try:
        response = await pending
    except Http2Timeout:
        return PushResult(PushOutcome.RETRY_LATER, reason=f"no answer from {service} in time")
    except Http2Error as exc:
        return PushResult(PushOutcome.RETRY_LATER, reason=bounded_reason(f"{service} unreachable: {exc}"))
    if isinstance(response, PushResult):
        return response
    return answer(response.status, response.body, response.headers)


def bounded_reason(text: str) -> str:
    """A service's words for a log line or the dashboard: one line, at most MAX_REASON_CHARS characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 3] + "..."


def retry_after(header: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (the HTTP-date form is not used by APNs or FCM)."""
    if header is None:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 24 * 3600 else None
