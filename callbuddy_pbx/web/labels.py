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

# Why a caller was (or was not) texted, by the policy's reason codes (recovery.policy.Reason values).
TEXT_REASONS: dict[str, str] = {
    "send": "texted",
    "deferred_quiet_hours": "when the quiet hours end",
    "answered": "the call was answered",
    "no_business": "the number called belongs to no business",
    "text_back_disabled": "text-back is off for this business",
    "outcome_not_enabled": "this business does not text after this kind of missed call",
    "not_fully_observed": "CallBuddy was offline for part of the call, so it could not be sure nobody answered",
    "found_late": "found in the phone system's records after CallBuddy had been offline; too late to text",
    "withheld_number": "the caller withheld their number",
    "internal_extension": "a call from one of your own phones",
    "invalid_number": "the caller's number is not a phone number",
    "own_number": "the caller is one of this business's own numbers",
    "not_a_mobile_number": "the caller's number cannot receive texts",
    "rang_too_briefly": "the caller hung up almost at once",
    "opted_out": "the caller asked not to be texted",
    "already_texted_in_window": "the caller was texted recently",
    "no_gateway": "no text service is set up",
}


def outcome(code: str) -> str:
    return OUTCOMES.get(code, code)


def text_reason(code: str) -> str:
    return TEXT_REASONS.get(code, code)


def text_state(code: str | None) -> str:
    return TEXT_STATES.get(code or "none", code or "")


def verdict(send: bool, reason: str) -> str:
    """The text-back decision as a sentence ("No text: the caller asked not to be texted."); how the text went is
    its state, shown beside it."""
    if send and reason == "deferred_quiet_hours":
        return f"CallBuddy will text the caller back {text_reason(reason)}."
    if send:
        return "CallBuddy chose to text the caller back."
    return f"No text: {text_reason(reason)}."
