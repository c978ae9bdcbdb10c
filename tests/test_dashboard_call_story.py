"""What an owner reads about a call: the sentence made from the stored record and the configured phone names, the
words for device states and text-back decisions, and durations in one unit that never breaks over two lines.

Every expected sentence is written out by hand. "\u00a0" (a no-break space) joins a number to its unit.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.phone import mask
from callbuddy_pbx.web import labels
from callbuddy_pbx.web.call_story import call_story, leg_result
from callbuddy_pbx.web.phone_names import PhoneBook, device_state
from callbuddy_pbx.web.templating import seconds

T0 = 1_700_000_000.0
S = "\u00a0s"
BOOK = PhoneBook(
    (
        Phone("100", "Front desk", "Glow Salon"),
        Phone("101", "Back room", "Glow Salon", person="Mia"),
        Phone("102", "Mia's phone", "Glow Salon", person="Mia's phone"),  # a person named like the phone: once
    )
)


def full(number: str) -> str:
    return number


def leg(channel: str, endpoint: str, status: str | None, answered: bool = False, at: float = 2.0) -> LegRecord:
    return LegRecord(channel, endpoint, status, 16, answered, T0 + at, T0 + at + 15)


FRONT = leg("PJSIP/100-0000001a", "PJSIP/100", "CANCEL")
BACK = leg("PJSIP/101-0000001b", "PJSIP/101", "CANCEL")


def call(outcome: Outcome, *legs: LegRecord, ring_s: float | None = 15.0, **changes: object) -> CallRecord:
    record = CallRecord(
        linkedid="1796540796.179",
        business="Glow Salon",
        did="+15550001000",
        caller="+15557654321",
        caller_raw="5557654321",
        caller_name="Jane",
        outcome=outcome,
        answered_by=None,
        started_at=T0,
        ring_at=None if ring_s is None else T0 + 2,
        answered_at=None,
        ended_at=T0 + 2 + (ring_s or 0.0),
        hangup_cause=16,
        legs=legs,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "sentence"),
    [
        (
            call(Outcome.ABANDONED, FRONT, BACK),
            f"Rang Front desk and Mia (Back room) for 15{S}; nobody picked up; the caller hung up.",
        ),
        (call(Outcome.ABANDONED, ring_s=None), f"The caller hung up after 2{S}, before any phone rang."),
        (call(Outcome.NO_ANSWER, FRONT), f"Rang Front desk for 15{S}; nobody picked up."),
        (
            call(Outcome.VOICEMAIL, FRONT, BACK, ring_s=20.0),
            f"Rang Front desk and Mia (Back room) for 20{S}, then went to voicemail.",
        ),
        (call(Outcome.VOICEMAIL, ring_s=None), "Went straight to voicemail."),
        (call(Outcome.BUSY), "All phones were busy."),
        (call(Outcome.BUSY, FRONT), "Front desk was busy."),
        (call(Outcome.UNAVAILABLE, ring_s=None), "No phone could ring: none was connected."),
        (call(Outcome.QUEUE_ABANDONED, ring_s=40.0), f"The caller waited in line for 42{S}, then hung up."),
        (
            call(Outcome.ANSWERED, FRONT, replace(BACK, answered=True), answered_by="PJSIP/101", answered_at=T0 + 10),
            f"Answered by Mia (Back room) after 8{S}.",
        ),
    ],
    ids=lambda value: value.outcome.value if isinstance(value, CallRecord) else "",
)
def test_what_happened_in_words(record: CallRecord, sentence: str) -> None:
    assert call_story(record, BOOK, full) == sentence


def test_the_dialplans_own_channels_are_not_phones_and_each_phone_is_named_once() -> None:
    local = leg("Local/100@ring-group-00000006;1", "Local/100@ring-group", None)
    again = replace(FRONT, channel="PJSIP/100-0000001c", started_at=T0 + 5)
    record = call(Outcome.NO_ANSWER, local, FRONT, again, leg("PJSIP/102-0000001d", "PJSIP/102", "NOANSWER"))
    assert call_story(record, BOOK, full) == f"Rang Front desk and Mia's phone for 15{S}; nobody picked up."


def test_a_phone_not_in_the_configuration_is_called_by_its_extension() -> None:
    record = call(Outcome.NO_ANSWER, leg("PJSIP/104-0000001e", "PJSIP/104", "NOANSWER"))
    assert call_story(record, BOOK, full) == f"Rang phone 104 for 15{S}; nobody picked up."


def test_a_number_forwarded_to_is_shown_as_the_viewer_sees_numbers() -> None:
    mobile = leg("PJSIP/trunk-0000001f", "PJSIP/15557654321@trunk", "NOANSWER")
    record = call(Outcome.NO_ANSWER, FRONT, mobile)
    assert call_story(record, BOOK, full) == f"Rang Front desk and 15557654321 for 15{S}; nobody picked up."
    masked = call_story(record, BOOK, mask)
    assert "7654" not in masked and masked.startswith("Rang Front desk and 15*******21 for")


@pytest.mark.parametrize(
    ("status", "answered", "words"),
    [("ANSWER", True, "Picked up"), ("NOANSWER", False, "Not picked up"), ("CANCEL", False, "Stopped ringing"),
     ("BUSY", False, "Busy"), ("CHANUNAVAIL", False, "Not connected"), ("SOMETHING_NEW", False, "Not picked up")],
)  # fmt: skip
def test_how_each_phones_ringing_ended(status: str, answered: bool, words: str) -> None:
    assert leg_result(leg("PJSIP/100-00000001", "PJSIP/100", status, answered)) == words


DEVICE_WORDS = [
    ("NOT_INUSE", "Free"),
    ("INUSE", "On a call"),
    ("RINGING", "Ringing"),
    ("ONHOLD", "On hold"),
    ("UNAVAILABLE", "Not connected"),
    ("BUSY", "Busy"),
    ("INVALID", "Not set up"),
    ("SOME_NEW_STATE", "some new state"),  # a state Asterisk adds later: still readable
]


@pytest.mark.parametrize(("state", "words"), DEVICE_WORDS)
def test_device_states_in_words(state: str, words: str) -> None:
    assert device_state(state) == words


@pytest.mark.parametrize(
    ("send", "reason", "sentence"),
    [
        (True, "send", "CallBuddy chose to text the caller back."),
        (True, "deferred_quiet_hours", "CallBuddy will text the caller back when the quiet hours end."),
        (False, "opted_out", "No text: the caller asked not to be texted."),
        (False, "answered", "No text: the call was answered."),
    ],
)
def test_the_text_back_decision_in_words(send: bool, reason: str, sentence: str) -> None:
    assert labels.verdict(send, reason) == sentence


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.501, "0.5 s"), (8.44, "8.4 s"), (8.0, "8 s"), (12.4, "12 s"), (59.6, "1 min"), (125, "2 min 5 s"),
     (3725, "1 h 2 min"), (None, "")],
)  # fmt: skip
def test_durations_in_one_unit_that_fits(value: float | None, shown: str) -> None:
    assert seconds(value) == shown.replace(" ", "\u00a0")  # never broken over two lines
