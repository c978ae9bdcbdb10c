"""Calls desks place (asterisk/outbound.py): every real Asterisk recording through the pure outbound tracker."""

from __future__ import annotations

import pytest

from callbuddy_pbx.asterisk.ami_protocol import iter_stream
from callbuddy_pbx.asterisk.outbound import OutboundAnswer, OutboundTracker
from callbuddy_pbx.config import DEFAULT_INTERNAL_CONTEXTS
from tests.traces import TRACES_DIR, Trace, all_traces, drop_headers

TRACES = all_traces()
OUTBOUND = "16-outbound-call"  # desk 100 dials 15552223333 through the trunk; the far end answers
DESK_ANSWERED_AT = 1795256291.751  # the desk channel's DialEnd (ANSWER) in that recording


def answers(raw: bytes, tracker: OutboundTracker | None = None) -> list[OutboundAnswer]:
    tracker = tracker or OutboundTracker(DEFAULT_INTERNAL_CONTEXTS, {"PJSIP/100": "Glow Salon"})
    found: list[OutboundAnswer] = []
    for n, message in enumerate(iter_stream(raw)):
        found += tracker.feed(message, 1_800_000_000.0 + n)
    return found


def test_a_desk_calling_out_and_answered_is_one_answer() -> None:
    raw = (TRACES_DIR / OUTBOUND / "ami.raw").read_bytes()
    (answer,) = answers(raw)
    assert answer == OutboundAnswer("1795256289.59", "Glow Salon", "PJSIP/100", "+15552223333", DESK_ANSWERED_AT)


def test_a_desk_call_nobody_answered_is_no_answer() -> None:
    raw = (TRACES_DIR / OUTBOUND / "ami.raw").read_bytes()
    assert raw.count(b"DialStatus: ANSWER\r\n") == 1
    assert answers(raw.replace(b"DialStatus: ANSWER\r\n", b"DialStatus: NOANSWER\r\n")) == []


def test_without_timestamps_the_arrival_time_is_used() -> None:
    raw = drop_headers((TRACES_DIR / OUTBOUND / "ami.raw").read_bytes(), "Timestamp")
    (answer,) = answers(raw)
    assert 1_800_000_000.0 < answer.answered_at < 1_800_001_000.0


def test_a_desk_of_no_known_business_takes_the_default_or_none() -> None:
    raw = (TRACES_DIR / OUTBOUND / "ami.raw").read_bytes()
    (answer,) = answers(raw, OutboundTracker(DEFAULT_INTERNAL_CONTEXTS, {}, default_business="Only One"))
    assert answer.business == "Only One"
    (answer,) = answers(raw, OutboundTracker(DEFAULT_INTERNAL_CONTEXTS, {"PJSIP/101": "Other"}))
    assert answer.business is None


def test_outside_an_internal_context_nothing_is_followed() -> None:
    raw = (TRACES_DIR / OUTBOUND / "ami.raw").read_bytes()
    assert answers(raw, OutboundTracker(("somewhere-else",), {"PJSIP/100": "Glow Salon"})) == []


@pytest.mark.parametrize("trace", [t for t in TRACES if t.name != OUTBOUND], ids=lambda t: t.name)
def test_no_other_recording_is_a_call_out(trace: Trace) -> None:
    """Inbound calls (follow-me to a mobile included), desk-to-desk calls (15, 33): none is a desk calling out."""
    assert answers(trace.raw) == []


def test_a_second_dial_end_of_the_same_desk_is_not_a_second_answer() -> None:
    raw = (TRACES_DIR / OUTBOUND / "ami.raw").read_bytes()
    tracker = OutboundTracker(DEFAULT_INTERNAL_CONTEXTS, {"PJSIP/100": "Glow Salon"})
    messages = list(iter_stream(raw))
    dial_end = next(m for m in messages if m.get("Event") == "DialEnd")
    before_hangup = [m for m in messages if m.get("Event") != "Hangup"]
    found = [a for n, m in enumerate(before_hangup) for a in tracker.feed(m, float(n))]
    assert len(found) == 1
    assert tracker.feed(dial_end, 0.0) == []
    assert tracker.following == 1
    for message in messages:
        if message.get("Event") == "Hangup":
            tracker.feed(message, 0.0)
    assert tracker.following == 0  # forgotten once the desk hung up
