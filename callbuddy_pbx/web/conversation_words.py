"""What a conversation's entries and refusals say to an owner, in place of outbox states and codes. Pure."""

from __future__ import annotations

from callbuddy_pbx.store.conversations import ANSWER, OPTED_OUT, TOO_MANY, ThreadItem
from callbuddy_pbx.web.templating import when

OPTED_OUT_NOTE = "This caller asked not to get texts."
REFUSALS: dict[str, tuple[int, str]] = {  # reason -> (HTTP status, what the composer says)
    OPTED_OUT: (409, OPTED_OUT_NOTE + " Your answer was not sent; call them instead."),
    TOO_MANY: (429, "Several answers already went to this caller in the last minute. Wait a moment, then send."),
    "empty": (400, "Type an answer first."),
    "too_long": (400, "An answer can be at most 640 characters."),
    "bad_token": (400, "This form has expired. Reload the page and send again."),
    "not_set_up": (409, "Texting is not set up for this business, so answers cannot be sent."),
}
_TEXT_KINDS = {
    "missed_call": "Automatic text after the missed call",
    "help": "Automatic answer to HELP",
    "opt_out_confirmation": "Automatic confirmation of the opt-out",
}
_REPLY_KEYWORDS = {
    "opt_out": OPTED_OUT_NOTE,
    "opt_in": "The caller asked to get texts again.",
    "help": "The caller asked for help.",
}
_DONE = {
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Not delivered",
    "expired": "Not sent: the text service could not take it in time",
    "unknown": "Sent; no confirmation yet",
}


def refusal(reason: str | None) -> tuple[int, str]:
    return REFUSALS.get(reason or "", (400, "The answer could not be sent."))


def text_origin(item: ThreadItem) -> str:
    """Who wrote a text: the automatic text of its kind, or the person who answered."""
    if item.text_kind == ANSWER:
        return f"Answered by {item.author}" if item.author else "Answered"
    return _TEXT_KINDS.get(item.text_kind or "", "Text")


def text_status(item: ThreadItem, zone: str) -> str:
    """Where a text is, as an owner says it ("Delivered", "Waiting for quiet hours to end (08:00)")."""
    if item.state in _DONE:
        return _DONE[item.state]
    if item.state == "cancelled":
        return "Not sent: " + (OPTED_OUT_NOTE.lower() if item.error == "opted out" else "no longer needed")
    if item.state == "queued" and item.send_at is not None and item.send_at > item.at + 1:
        at = when(item.send_at, zone, "%H:%M")
        return f"Waiting for quiet hours to end ({at})" if item.text_kind == ANSWER else f"Going out at {at}"
    return "Sending"


def quiet_note(until: float, zone: str) -> str:
    """What the composer says during quiet hours."""
    return f"It is quiet hours: an answer sent now goes out at {when(until, zone, '%H:%M')}."


def reply_note(item: ThreadItem) -> str:
    """What a reply asked for beyond its words ("" for an ordinary reply)."""
    return _REPLY_KEYWORDS.get(item.keyword or "", "")
