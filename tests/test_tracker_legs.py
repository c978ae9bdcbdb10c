"""The call details owners see (legs, times, causes, who answered), checked against the raw AMI events of every trace.

The expected values are read straight from each recording by the small independent reader below (DialBegin/DialEnd,
Newstate, Hangup, BridgeEnter), never from the tracker itself. The tracker is fed with an arrival clock that differs
from the events' `Timestamp`, so every time it reports must come from the event, not from when it arrived; a second
pass strips `Timestamp` and then the arrival clock is the truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from callbuddy_pbx.asterisk.ami_protocol import iter_stream
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.model import CallRecord, LegRecord
from tests.traces import Trace, all_traces

TRACES = all_traces()
IDS = [t.name for t in TRACES]
ARRIVAL_SHIFT = 500.0  # the arrival clock runs this far behind the events' own Timestamp


@dataclass
class RawLeg:
    channel: str
    uniqueid: str
    started_at: float
    dial_string: str | None = None
    dial_status: str | None = None
    hangup_cause: int | None = None
    ended_at: float | None = None
    ringing_at: float | None = None
    up: bool = False

    @property
    def endpoint(self) -> str:
        # A number dialled through the trunk (`15559876543@trunk`) is the person; otherwise the device's name.
        if self.dial_string and re.fullmatch(r"[^/@]+@[^/@]+", self.dial_string):
            return f"PJSIP/{self.dial_string}"
        return re.sub(r"-[0-9a-f]{8}(;[12])?$", "", self.channel)


@dataclass
class RawCall:
    linkedid: str
    number: str
    name: str
    exten: str
    started_at: float
    ended_at: float | None = None
    hangup_cause: int | None = None
    legs: dict[str, RawLeg] = field(default_factory=dict)
    caller_answer_at: float | None = None  # the caller's own Dial (or queue) got ANSWER
    bridged_at: float | None = None  # the caller first shared a bridge with another channel
    person_answered: list[str] = field(default_factory=list)  # endpoints of non-Local legs with DialEnd ANSWER
    last_hangup_index: int = -1


def timed_events(trace: Trace, *, keep_timestamp: bool = True) -> list[tuple[dict[str, str], float, float]]:
    """(event, true time, arrival time) for every event; the true time is its Timestamp (or the arrival clock)."""
    out = []
    for index, message in enumerate(iter_stream(trace.raw)):
        event = dict(message)
        if keep_timestamp:
            true_at = float(event["Timestamp"]) if "Timestamp" in event else 0.0
            out.append((event, true_at, true_at - ARRIVAL_SHIFT))
        else:
            event.pop("Timestamp", None)
            out.append((event, 100.0 + index, 100.0 + index))
    return out


def read_calls(events: list[tuple[dict[str, str], float, float]]) -> dict[str, RawCall]:
    """Inbound trunk calls and their legs, read directly from the events (not through the tracker)."""
    calls: dict[str, RawCall] = {}
    bridges: dict[str, set[str]] = {}
    for index, (e, at, _) in enumerate(events):
        kind, uid, lid = e.get("Event"), e.get("Uniqueid", ""), e.get("Linkedid", "")
        if kind == "Newchannel" and uid == lid and e.get("Context") == "from-trunk" and e["ChannelState"] == "4":
            calls[lid] = RawCall(lid, e["CallerIDNum"], e["CallerIDName"], e["Exten"], at)
            continue
        call = calls.get(lid) or calls.get(e.get("DestLinkedid", ""))
        if call is None:
            continue
        if kind == "Newchannel":
            call.legs.setdefault(uid, RawLeg(e["Channel"], uid, at))
        elif kind == "DialBegin":
            leg = call.legs.setdefault(e["DestUniqueid"], RawLeg(e["DestChannel"], e["DestUniqueid"], at))
            leg.dial_string, leg.dial_status = e["DialString"], None
        elif kind == "DialEnd":
            leg = call.legs[e["DestUniqueid"]]
            leg.dial_status = e["DialStatus"]
            if e["DialStatus"] == "ANSWER":
                leg.up = True
                if e.get("Uniqueid") == call.linkedid and call.caller_answer_at is None:
                    call.caller_answer_at = at
                if not leg.channel.startswith("Local/"):
                    call.person_answered.append(leg.endpoint)
        elif kind == "Newstate" and uid in call.legs:
            leg = call.legs[uid]
            if e["ChannelState"] == "5" and leg.ringing_at is None:
                leg.ringing_at = at
            if e["ChannelState"] == "6":
                leg.up = True
        elif kind == "BridgeEnter":
            members = bridges.setdefault(e["BridgeUniqueid"], set())
            members.add(uid)
            if call.linkedid in members and len(members) > 1 and call.bridged_at is None:
                call.bridged_at = at
        elif kind == "Hangup":
            call.last_hangup_index = index
            if uid == call.linkedid:
                call.ended_at, call.hangup_cause = at, int(e["Cause"])
            else:
                call.legs[uid].ended_at, call.legs[uid].hangup_cause = at, int(e["Cause"])
    return calls


def feed_all(events: list[tuple[dict[str, str], float, float]]) -> tuple[list[CallRecord], dict[str, int]]:
    """Records the tracker returned, and the index of the event that returned each (by linkedid)."""
    tracker = CallTracker(InboundMatcher())
    records: list[CallRecord] = []
    finished_by: dict[str, int] = {}
    for index, (event, _, arrival) in enumerate(events):
        for record in tracker.feed(event, arrival):
            records.append(record)
            finished_by[record.linkedid] = index
    assert tracker.flush() == []  # every recorded call was over by the end of its recording
    assert tracker.active_calls == 0
    return records, finished_by


def expected_legs(call: RawCall) -> list[LegRecord]:
    return [
        LegRecord(
            channel=leg.channel,
            endpoint=leg.endpoint,
            dial_status=leg.dial_status,
            hangup_cause=leg.hangup_cause,
            answered=leg.up,
            started_at=leg.started_at,
            ended_at=leg.ended_at,
        )
        for leg in sorted(call.legs.values(), key=lambda leg: leg.started_at)
    ]


@pytest.mark.parametrize("keep_timestamp", [True, False], ids=["Timestamp", "arrival-clock"])
@pytest.mark.parametrize("trace", TRACES, ids=IDS)
def test_call_details_match_the_raw_events(trace: Trace, keep_timestamp: bool) -> None:
    events = timed_events(trace, keep_timestamp=keep_timestamp)
    calls = read_calls(events)
    records, finished_by = feed_all(events)
    if not trace.inbound:
        assert records == []
        return
    assert sorted(r.linkedid for r in records) == sorted(calls)
    for record in records:
        call = calls[record.linkedid]
        assert (record.business, record.did) == (None, f"+{call.exten}")
        assert (record.caller, record.caller_raw, record.caller_name) == (f"+{call.number}", call.number, call.name)
        assert (record.started_at, record.ended_at, record.hangup_cause) == (
            call.started_at,
            call.ended_at,
            call.hangup_cause,
        )
        rings = [leg.ringing_at for leg in call.legs.values() if leg.ringing_at is not None]
        assert record.ring_at == (min(rings) if rings else None)
        assert list(record.legs) == expected_legs(call), trace.name
        assert record.observed_from_start is True
        # judged by the last Hangup of its channels, not earlier, not later
        assert finished_by[record.linkedid] == call.last_hangup_index


@pytest.mark.parametrize("trace", TRACES, ids=IDS)
def test_who_answered_and_when_match_the_raw_events(trace: Trace) -> None:
    events = timed_events(trace)
    calls = read_calls(events)
    records, _ = feed_all(events)
    outcome_of = {want.caller: want.outcome for want in trace.expected()}  # meta.json, not the tracker
    for record in records:
        call = calls[record.linkedid]
        if outcome_of[call.number] == "answered":
            (person,) = call.person_answered
            connected = [t for t in (call.caller_answer_at, call.bridged_at) if t is not None]
            assert (record.answered_by, record.answered_at) == (person, min(connected)), trace.name
        else:
            assert (record.answered_by, record.answered_at) == (None, None), trace.name
            assert call.person_answered == [] and call.bridged_at is None
