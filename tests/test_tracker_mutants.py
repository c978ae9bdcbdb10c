"""Call tracker rules the recordings do not reach, as small hand-written event sequences.

Reconnects (CoreShowChannels snapshots: reconcile, adoption), renames, queue agents, bridges shared with other calls,
lost events. Each sequence is what Asterisk sends (see ../shared/traces/asterisk), cut down to the events that matter.
Times: every event carries its own `Timestamp` and arrives a little later; where a test runs with `timestamps=False`
the header is dropped and the arrival time is the only clock, and the answers must be the same.
"""

from __future__ import annotations

import pytest

from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.config import Business
from callbuddy_pbx.model import CallRecord, Outcome

Event = dict[str, str]
LATE = 0.25  # how long after its Timestamp an event arrives
T0 = 1_800_000_000.0  # times below are seconds after this (a Timestamp must look like a real clock reading)


def t(offset: float) -> float:
    return T0 + offset


def chan(name: str, uid: str, lid: str = "1.1") -> Event:
    return {"Channel": name, "Uniqueid": uid, "Linkedid": lid}


CALLER = chan("PJSIP/trunk-00000001", "1.1")
D100 = chan("PJSIP/100-00000002", "1.2")
D101 = chan("PJSIP/101-00000003", "1.3")
L1 = chan("Local/100@agents-00000004;1", "1.4")
L2 = chan("Local/100@agents-00000004;2", "1.5")
PICKER = chan("PJSIP/102-00000009", "2.9", "2.9")  # a desk on its own call (its own Linkedid)
BOTH_TIMINGS = pytest.mark.parametrize("timestamps", [True, False], ids=["Timestamp", "arrival"])


def e(at: float, kind: str, channel: Event, **fields: str) -> Event:
    return {"Event": kind, "Timestamp": repr(t(at)), **channel, **fields}


def inbound(at: float, caller: Event = CALLER, **fields: str) -> Event:
    base = {"ChannelState": "4", "Exten": "15550001000", "Context": "from-trunk"}
    return e(
        at, "Newchannel", caller, **{**base, "CallerIDNum": "15557654321", "CallerIDName": "Jane Caller", **fields}
    )


def new_leg(at: float, leg: Event, state: str = "0") -> Event:
    return e(at, "Newchannel", leg, ChannelState=state, Context="from-internal", Exten="s")


def dial(at: float, dest: Event, status: str | None = None, dialer: Event = CALLER, dial_string: str = "") -> Event:
    fields = {
        "DestChannel": dest["Channel"],
        "DestUniqueid": dest["Uniqueid"],
        "DestLinkedid": dest["Linkedid"],
        "DialString": dial_string or dest["Channel"].split("/")[1].split("-")[0],
    }
    if status is None:
        return e(at, "DialBegin", dialer, **fields)
    return e(at, "DialEnd", dialer, **fields, DialStatus=status)


def ring(at: float, leg: Event, dialer: Event = CALLER) -> list[Event]:
    return [new_leg(at, leg), dial(at + 0.01, leg, dialer=dialer), e(at + 0.02, "Newstate", leg, ChannelState="5")]


def up(at: float, channel: Event) -> Event:
    return e(at, "Newstate", channel, ChannelState="6")


def hangup(at: float, channel: Event, cause: str = "16") -> Event:
    return e(at, "Hangup", channel, Cause=cause)


def caller_leaves(at: float, cause: str = "16") -> list[Event]:
    return [e(at, "HangupRequest", CALLER), hangup(at + 0.01, CALLER, cause)]


def bridge(at: float, kind: str, channel: Event, bridge_id: str) -> Event:
    return e(at, kind, channel, BridgeUniqueid=bridge_id)


def feed(tracker: CallTracker, events: list[Event], *, timestamps: bool = True) -> list[CallRecord]:
    records: list[CallRecord] = []
    for event in events:
        at = float(event["Timestamp"]) if "Timestamp" in event else 0.0
        if not timestamps:
            event = {k: v for k, v in event.items() if k != "Timestamp"}
        records += tracker.feed(event, (at + LATE) if timestamps else at)
    return records


def play(events: list[Event], *, timestamps: bool = True, matcher: InboundMatcher | None = None) -> list[CallRecord]:
    tracker = CallTracker(matcher or InboundMatcher())
    records = feed(tracker, events, timestamps=timestamps)
    records += tracker.flush()
    return records


def one(events: list[Event], **kwargs: object) -> CallRecord:
    (record,) = play(events, **kwargs)  # type: ignore[arg-type]
    return record


# ---- renames, caller ID changes, late DIDs -----------------------------------------------------------------------


