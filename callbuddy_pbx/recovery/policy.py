"""Who gets a text after a missed call, when, and what it says — or the reason they do not. Pure, no I/O.

`decide()` takes everything it needs as arguments: the finished call, its business, what storage knows about the
caller (`PolicyFacts`) and the current time. `classify_inbound()` reads a reply (STOP, START, HELP).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

import phonenumbers

from callbuddy_pbx.config import Business
from callbuddy_pbx.config.cel import DEFAULT_TEXT_WITHIN_S
from callbuddy_pbx.message_text import fields_of, render
from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.phone import is_withheld
from callbuddy_pbx.recovery.schedule import is_open, next_allowed


class Reason(StrEnum):
    """Why a text is (or is not) sent. Stored with the call: the values are part of the product's interface."""

    SEND = "send"  # a text goes out at send_at (now, or after the hold-off)
    DEFERRED_QUIET_HOURS = "deferred_quiet_hours"  # a text goes out when the quiet hours end
    ANSWERED = "answered"
    NO_BUSINESS = "no_business"  # the number dialled belongs to no configured business
    TEXT_BACK_DISABLED = "text_back_disabled"
    OUTCOME_NOT_ENABLED = "outcome_not_enabled"  # e.g. voicemail, when the business texts only after no_answer
    NOT_FULLY_OBSERVED = "not_fully_observed"  # in progress when we connected: we may have missed an answer
    FOUND_LATE = "found_late"  # found in Asterisk's records (CEL) too long after it ended for a text to help
    WITHHELD_NUMBER = "withheld_number"
    INTERNAL_EXTENSION = "internal_extension"  # a short extension number such as 101
    INVALID_NUMBER = "invalid_number"  # caller ID that is no phone number
    OWN_NUMBER = "own_number"  # the caller is one of the business's own numbers
    NOT_A_MOBILE_NUMBER = "not_a_mobile_number"  # a landline, toll-free, premium-rate, ... number
    RANG_TOO_BRIEFLY = "rang_too_briefly"  # abandoned sooner than min_ring_s: likely a pocket dial
    OPTED_OUT = "opted_out"
    ALREADY_TEXTED_IN_WINDOW = "already_texted_in_window"
    NO_GATEWAY = "no_gateway"  # text-back on but no gateway named (loaded configurations always name one)


