"""Every real Asterisk recording, replayed through the pure call tracker, gives the outcome its meta.json expects."""

from __future__ import annotations

import pytest

from callbuddy_pbx.asterisk.ami_protocol import iter_stream
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.commands.replay import replay_bytes
from callbuddy_pbx.model import CallRecord
from tests.traces import Trace, all_traces, drop_events, drop_headers

TRACES = all_traces()
IDS = [t.name for t in TRACES]


def only_call_class(raw: bytes) -> bytes:
    """Keep only events of the AMI `call` class (plus non-events): the minimum `read =` the README asks for."""
    head, sep, body = raw.partition(b"\r\n")
    kept = [head + sep]
    for block in body.split(b"\r\n\r\n"):
        if not block:
            continue
        if block.startswith(b"Event: ") and b"Privilege: call," not in block:
            continue
        kept.append(block + b"\r\n\r\n")
    return b"".join(kept)


VARIANTS = {
    "recorded": lambda raw: raw,
    "no-CEL-Cdr": lambda raw: drop_events(raw, {"CEL", "Cdr"}),
    "no-Timestamp": lambda raw: drop_headers(drop_events(raw, {"CEL", "Cdr"}), "Timestamp"),
    "call-class-only": only_call_class,
    "no-DialEnd": lambda raw: drop_events(raw, {"DialEnd", "CEL", "Cdr"}),
}


def digits(value: str | None) -> str:
    return "".join(ch for ch in value or "" if ch.isdigit())


def assert_matches(trace: Trace, records: list[CallRecord]) -> None:
    expected = trace.expected()
    if not trace.inbound:
        assert records == [], f"{trace.name}: not an inbound call, yet reported {[r.outcome for r in records]}"
        return
    assert len(records) == len(expected), f"{trace.name}: {len(records)} calls reported, {len(expected)} expected"
    for want in expected:
        got = [r for r in records if digits(r.caller).endswith(digits(want.caller)[-10:])]
        assert len(got) == 1, f"{trace.name}: no single call for caller {want.caller}"
        assert got[0].outcome.value == want.outcome, f"{trace.name}: {got[0].outcome} != {want.outcome}"
        assert got[0].missed is want.missed


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("trace", TRACES, ids=IDS)
def test_trace_outcome(trace: Trace, variant: str) -> None:
    records = replay_bytes(VARIANTS[variant](trace.raw), InboundMatcher())
    assert_matches(trace, records)


ANSWERED_BY = {
    "03-answered": "PJSIP/101",
    "12-stasis-ari-answered": "PJSIP/100",
    "17-ring-all-one-declines-other-answers": "PJSIP/101",
    "19-in-order-second-answers": "PJSIP/101",
    "20-queue-answered-local-members": "PJSIP/101",  # through the queue member's Local channel halves
    "21-follow-me-external-answered": "PJSIP/15559876543@trunk",  # the owner's mobile, dialled through the trunk
    "29-stasis-ring-all-second-answers": "PJSIP/101",
    "32-stasis-app-not-connected-fail-open": "PJSIP/101",
}


@pytest.mark.parametrize("name", list(ANSWERED_BY))
def test_answered_by_names_the_device_a_person_picked_up(name: str) -> None:
    trace = next(t for t in TRACES if t.name == name)
    (record,) = replay_bytes(trace.raw, InboundMatcher())
    assert record.answered_by == ANSWERED_BY[name]
    assert record.answered_at is not None and record.started_at < record.answered_at <= record.ended_at


def test_call_details_of_a_ring_all_that_nobody_answered() -> None:
    trace = next(t for t in TRACES if t.name == "01-ring-no-answer")
    (record,) = replay_bytes(trace.raw, InboundMatcher())
    assert (record.caller, record.caller_name, record.did) == ("+15557654321", "Jane Caller", "+15550001000")
    assert record.ring_at is not None and record.ring_at - record.started_at < 0.1
    assert 14.9 < record.ended_at - record.started_at < 15.2  # the Dial timeout was 15 s
    assert [(leg.endpoint, leg.dial_status, leg.hangup_cause) for leg in record.legs] == [
        ("PJSIP/100", "NOANSWER", 0),
        ("PJSIP/101", "NOANSWER", 0),
    ]


@pytest.mark.parametrize("trace", TRACES, ids=IDS)
def test_memory_for_finished_calls_is_released(trace: Trace) -> None:
    tracker = CallTracker(InboundMatcher())
    for index, message in enumerate(iter_stream(trace.raw)):
        tracker.feed(message, 1000.0 + index)
    tracker.flush()
    assert tracker.active_calls == 0


def test_unknown_events_garbage_and_huge_varset_volume_change_nothing() -> None:
    trace = next(t for t in TRACES if t.name == "09-two-concurrent-calls")
    noise = b"".join(
        b"Event: VarSet\r\nPrivilege: dialplan,all\r\nChannel: PJSIP/trunk-0\r\nVariable: X\r\nValue: %d\r\n\r\n" % i
        for i in range(20_000)
    )
    garbage = b"Event: SomethingNewInAsterisk42\r\nFoo: bar\r\n\r\nthis line has no colon\r\n\r\n"
    head, sep, body = trace.raw.partition(b"\r\n")
    middle = body.index(b"Event: DialBegin")
    noisy = head + sep + body[:middle] + noise + garbage + body[middle:]
    assert_matches(trace, replay_bytes(noisy, InboundMatcher()))


def test_calls_are_judged_when_their_last_leg_is_gone_not_at_the_first_end_marker() -> None:
    """In 01 the caller's Hangup comes before desk 101's: the call is finished by the last Hangup."""
    trace = next(t for t in TRACES if t.name == "01-ring-no-answer")
    tracker = CallTracker(InboundMatcher())
    finished_at: list[str] = []
    for index, message in enumerate(iter_stream(trace.raw)):
        if tracker.feed(message, 1000.0 + index):
            finished_at.append(f"{message.get('Event')} {message.get('Channel')}")
    assert finished_at == ["Hangup PJSIP/101-0000003d"]


def test_the_recorded_traces_are_there() -> None:
    """Without ../shared the parametrized tests above would silently collect nothing."""
    assert len(TRACES) >= 20, f"expected the recorded Asterisk traces beside the repository, found {len(TRACES)}"