def test_a_renamed_leg_is_shown_under_its_new_name() -> None:
    renamed = "PJSIP/101-0000000f"
    events = [
        inbound(10.0),
        *ring(10.1, D101),
        e(11.0, "Rename", D101, Newname=renamed),
        dial(12.0, D101, "NOANSWER"),
        hangup(12.1, D101, "0"),
        hangup(12.2, CALLER),
    ]
    record = one(events)
    assert [(leg.channel, leg.endpoint) for leg in record.legs] == [(renamed, "PJSIP/101")]
    # a Rename that does not say the new name changes nothing; one for a channel we do not know is ignored
    events[4] = e(11.0, "Rename", D101)
    events.insert(5, e(11.1, "Rename", chan("PJSIP/102-00000010", "9.9"), Newname="x"))
    assert [leg.channel for leg in one(events).legs] == [D101["Channel"]]


def test_a_renamed_local_half_is_still_followed_to_the_person_behind_it() -> None:
    """Local channel optimisation renames halves: the twin is found under the new names."""
    l1 = chan("Local/100@agents-00000004;1", "1.4")
    l2 = chan("Local/100@agents-00000004;2", "1.5")
    events = [
        inbound(10.0),
        new_leg(10.1, chan("Local/tmp-00000001;1", "1.4"), "0"),
        new_leg(10.1, chan("Local/tmp-00000001;2", "1.5"), "4"),
        e(10.2, "Rename", chan("Local/tmp-00000001;1", "1.4"), Newname=l1["Channel"]),
        e(10.2, "Rename", chan("Local/tmp-00000001;2", "1.5"), Newname=l2["Channel"]),
        dial(10.3, l1, dial_string="Local/100@agents/n"),
        *ring(10.4, D100, dialer=l2),
        up(13.0, D100),
        dial(13.0, D100, "ANSWER", dialer=l2),
        dial(13.1, l1, "ANSWER"),
        *caller_leaves(20.0),
        hangup(20.1, D100),
        hangup(20.2, l2),
        hangup(20.3, l1),
    ]
    record = one(events)
    assert (record.outcome, record.answered_by, record.answered_at) == (Outcome.ANSWERED, "PJSIP/100", t(13.1))


def test_caller_id_updated_by_newcallerid_is_what_the_record_shows() -> None:
    events = [
        inbound(10.0, CallerIDNum="", CallerIDName=""),
        e(10.1, "NewCallerid", CALLER, CallerIDNum="15553334444", CallerIDName="Bob Second"),
        e(10.2, "NewCallerid", CALLER),  # nothing new in it: keeps what we have, and says nothing about privacy
        e(10.3, "NewCallerid", D100, CallerIDNum="100", CallerIDName="Desk 100"),  # not the caller's
        hangup(11.0, CALLER, "3"),
    ]
    record = one(events)
    assert (record.caller, record.caller_raw, record.caller_name) == ("+15553334444", "15553334444", "Bob Second")


def test_a_newchannel_without_caller_id_headers_gives_an_empty_caller() -> None:
    bare = {k: v for k, v in inbound(10.0).items() if k not in ("CallerIDNum", "CallerIDName")}
    record = one([bare, hangup(11.0, CALLER, "3")])
    assert (record.caller, record.caller_raw, record.caller_name) == (None, "", None)


def test_caller_number_is_read_in_the_business_region() -> None:
    salon = Business(name="Salon", numbers=("+442079460000",), default_region="GB")
    events = [inbound(10.0, CallerIDNum="07700900123", Exten="02079460000"), hangup(11.0, CALLER, "3")]
    record = one(events, matcher=InboundMatcher((salon,)))
    assert (record.business, record.did, record.caller) == ("Salon", "+442079460000", "+447700900123")


def test_a_did_reached_by_the_dialplan_from_another_context_counts() -> None:
    """No businesses configured: the call arrives in a context of its own and jumps to the inbound context."""
    events = [
        inbound(10.0, Context="pstn-entry", Exten="s"),
        e(10.1, "Newexten", CALLER, Context="pstn-entry", Exten="s", Application="Goto"),
        e(10.2, "Newexten", CALLER, Context="from-trunk", Exten="15550001000", Application="Dial"),
        e(10.3, "Newexten", CALLER, Context="from-trunk", Exten="15550001099", Application="Dial"),  # first one holds
        e(10.4, "Newexten", D100, Context="from-trunk", Exten="15550001099"),  # not a channel of ours
        hangup(11.0, CALLER, "3"),
    ]
    record = one(events)
    assert record.did == "+15550001000"


