"""Words for people in place of the stored codes (outcomes, text states) on the dashboard's pages."""

from __future__ import annotations

from callbuddy_pbx.model import Outcome

OUTCOMES: dict[str, str] = {
    Outcome.ANSWERED.value: "Answered",
    Outcome.NO_ANSWER.value: "No answer",
    Outcome.BUSY.value: "Busy",
    Outcome.ABANDONED.value: "Caller hung up",
    Outcome.UNAVAILABLE.value: "Nobody available",
    Outcome.VOICEMAIL.value: "Voicemail",
    Outcome.QUEUE_ABANDONED.value: "Hung up in queue",
}
MISSED_OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome if o.missed)
TEXT_STATES: dict[str, str] = {
    "none": "No text",
    "queued": "Queued",
    "sending": "Sending",
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Failed",
    "expired": "Expired",
    "unknown": "Unknown",
    "cancelled": "Cancelled",
}


def outcome(code: str) -> str:
    return OUTCOMES.get(code, code)


def text_state(code: str | None) -> str:
    return TEXT_STATES.get(code or "none", code or "")