@dataclass(frozen=True, slots=True)
class PolicyFacts:
    """What storage knows about this caller and this business."""

    opted_out: bool = False
    last_text_at: float | None = None  # unix time of the last text sent or scheduled to this caller by this business


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one finished call. When `send` is False only `reason` (and `to`, when known) mean anything."""

    send: bool
    reason: Reason
    send_at: float = 0.0  # unix time: after the hold-off and outside quiet hours; never earlier than `now`
    text: str = ""
    sender: str = ""  # E.164 or alphanumeric sender id
    gateway: str = ""  # a configured gateway's name
    to: str = ""  # the caller, E.164
    link_token: str = ""  # set when `text` links to {public_url}/r/<link_token> (click tracking) instead
    link_url: str = ""  # ... and then the booking URL that token must redirect to


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    OTHER = "other"


# Types phonenumbers is sure cannot receive a text. FIXED_LINE_OR_MOBILE (all of NANP), VOIP and UNKNOWN (e.g.
# fictional or newly allocated ranges) are given the benefit of the doubt.
_NOT_MOBILE = frozenset(
    {
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.TOLL_FREE,
        phonenumbers.PhoneNumberType.PREMIUM_RATE,
        phonenumbers.PhoneNumberType.SHARED_COST,
        phonenumbers.PhoneNumberType.PAGER,
        phonenumbers.PhoneNumberType.UAN,
        phonenumbers.PhoneNumberType.VOICEMAIL,
    }
)


def decide(
    call: CallRecord,
    business: Business | None,
    facts: PolicyFacts,
    now: float,
    *,
    public_url: str = "",
    link_token: str = "",
    found_late_s: float = DEFAULT_TEXT_WITHIN_S,
) -> Decision:
    """Whether this finished call gets a text; the first rule that says no gives the reason.

    The template (business hours or after hours) is chosen by when the call started, and {date}/{time} show that
    moment in the business's time zone. The text goes out after `hold_off_s` from the end of the call and, when
    that falls in quiet hours, when they end: deferred, never dropped.

    Click tracking: when the business has `track_clicks`, `public_url` is set and the caller made a `link_token`
    (decide stays pure: it draws no random numbers), {booking_url} becomes `{public_url}/r/{link_token}` and the
    decision carries the token and its target (`link_token`, `link_url`) for the caller to store with the text.
    A template without {booking_url} uses no token.
    """
    reason = _refusal(call, business, facts, now, found_late_s)
    if reason is not None or business is None:
        return Decision(send=False, reason=reason or Reason.NO_BUSINESS, send_at=now, to=call.caller or "")
    assert call.caller is not None  # _refusal rules out withheld and invalid numbers
    settings = business.text_back
    zone = ZoneInfo(business.timezone)
    called_at = datetime.fromtimestamp(call.started_at, UTC)
    template = settings.template
    if settings.after_hours_template is not None and not is_open(business, called_at):
        template = settings.after_hours_template
    booking_url, token = business.booking_url, ""
    tracked = settings.track_clicks and public_url and link_token and business.booking_url
    if tracked and "booking_url" in fields_of(template):
        token = link_token
        booking_url = f"{public_url.rstrip('/')}/r/{token}"
    text = render(
        template,
        business=business.name,
        booking_url=booking_url,
        caller_name=call.caller_name,
        when=called_at.astimezone(zone),
    )
    # A PBX clock running ahead of ours must not postpone the text: the call cannot have ended after `now`.
    earliest = max(now, min(call.ended_at, now) + settings.hold_off_s)
    moment = datetime.fromtimestamp(earliest, UTC)
    allowed = next_allowed(settings.quiet_hours, zone, moment)
    deferred = allowed > moment
    return Decision(
        send=True,
        reason=Reason.DEFERRED_QUIET_HOURS if deferred else Reason.SEND,
        send_at=allowed.timestamp() if deferred else earliest,
        text=text,
        sender=_sender(call, business),
        gateway=settings.gateway or "",
        to=call.caller,
        link_token=token,
        link_url=business.booking_url if token else "",
    )


def _refusal(
    call: CallRecord, business: Business | None, facts: PolicyFacts, now: float, found_late_s: float
) -> Reason | None:
    if call.outcome is Outcome.ANSWERED:
        return Reason.ANSWERED
    if business is None:
        return Reason.NO_BUSINESS
    settings = business.text_back
    if not settings.enabled:
        return Reason.TEXT_BACK_DISABLED
    if call.outcome.value not in settings.outcomes:
        return Reason.OUTCOME_NOT_ENABLED
    if not call.observed_from_start:
        return Reason.NOT_FULLY_OBSERVED
    if call.from_cel and now - call.ended_at > found_late_s:
        return Reason.FOUND_LATE
    number_problem = _number_problem(call, business)
    if number_problem is not None:
        return number_problem
    if call.outcome is Outcome.ABANDONED and _ring_time(call) < settings.min_ring_s:
        return Reason.RANG_TOO_BRIEFLY
    if facts.opted_out:
        return Reason.OPTED_OUT
    if facts.last_text_at is not None and now - facts.last_text_at < settings.window_s:
        return Reason.ALREADY_TEXTED_IN_WINDOW
    if not settings.gateway:
        return Reason.NO_GATEWAY
    return None


def _number_problem(call: CallRecord, business: Business) -> Reason | None:
    if call.caller is None:
        if is_withheld(call.caller_raw):
            return Reason.WITHHELD_NUMBER
        raw = call.caller_raw.strip()
        if raw.isdigit() and len(raw) <= 6:
            return Reason.INTERNAL_EXTENSION
        return Reason.INVALID_NUMBER
    if call.caller in business.numbers:
        return Reason.OWN_NUMBER
    try:
        parsed = phonenumbers.parse(call.caller, business.default_region)
    except phonenumbers.NumberParseException:
        return Reason.INVALID_NUMBER
    if not phonenumbers.is_possible_number(parsed):
        return Reason.INVALID_NUMBER
    if phonenumbers.number_type(parsed) in _NOT_MOBILE:
        return Reason.NOT_A_MOBILE_NUMBER
    return None


def _ring_time(call: CallRecord) -> float:
    """How long the caller waited: from the first ring (or the start, when nothing rang) to the hang-up."""
    return max(0.0, call.ended_at - (call.ring_at if call.ring_at is not None else call.started_at))


def _sender(call: CallRecord, business: Business) -> str:
    """The configured sender, else the business number the caller dialled (so a reply reaches the same line)."""
    if business.text_back.sender:
        return business.text_back.sender
    if call.did in business.numbers or not business.numbers:
        return call.did
    return business.numbers[0]


# -- replies ---------------------------------------------------------------------------------------------------------

_OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"})
_OPT_IN = frozenset({"start", "unstop", "yes"})
_HELP = frozenset({"help", "info"})
# A reply that starts with one of these is an opt-out however it goes on ("Stop texting me", "unsubscribe please").
# CANCEL, END and QUIT are not among them: "Cancel my 3pm appointment" is no opt-out.
_OPT_OUT_FIRST_WORDS = frozenset({"stop", "stopall", "unsubscribe", "optout"})


def classify_inbound(text: str) -> Keyword:
    """What a reply asks for. Case, surrounding spaces and punctuation do not matter ("Stop.", " stop ", "STOP!");
    "OPT OUT", "opt-out" and "optout" are the same. A whole-message keyword decides; besides, a message whose first
    word is STOP, STOPALL, UNSUBSCRIBE or OPTOUT opts out (honouring an opt-out in doubt is the safe side).
    """
    words = _words(text)
    if not words:
        return Keyword.OTHER
    whole = "".join(words)
    if whole in _OPT_OUT:
        return Keyword.OPT_OUT
    if whole in _OPT_IN:
        return Keyword.OPT_IN
    if whole in _HELP:
        return Keyword.HELP
    first = "optout" if words[:2] == ["opt", "out"] else words[0]
    if first in _OPT_OUT_FIRST_WORDS:
        return Keyword.OPT_OUT
    return Keyword.OTHER


def _words(text: str) -> list[str]:
    """Lower-case words of a reply, punctuation and symbols (emoji included) dropped; 'opt-out' is 'opt out'."""
    normal = unicodedata.normalize("NFKC", text[:500]).casefold()
    kept = "".join(char if char.isalnum() else " " for char in normal)
    return kept.split()