def test_a_newexten_without_application_header_is_not_an_error() -> None:
    events = [inbound(10.0), e(10.1, "Newexten", CALLER, Context="from-trunk", Exten="x"), hangup(11.0, CALLER, "3")]
    assert one(events).outcome is Outcome.UNAVAILABLE


# ---- which new channels start a call -----------------------------------------------------------------------------


def test_only_a_ringing_first_channel_starts_a_call() -> None:
    down = inbound(10.0, ChannelState="0")  # an originated channel (Down), not a caller
    assert play([down, hangup(11.0, CALLER)]) == []
    other = chan("PJSIP/trunk-00000005", "3.2", "3.1")  # Ring, but in a Linkedid started elsewhere
    assert play([inbound(10.0, other), hangup(11.0, other)]) == []


def test_internal_calls_are_not_followed_at_all() -> None:
    tracker = CallTracker(InboundMatcher())
    desk = chan("PJSIP/100-00000005", "3.1", "3.1")
    feed(tracker, [inbound(10.0, desk, Context="from-internal", Exten="101")])
    assert tracker.active_calls == 0


def test_a_trunk_endpoint_matcher_uses_the_callers_channel_name() -> None:
    matcher = InboundMatcher(contexts=(), trunk_endpoints=("PJSIP/trunk",))
    events = [inbound(10.0, Context="anything"), hangup(11.0, CALLER, "3")]
    assert one(events, matcher=matcher).did == "+15550001000"
    snapshot = [{**CALLER, "ChannelState": "4", "Context": "anything", "Exten": "15550001000"}]
    tracker = CallTracker(matcher)
    tracker.reconcile(snapshot, now=t(50.0))
    (record,) = feed(tracker, [hangup(51.0, CALLER, "3")])
    assert record.did == "+15550001000"


# ---- legs whose Newchannel we never saw, DialEnd details, device results ------------------------------------------


@BOTH_TIMINGS
def test_a_leg_first_seen_in_dialbegin_starts_there(timestamps: bool) -> None:
    events = [
        inbound(10.0),
        dial(10.5, D100),  # its Newchannel was lost
        dial(15.0, D100, "ANSWER"),  # and so was its Newstate Up
        *caller_leaves(20.0),
        hangup(20.1, D100),
    ]
    record = one(events, timestamps=timestamps)
    ((leg),) = record.legs
    assert (leg.channel, leg.started_at, leg.answered, leg.ended_at) == (D100["Channel"], t(10.5), True, t(20.1))
    assert (record.outcome, record.answered_by, record.answered_at) == (Outcome.ANSWERED, "PJSIP/100", t(15.0))


def test_an_unknown_dial_status_counts_as_no_answer() -> None:
    events = [inbound(10.0), *ring(10.1, D100), dial(20.0, D100, "SOMETHINGNEW"), hangup(20.1, D100, "0")]
    assert one([*events, hangup(20.2, CALLER)]).outcome is Outcome.NO_ANSWER


def test_without_dialend_a_leg_that_never_rang_says_why_by_its_hangup_cause() -> None:
    absent = [inbound(10.0), new_leg(10.1, D100), dial(10.2, D100), hangup(10.3, D100, "20"), hangup(10.4, CALLER)]
    assert one(absent).outcome is Outcome.UNAVAILABLE  # subscriber absent: it could not ring
    cleared = [inbound(10.0), new_leg(10.1, D100), dial(10.2, D100), hangup(12.0, D100, "16"), hangup(12.1, CALLER)]
    assert one(cleared).outcome is Outcome.NO_ANSWER  # ended by the application before ringing
    rang = [inbound(10.0), *ring(10.1, D100), hangup(20.0, D100, "20"), hangup(20.1, CALLER)]
    assert one(rang).outcome is Outcome.NO_ANSWER  # it rang: it was reachable


def test_caller_turned_away_busy_with_no_device_tried_is_busy() -> None:
    assert one([inbound(10.0), hangup(10.5, CALLER, "17")]).outcome is Outcome.BUSY
    unreachable = [inbound(10.0), new_leg(10.1, D100), dial(10.2, D100, "CHANUNAVAIL"), hangup(10.3, D100, "20")]
    assert one([*unreachable, hangup(10.5, CALLER, "17")]).outcome is Outcome.UNAVAILABLE


# ---- who hung up ---------------------------------------------------------------------------------------------------


def test_a_desk_declining_is_not_the_caller_hanging_up() -> None:
    events = [
        inbound(10.0),
        *ring(10.1, D100),
        *ring(10.1, D101),
        e(12.0, "HangupRequest", D100),  # desk 100 declines; 101 keeps ringing
        dial(12.0, D100, "BUSY"),
        hangup(12.1, D100, "21"),
        dial(25.0, D101, "NOANSWER"),
        hangup(25.1, D101, "0"),
        e(25.2, "SoftHangupRequest", CALLER, Cause="16"),
        hangup(25.3, CALLER),
    ]
    assert one(events).outcome is Outcome.NO_ANSWER


