"""What happened on a call, in an owner's words, from its stored record and the configured phone names (pure).

    "Rang Front desk and Mia (Back room) for 15 s; nobody picked up; the caller hung up."
    "Answered by Mia (Front desk) after 8 s."

The technical record (dial statuses, hang-up causes, channels) stays on the call page for admins only; this is
what everyone reads first.
"""

from __future__ import annotations

from collections.abc import Callable

from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.web.phone_names import PhoneBook
from callbuddy_pbx.web.templating import seconds

# Asterisk's DialStatus of one phone's leg, as it would be said of that phone.
LEG_RESULTS: dict[str, str] = {
    "ANSWER": "Picked up",
    "NOANSWER": "Not picked up",
    "CANCEL": "Stopped ringing",
    "BUSY": "Busy",
    "CHANUNAVAIL": "Not connected",
    "CONGESTION": "Could not ring",
    "DONTCALL": "Not picked up",
    "TORTURE": "Not picked up",
    "INVALIDARGS": "Could not ring",
}
_TECHS_NOT_PHONES = ("Local/", "Message/")  # halves of the dialplan's own plumbing, not something that rings


def leg_result(leg: LegRecord) -> str:
    """How one phone's ringing ended, in words."""
    if leg.answered:
        return "Picked up"
    if leg.dial_status is None:
        return "Rang" if leg.ended_at is not None else "Ringing"
    return LEG_RESULTS.get(leg.dial_status.upper(), "Not picked up")


def phone_legs(call: CallRecord) -> list[LegRecord]:
    """The legs that rang a phone or a forwarded number (the dialplan's Local halves left out)."""
    return [leg for leg in call.legs if not leg.endpoint.startswith(_TECHS_NOT_PHONES)]


def device_label(endpoint: str, book: PhoneBook, number: Callable[[str], str]) -> str:
    """A configured phone's name, or a number dialled through a trunk (`PJSIP/15559876543@trunk`) as `number`
    shows it to this viewer."""
    dialled, at, _trunk = endpoint.partition("/")[2].partition("@")
    if at and dialled.lstrip("+").isdigit():
        return number(dialled)
    return book.label(endpoint)


def rang_names(call: CallRecord, book: PhoneBook, number: Callable[[str], str]) -> list[str]:
    """Each phone that rang, once, in the order they started ringing."""
    names = [device_label(leg.endpoint, book, number) for leg in phone_legs(call)]
    return list(dict.fromkeys(names))


def ring_seconds(call: CallRecord) -> float | None:
    """How long it rang: from the first ring until answered or the end (None when nothing rang)."""
    if call.ring_at is None:
        return None
    until = call.answered_at if call.answered_at is not None else call.ended_at
    return max(0.0, until - call.ring_at)


def spoken_list(names: list[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _rang(names: list[str], ring_s: float | None) -> str:
    """ "Rang Front desk for 15 s" / "Rang for 15 s" / "Rang Front desk"."""
    who = f" {spoken_list(names)}" if names else ""
    how_long = f" for {seconds(ring_s)}" if ring_s is not None else ""
    return f"Rang{who}{how_long}"


def call_story(call: CallRecord, book: PhoneBook, number: Callable[[str], str]) -> str:
    """One or two sentences saying what happened on the call. `number` shows a number as the viewer may see it."""
    names = rang_names(call, book, number)
    ring_s = ring_seconds(call)
    rang = _rang(names, ring_s)
    outcome = call.outcome
    if outcome is Outcome.ANSWERED:
        who = device_label(call.answered_by, book, number) if call.answered_by else "someone"
        after = f" after {seconds(ring_s)}" if ring_s is not None else ""
        return f"Answered by {who}{after}."
    if outcome is Outcome.NO_ANSWER:
        return f"{rang}; nobody picked up."
    if outcome is Outcome.ABANDONED:
        if not names and ring_s is None:
            return f"The caller hung up after {seconds(call.duration_s)}, before any phone rang."
        return f"{rang}; nobody picked up; the caller hung up."
    if outcome is Outcome.VOICEMAIL:
        if not names and ring_s is None:
            return "Went straight to voicemail."
        return f"{rang}, then went to voicemail."
    if outcome is Outcome.BUSY:
        return (
            f"{spoken_list(names)} {'was' if len(names) == 1 else 'were'} busy." if names else "All phones were busy."
        )
    if outcome is Outcome.QUEUE_ABANDONED:
        return f"The caller waited in line for {seconds(call.duration_s)}, then hung up."
    return "No phone could ring: none was connected."  # Outcome.UNAVAILABLE