def test_a_caller_answered_by_an_ivr_who_hangs_up_while_a_desk_rings_abandoned() -> None:
    events = [inbound(10.0), up(10.1, CALLER), *ring(15.0, D100), *caller_leaves(18.0), hangup(18.1, D100, "16")]
    assert one(events).outcome is Outcome.ABANDONED


def test_a_caller_answered_by_an_ivr_who_hangs_up_while_a_local_member_rings_abandoned() -> None:
    events = [
        inbound(10.0),
        up(10.1, CALLER),
        new_leg(15.0, L1),
        new_leg(15.0, L2, "4"),
        dial(15.1, L1, dial_string="Local/100@agents/n"),
        *caller_leaves(18.0),
        hangup(18.1, L2),
        hangup(18.2, L1),
    ]
    assert one(events).outcome is Outcome.ABANDONED


def test_a_caller_hanging_up_on_an_announcement_heard_an_application() -> None:
    announcer = chan("Announcer/ARI_MOH-00000001;1", "1.20")
    events = [
        inbound(10.0),
        up(10.1, CALLER),
        bridge(10.2, "BridgeEnter", CALLER, "hold"),
        bridge(10.3, "BridgeEnter", announcer, "hold"),
        *caller_leaves(15.0),  # the announcer is still playing
        hangup(15.1, announcer),
    ]
    assert one(events).outcome is Outcome.VOICEMAIL


def test_caller_hanging_up_before_anything_was_dialled_abandoned() -> None:
    assert one([inbound(10.0), *caller_leaves(10.5)]).outcome is Outcome.ABANDONED


def test_caller_hanging_up_between_two_dials_after_the_first_rang_out_is_no_answer() -> None:
    events = [
        inbound(10.0),
        *ring(10.1, D100),
        dial(15.1, D100, "NOANSWER"),
        hangup(15.2, D100, "0"),
        *caller_leaves(15.3),  # before the hunt line's second Dial began
    ]
    assert one(events).outcome is Outcome.NO_ANSWER


def test_a_second_hanguprequest_after_the_caller_is_gone_changes_nothing() -> None:
    events = [inbound(10.0), *ring(10.1, D100), dial(20.0, D100, "NOANSWER"), hangup(20.1, CALLER)]
    events += [e(20.2, "HangupRequest", CALLER), hangup(20.3, D100, "0")]
    assert one(events).outcome is Outcome.NO_ANSWER


# ---- queues ------------------------------------------------------------------------------------------------------


def queue_ringing(at: float) -> list[Event]:
    return [
        new_leg(at, L1),
        new_leg(at, L2, "4"),
        dial(at + 0.1, L1, dial_string="Local/100@agents/n"),
        *ring(at + 0.2, D100, dialer=L2),
    ]


def test_queuecallerabandon_alone_says_queue_abandoned() -> None:
    """With only the `call` class (no Newexten), QueueCallerAbandon is how we know the caller was in a queue."""
    events = [
        inbound(10.0),
        *queue_ringing(10.1),
        e(14.0, "QueueCallerAbandon", CALLER, Queue="support"),
        e(14.0, "QueueCallerAbandon", chan("PJSIP/trunk-00000077", "7.7", "7.7")),  # another call's
        *caller_leaves(14.1),
        hangup(14.2, D100, "0"),
        hangup(14.3, L2),
        hangup(14.4, L1),
    ]
    assert one(events).outcome is Outcome.QUEUE_ABANDONED


@BOTH_TIMINGS
def test_agentconnect_alone_connects_the_caller_to_the_member(timestamps: bool) -> None:
    events = [
        inbound(10.0),
        *queue_ringing(10.1),
        up(13.0, D100),
        bridge(13.1, "BridgeEnter", D100, "member"),
        bridge(13.2, "BridgeEnter", L2, "member"),
        e(13.5, "AgentConnect", CALLER, DestChannel=L1["Channel"], DestUniqueid=L1["Uniqueid"]),
        e(13.6, "AgentConnect", CALLER),  # without a member: nothing to link
        e(13.6, "AgentConnect", PICKER, DestUniqueid="2.10"),  # a call we do not follow
        *caller_leaves(20.0),
        hangup(20.1, D100),
        hangup(20.2, L2),
        hangup(20.3, L1),
    ]
    record = one(events, timestamps=timestamps)
    assert (record.outcome, record.answered_by, record.answered_at) == (Outcome.ANSWERED, "PJSIP/100", t(13.5))


def test_an_agent_channel_we_never_saw_is_no_person() -> None:
    events = [
        inbound(10.0),
        e(13.5, "AgentConnect", CALLER, DestChannel="PJSIP/100-000000aa", DestUniqueid="1.99"),
        *caller_leaves(20.0),
    ]
    record = one(events)
    assert (record.outcome, record.answered_by) == (Outcome.ABANDONED, None)


def test_a_local_half_whose_twin_was_never_seen_counts_as_the_person() -> None:
    events = [
        inbound(10.0),
        new_leg(10.1, L1),
        dial(10.2, L1, dial_string="Local/100@agents/n"),
        up(13.0, L1),
        dial(13.0, L1, "ANSWER"),
        *caller_leaves(20.0),
        hangup(20.1, L1),
    ]
    record = one(events)
    assert (record.outcome, record.answered_by, record.answered_at) == (Outcome.ANSWERED, "Local/100@agents", t(13.0))


def test_a_caller_bridged_with_the_second_local_half_reaches_the_person_behind_the_first() -> None:
    events = [
        inbound(10.0),
        up(10.1, CALLER),
        new_leg(11.0, L1, "4"),
        new_leg(11.0, L2),
        *ring(11.1, D100, dialer=L1),
        up(13.0, D100),
        dial(13.0, D100, "ANSWER", dialer=L1),
        bridge(13.2, "BridgeEnter", CALLER, "b"),
        bridge(13.3, "BridgeEnter", L2, "b"),
        *caller_leaves(20.0),
        hangup(20.1, L2),
        hangup(20.2, L1),
        hangup(20.3, D100),
    ]
    record = one(events)
    assert (record.outcome, record.answered_by, record.answered_at) == (Outcome.ANSWERED, "PJSIP/100", t(13.3))


def test_the_first_person_connected_is_the_one_who_answered() -> None:
    events = [
        inbound(10.0),
        *ring(10.1, D101),
        up(12.0, D101),
        dial(12.0, D101, "ANSWER"),
        bridge(12.1, "BridgeEnter", D101, "b"),
        bridge(12.2, "BridgeEnter", CALLER, "b"),
        bridge(30.0, "BridgeEnter", PICKER, "b"),  # a colleague joins later (another call of ours? no: a desk)
        *caller_leaves(40.0),
        hangup(40.1, D101),
    ]
    record = one(events)
    assert (record.answered_by, record.answered_at) == ("PJSIP/101", t(12.0))


# ---- bridges shared with channels of other calls -----------------------------------------------------------------


def test_a_picker_already_in_the_bridge_when_the_caller_enters_answered() -> None:
    events = [
        inbound(10.0),
        *ring(10.1, D100),
        bridge(14.0, "BridgeEnter", PICKER, "b-7"),
        bridge(14.1, "BridgeEnter", CALLER, "b-7"),
        dial(14.2, D100, "CANCEL"),
        hangup(14.3, D100, "26"),
        *caller_leaves(20.0),
    ]
    record = one(events)
    assert (record.outcome, record.answered_by, record.answered_at) == (Outcome.ANSWERED, "PJSIP/102", t(14.1))


def test_someone_who_left_the_bridge_before_the_caller_came_did_not_answer() -> None:
    events = [
        inbound(10.0),
        up(10.1, CALLER),
        bridge(11.0, "BridgeEnter", PICKER, "b-8"),
        bridge(11.5, "BridgeLeave", PICKER, "b-8"),
        bridge(11.6, "BridgeLeave", D100, "b-unknown"),  # a bridge we never saw: ignored
        bridge(12.0, "BridgeEnter", CALLER, "b-8"),
        *caller_leaves(20.0),
    ]
    assert one(events).outcome is Outcome.VOICEMAIL


def test_a_destroyed_bridge_is_forgotten() -> None:
    events = [
        bridge(11.0, "BridgeEnter", PICKER, "b-9"),
        e(11.5, "BridgeDestroy", {}, BridgeUniqueid="b-9"),  # its BridgeLeave was lost
        e(11.6, "BridgeDestroy", {}, BridgeUniqueid="never-seen"),
        inbound(12.0),
        up(12.1, CALLER),
        bridge(12.2, "BridgeEnter", CALLER, "b-9"),
        *caller_leaves(20.0),
    ]
    assert one(events).outcome is Outcome.VOICEMAIL


# ---- reconnects: reconcile and adoption --------------------------------------------------------------------------


def snap(channel: Event, state: str, **fields: str) -> Event:
    return {**channel, "ChannelState": state, "BridgeId": "", **fields}


def test_reconcile_keeps_calls_that_are_still_live_as_they_were() -> None:
    tracker = CallTracker(InboundMatcher())
    feed(tracker, [inbound(10.0), *ring(10.1, D100)])
    assert tracker.reconcile([snap(CALLER, "4"), snap(D100, "5")], now=t(50.0)) == []
    assert tracker.reconcile([snap(CALLER, "4"), snap(D100, "5")], now=t(51.0)) == []
    (record,) = feed(tracker, [*caller_leaves(60.0), dial(60.1, D100, "CANCEL"), hangup(60.2, D100, "0")])
    assert (record.outcome, record.observed_from_start, record.started_at) == (Outcome.ABANDONED, True, t(10.0))
    assert (record.ring_at, record.legs[0].answered) == (t(10.1 + 0.02), False)


def test_reconcile_finishes_every_call_that_ended_while_we_were_away() -> None:
    tracker = CallTracker(InboundMatcher())
    second = chan("PJSIP/trunk-00000008", "4.1", "4.1")
    feed(tracker, [inbound(10.0), inbound(11.0, second, CallerIDNum="15553334444")])
    records = tracker.reconcile([], now=t(50.0))
    assert sorted(r.caller or "" for r in records) == ["+15553334444", "+15557654321"]
    assert {(r.ended_at, r.observed_from_start) for r in records} == {(t(50.0), False)}


def test_reconcile_learns_who_answered_during_the_gap_from_the_bridges() -> None:
    tracker = CallTracker(InboundMatcher())
    feed(tracker, [inbound(10.0), *ring(10.1, D100), *ring(10.1, D101)])
    live = [snap(CALLER, "6", BridgeId="talk"), snap(D100, "5"), snap(D101, "6", BridgeId="talk")]
    assert tracker.reconcile(live, now=t(50.0)) == []
    (record,) = feed(tracker, [hangup(60.0, D100, "26"), hangup(61.0, D101), hangup(61.1, CALLER)])
    assert (record.outcome, record.answered_by, record.answered_at) == (Outcome.ANSWERED, "PJSIP/101", t(50.0))
    assert [leg.answered for leg in record.legs] == [False, True]


def test_reconcile_does_not_connect_channels_in_different_bridges_or_in_none() -> None:
    tracker = CallTracker(InboundMatcher())
    feed(tracker, [inbound(10.0), up(10.1, CALLER), *ring(10.2, D100)])
    live = [{**CALLER, "ChannelState": "6", "BridgeId": "hold"}, {**D100, "ChannelState": "6", "BridgeId": "other"}]
    tracker.reconcile(live, now=t(50.0))
    bare = [{**CALLER, "ChannelState": "6"}, {**D100, "ChannelState": "6"}]  # no BridgeId header at all
    tracker.reconcile(bare, now=t(51.0))
    (record,) = feed(tracker, [*caller_leaves(60.0), hangup(60.2, D100)])
    assert (record.outcome, record.answered_by) == (Outcome.ABANDONED, None)  # left while desk 100 rang


def test_a_bridge_of_another_call_still_live_after_reconnect_is_remembered() -> None:
    """A colleague (on a call we do not follow) sits in a bridge across the reconnect; the caller then joins it."""
    tracker = CallTracker(InboundMatcher())
    feed(tracker, [bridge(5.0, "BridgeEnter", PICKER, "b-7"), bridge(5.0, "BridgeEnter", D101, "b-gone")])
    feed(tracker, [inbound(10.0), up(10.1, CALLER)])
    tracker.reconcile([snap(CALLER, "6"), {**PICKER, "ChannelState": "6"}], now=t(50.0))
    (record,) = feed(tracker, [bridge(55.0, "BridgeEnter", CALLER, "b-7"), *caller_leaves(60.0)])
    assert (record.outcome, record.answered_by) == (Outcome.ANSWERED, "PJSIP/102")
    assert "b-gone" not in tracker._bridges


def test_a_leg_of_a_call_we_follow_shown_in_a_bridge_after_reconnect_answers_a_caller_who_joins() -> None:
    tracker = CallTracker(InboundMatcher())
    first_caller = chan("PJSIP/trunk-00000008", "4.1", "4.1")
    desk = chan("PJSIP/100-00000009", "4.2", "4.1")
    feed(tracker, [inbound(1.0, first_caller), *ring(1.1, desk, dialer=first_caller), inbound(10.0), up(10.1, CALLER)])
    tracker.reconcile([snap(first_caller, "4"), snap(desk, "6", BridgeId="b-3"), snap(CALLER, "6")], now=t(50.0))
    (record,) = feed(tracker, [bridge(55.0, "BridgeEnter", CALLER, "b-3"), *caller_leaves(60.0)])
    assert (record.outcome, record.answered_by) == (Outcome.ANSWERED, "PJSIP/100")


def test_adoption_takes_the_callers_details_and_start_from_the_snapshot() -> None:
    tracker = CallTracker(InboundMatcher())
    caller = snap(
        CALLER,
        "4",
        Context="from-trunk",
        Exten="15550001000",
        CallerIDNum="15553334444",
        CallerIDName="Bob Second",
        Duration="01:02:03",
        Application="Dial",
    )
    assert tracker.reconcile([caller, snap(D100, "5"), snap(D101, "5")], now=t(5000.0)) == []
    assert tracker.reconcile([caller, snap(D100, "5"), snap(D101, "5")], now=t(5001.0)) == []  # still live: kept
    events = [*caller_leaves(5010.0), hangup(5010.1, D100, "0"), hangup(5010.2, D101, "0")]
    (record,) = feed(tracker, events)
    assert (record.caller, record.caller_raw, record.caller_name) == ("+15553334444", "15553334444", "Bob Second")
    assert (record.started_at, record.ring_at, record.observed_from_start) == (t(5000.0) - 3723, t(5000.0), False)
    assert [(leg.channel, leg.started_at, leg.ended_at) for leg in record.legs] == [
        (D100["Channel"], t(5000.0), t(5010.1)),
        (D101["Channel"], t(5000.0), t(5010.2)),
    ]
    assert record.outcome is Outcome.ABANDONED


def test_adoption_without_duration_or_caller_id_starts_now_with_no_caller() -> None:
    tracker = CallTracker(InboundMatcher())
    tracker.reconcile([snap(CALLER, "4", Context="from-trunk", Exten="15550001000", Duration="soon")], now=t(100.0))
    (record,) = feed(tracker, [hangup(101.0, CALLER, "3")])
    assert (record.started_at, record.caller, record.caller_raw, record.caller_name) == (t(100.0), None, "", None)


def test_an_adopted_caller_waiting_in_a_queue_who_hangs_up_is_queue_abandoned() -> None:
    tracker = CallTracker(InboundMatcher())
    caller = snap(CALLER, "4", Context="from-trunk", Exten="15550001000", Application="Queue")
    tracker.reconcile([caller], now=t(100.0))
    (record,) = feed(tracker, caller_leaves(105.0))
    assert record.outcome is Outcome.QUEUE_ABANDONED


def test_adoption_of_a_member_already_talking_to_its_local_half() -> None:
    tracker = CallTracker(InboundMatcher())
    caller = snap(CALLER, "4", Context="from-trunk", Exten="15550001000", Application="Queue")
    live = [caller, snap(L1, "5"), snap(L2, "6", BridgeId="m"), snap(D100, "6", BridgeId="m")]
    tracker.reconcile(live, now=t(100.0))
    tracker.reconcile(live, now=t(101.0))
    events = [
        dial(102.0, L1, "ANSWER"),
        *caller_leaves(110.0),
        hangup(110.1, L1),
        hangup(110.2, L2),
        hangup(110.3, D100),
    ]
    (record,) = feed(tracker, events)
    assert (record.outcome, record.answered_by, record.answered_at) == (Outcome.ANSWERED, "PJSIP/100", t(102.0))


def test_nothing_is_adopted_without_the_ringing_first_channel_or_from_a_desk() -> None:
    tracker = CallTracker(InboundMatcher())
    orphan = [snap(D100, "5"), snap(D101, "5")]  # the caller is gone already
    desk_call = [snap(chan("PJSIP/100-00000007", "5.1", "5.1"), "4", Context="from-internal", Exten="101")]
    tracker.reconcile([*orphan, *desk_call], now=t(100.0))
    assert tracker.active_calls == 0


# ---- finishing ---------------------------------------------------------------------------------------------------


def test_the_grace_period_ends_exactly_after_grace_s() -> None:
    tracker = CallTracker(InboundMatcher(), grace_s=2.0)
    tracker.feed({**inbound(10.0), "Timestamp": ""}, 10.0)
    tracker.feed({**ring(10.1, D100)[0], "Timestamp": ""}, 10.1)
    tracker.feed({**hangup(11.0, CALLER), "Timestamp": "not a number"}, 1000.0)
    assert tracker.tick(1001.5) == []
    (record,) = tracker.tick(1002.0)
    assert record.ended_at == 1000.0


def test_flush_finishes_only_calls_whose_caller_is_gone() -> None:
    tracker = CallTracker(InboundMatcher())
    second = chan("PJSIP/trunk-00000008", "4.1", "4.1")
    feed(tracker, [inbound(10.0), *ring(10.1, D100), hangup(12.0, CALLER), inbound(11.0, second)])
    (record,) = tracker.flush()
    assert record.linkedid == "1.1"
    assert tracker.active_calls == 1


@pytest.mark.parametrize("stamp", ["nan", "inf", "1e20", "5", "946684800", "4102444800", "garbage", ""])
def test_an_implausible_timestamp_gives_way_to_the_arrival_time(stamp: str) -> None:
    tracker = CallTracker(InboundMatcher())
    tracker.feed(inbound(10.0), t(10.0))
    (record,) = tracker.feed({**hangup(11.0, CALLER, "3"), "Timestamp": stamp}, t(12.0))
    assert (record.started_at, record.ended_at) == (t(10.0), t(12.0))


@pytest.mark.parametrize("stamp", ["946684801", "4102444799"])
def test_a_timestamp_just_inside_the_plausible_range_is_used(stamp: str) -> None:
    tracker = CallTracker(InboundMatcher())
    tracker.feed(inbound(10.0), t(10.0))
    (record,) = tracker.feed({**hangup(11.0, CALLER, "3"), "Timestamp": stamp}, t(12.0))
    assert record.ended_at == float(stamp)


def test_a_desk_that_signals_ringing_twice_has_still_not_answered() -> None:
    events = [inbound(10.0), *ring(10.1, D100), e(11.0, "Newstate", D100, ChannelState="5")]
    events += [dial(20.0, D100, "NOANSWER"), hangup(20.1, D100, "0"), hangup(20.2, CALLER)]
    record = one(events)
    assert (record.outcome, [leg.answered for leg in record.legs]) == (Outcome.NO_ANSWER, [False])


def test_a_later_local_member_does_not_replace_the_desk_that_answered_first() -> None:
    events = [
        inbound(10.0),
        *ring(10.1, D101),
        up(12.0, D101),
        dial(12.0, D101, "ANSWER"),
        new_leg(13.0, L1),  # its ;2 half never seen
        dial(13.1, L1, dial_string="Local/100@agents/n"),
        dial(14.0, L1, "ANSWER"),
        *caller_leaves(20.0),
        hangup(20.1, D101),
        hangup(20.2, L1),
    ]
    assert (one(events).answered_by, one(events).answered_at) == ("PJSIP/101", t(12.0))


def without(event: Event, *headers: str) -> Event:
    return {k: v for k, v in event.items() if k not in headers}


def test_events_missing_a_name_or_number_are_shown_blank_never_invented() -> None:
    """A header Asterisk left out is shown as empty: no crash, no placeholder text on the call detail page."""
    events = [
        without(inbound(10.0), "Channel", "Exten"),
        without(new_leg(10.1, D100), "Channel"),
        dial(10.2, D100),
        without(dial(10.3, D101), "DestChannel"),  # first seen here
        bridge(10.4, "BridgeEnter", PICKER, "b-1"),
        bridge(10.5, "BridgeLeave", D101, "b-1"),  # was never in it
        bridge(10.6, "BridgeEnter", without(PICKER, "Channel"), "b-2"),  # nobody we can name
        bridge(10.7, "BridgeEnter", CALLER, "b-2"),
        dial(20.0, D100, "NOANSWER"),
        without(dial(20.0, D101, "NOANSWER"), "DialStatus"),
        hangup(20.1, D100, "0"),
        hangup(20.1, D101, "0"),
        hangup(20.2, CALLER),
    ]
    record = one(events)
    assert (record.did, [leg.channel for leg in record.legs], record.outcome) == ("", ["", ""], Outcome.NO_ANSWER)
    assert ([leg.dial_status for leg in record.legs], record.answered_by) == (["NOANSWER", ""], None)
    late_did = [
        inbound(10.0, Context="pstn-entry", Exten="s"),
        without(e(10.1, "Newexten", CALLER, Context="from-trunk", Application="Dial"), "Exten"),
        hangup(11.0, CALLER, "3"),
    ]
    assert one(late_did).did == ""
    tracker = CallTracker(InboundMatcher())
    caller = without(snap(CALLER, "4", Context="from-trunk"), "Channel")
    tracker.reconcile([caller, without(snap(D100, "5"), "Channel")], now=t(50.0))
    (record,) = feed(tracker, [*caller_leaves(60.0), hangup(60.1, D100, "0")])
    assert (record.did, [leg.channel for leg in record.legs], record.outcome) == ("", [""], Outcome.ABANDONED)
