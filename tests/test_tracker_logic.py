"""Call tracker rules that the recordings do not cover: reconnects, lost events, pickups, withheld numbers."""

from __future__ import annotations

from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.config import Business, Config, InboundConfig
from callbuddy_pbx.model import CallRecord, Outcome

CALLER = {"Channel": "PJSIP/trunk-00000001", "Uniqueid": "100.1", "Linkedid": "100.1"}
DESK_100 = {"Channel": "PJSIP/100-00000002", "Uniqueid": "100.2", "Linkedid": "100.1"}
DESK_101 = {"Channel": "PJSIP/101-00000003", "Uniqueid": "100.3", "Linkedid": "100.1"}


def ev(name: str, channel: dict[str, str], **fields: str) -> dict[str, str]:
    return {"Event": name, **channel, **fields}


def inbound_call(number: str = "15557654321", name: str = "Jane Caller", did: str = "15550001000") -> dict[str, str]:
    return ev(
        "Newchannel", CALLER, ChannelState="4", CallerIDNum=number, CallerIDName=name, Context="from-trunk", Exten=did
    )


def dial(dest: dict[str, str], status: str | None = None) -> dict[str, str]:
    fields = {
        **CALLER,
        "DestChannel": dest["Channel"],
        "DestUniqueid": dest["Uniqueid"],
        "DestLinkedid": dest["Linkedid"],
        "DialString": dest["Channel"].split("/")[1].split("-")[0],
    }
    if status is None:
        return {"Event": "DialBegin", **fields}
    return {"Event": "DialEnd", **fields, "DialStatus": status}


def ringing(desk: dict[str, str]) -> list[dict[str, str]]:
    return [
        ev("Newchannel", desk, ChannelState="0", Context="from-internal", Exten="s"),
        dial(desk),
        ev("Newstate", desk, ChannelState="5"),
    ]


def run(tracker: CallTracker, events: list[dict[str, str]], start: float = 1000.0) -> list[CallRecord]:
    records: list[CallRecord] = []
    for index, event in enumerate(events):
        records += tracker.feed(event, start + index * 0.1)
    return records


def test_a_leg_whose_hangup_is_never_seen_does_not_hold_the_call_forever() -> None:
    tracker = CallTracker(InboundMatcher(), grace_s=2.0)
    events = [
        inbound_call(),
        *ringing(DESK_100),
        dial(DESK_100, "NOANSWER"),
        ev("Hangup", CALLER, Cause="16"),
    ]  # desk 100's Hangup was lost
    assert run(tracker, events) == []
    assert tracker.tick(1000.0 + 1.0) == []  # still inside the grace period
    (record,) = tracker.tick(1000.0 + 3.0)
    assert record.outcome is Outcome.NO_ANSWER
    assert tracker.active_calls == 0


def test_reconnect_finishes_calls_that_ended_while_disconnected_as_not_fully_observed() -> None:
    tracker = CallTracker(InboundMatcher())
    run(tracker, [inbound_call(), *ringing(DESK_100)])
    # the AMI link dropped here; after reconnecting, CoreShowChannels lists no channel of that call
    (record,) = tracker.reconcile([], now=2000.0)
    assert record.linkedid == "100.1"
    assert record.observed_from_start is False
    assert record.ended_at == 2000.0
    assert tracker.active_calls == 0


def test_reconnect_keeps_calls_still_live_and_learns_their_bridge() -> None:
    tracker = CallTracker(InboundMatcher())
    run(tracker, [inbound_call(), *ringing(DESK_101)])
    snapshot = [
        {**CALLER, "ChannelState": "6", "BridgeId": "b-1"},
        {**DESK_101, "ChannelState": "6", "BridgeId": "b-1"},
    ]
    assert tracker.reconcile(snapshot, now=2000.0) == []  # answered during the gap, still talking
    records = run(tracker, [ev("Hangup", DESK_101, Cause="16"), ev("Hangup", CALLER, Cause="16")], start=2001.0)
    assert [(r.outcome, r.answered_by) for r in records] == [(Outcome.ANSWERED, "PJSIP/101")]


def test_a_call_already_ringing_when_we_connect_is_adopted_and_judged() -> None:
    tracker = CallTracker(InboundMatcher())
    snapshot = [
        {
            **CALLER,
            "ChannelState": "4",
            "Context": "from-trunk",
            "Exten": "15550001000",
            "CallerIDNum": "15557654321",
            "CallerIDName": "Jane",
        },
        {**DESK_100, "ChannelState": "5", "Context": "from-internal", "Exten": "s"},
    ]
    assert tracker.reconcile(snapshot, now=2000.0) == []
    assert tracker.active_calls == 1
    records = run(
        tracker,
        [
            ev("HangupRequest", CALLER, Cause="127"),
            dial(DESK_100, "CANCEL"),
            ev("Hangup", DESK_100, Cause="127"),
            ev("Hangup", CALLER, Cause="127"),
        ],
        start=2001.0,
    )
    assert [(r.outcome, r.caller, r.observed_from_start) for r in records] == [
        (Outcome.ABANDONED, "+15557654321", False)
    ]


def test_a_call_already_up_when_we_connect_is_recorded_when_it_ends_but_never_as_fully_observed() -> None:
    """A service restarted during an answered call still records it; what it did not see, it does not vouch for."""
    tracker = CallTracker(InboundMatcher())
    snapshot = [
        {**CALLER, "ChannelState": "6", "Context": "from-trunk", "Exten": "15550001000", "CallerIDNum": "15557654321"}
    ]
    tracker.reconcile(snapshot, now=2000.0)
    assert tracker.active_calls == 1 and tracker.follows(CALLER["Linkedid"])
    records = run(tracker, [ev("Hangup", CALLER, Cause="16")], start=2001.0)
    assert [(r.caller, r.observed_from_start) for r in records] == [("+15557654321", False)]


def test_a_call_talking_to_a_desk_when_we_connect_is_recorded_as_answered() -> None:
    tracker = CallTracker(InboundMatcher())
    snapshot = [
        {**CALLER, "ChannelState": "6", "Context": "from-trunk", "Exten": "15550001000", "BridgeId": "b1"},
        {**DESK_100, "ChannelState": "6", "Context": "from-internal", "Exten": "s", "BridgeId": "b1"},
    ]
    tracker.reconcile(snapshot, now=2000.0)
    records = run(tracker, [ev("Hangup", DESK_100, Cause="16"), ev("Hangup", CALLER, Cause="16")], start=2001.0)
    assert [(r.outcome, r.answered_by, r.observed_from_start) for r in records] == [
        (Outcome.ANSWERED, "PJSIP/100", False)
    ]


def test_events_of_a_call_that_started_before_we_connected_are_ignored_without_error() -> None:
    tracker = CallTracker(InboundMatcher())
    records = run(
        tracker,
        [
            dial(DESK_100, "ANSWER"),
            ev("BridgeEnter", CALLER, BridgeUniqueid="b"),
            ev("Hangup", DESK_100, Cause="16"),
            ev("Hangup", CALLER, Cause="16"),
        ],
    )
    assert records == []
    assert tracker.active_calls == 0


def test_pickup_from_another_phone_is_answered_even_though_the_picker_has_its_own_linkedid() -> None:
    picker = {"Channel": "PJSIP/102-00000009", "Uniqueid": "200.9", "Linkedid": "200.9"}
    tracker = CallTracker(InboundMatcher())
    events = [
        inbound_call(),
        *ringing(DESK_100),
        ev("BridgeEnter", CALLER, BridgeUniqueid="b-7"),
        ev("BridgeEnter", picker, BridgeUniqueid="b-7"),
        dial(DESK_100, "CANCEL"),
        ev("Hangup", DESK_100, Cause="26"),
        ev("BridgeLeave", CALLER, BridgeUniqueid="b-7"),
        ev("Hangup", CALLER, Cause="16"),
    ]
    (record,) = run(tracker, events)
    assert (record.outcome, record.answered_by) == (Outcome.ANSWERED, "PJSIP/102")


def test_answered_then_transferred_and_not_picked_up_stays_answered() -> None:
    tracker = CallTracker(InboundMatcher())
    desk_100_again = {"Channel": "PJSIP/100-0000000a", "Uniqueid": "100.10", "Linkedid": "100.1"}
    events = [
        inbound_call(),
        *ringing(DESK_101),
        ev("Newstate", DESK_101, ChannelState="6"),
        dial(DESK_101, "ANSWER"),
        ev("BridgeEnter", CALLER, BridgeUniqueid="b"),
        ev("BridgeEnter", DESK_101, BridgeUniqueid="b"),
        ev("BridgeLeave", DESK_101, BridgeUniqueid="b"),
        ev("Hangup", DESK_101, Cause="16"),
        *ringing(desk_100_again),
        dial(desk_100_again, "NOANSWER"),
        ev("Hangup", desk_100_again, Cause="0"),
        ev("Hangup", CALLER, Cause="16"),
    ]
    (record,) = run(tracker, events)
    assert (record.outcome, record.answered_by) == (Outcome.ANSWERED, "PJSIP/101")


def test_caller_bridged_only_with_an_announcer_or_snoop_is_not_answered() -> None:
    tracker = CallTracker(InboundMatcher())
    announcer = {"Channel": "Announcer/ARI_MOH-00000001;1", "Uniqueid": "100.20", "Linkedid": "100.1"}
    events = [
        inbound_call(),
        ev("Newstate", CALLER, ChannelState="6"),
        ev("BridgeEnter", CALLER, BridgeUniqueid="hold"),
        ev("BridgeEnter", announcer, BridgeUniqueid="hold"),
        ev("Hangup", announcer, Cause="16"),
        ev("HangupRequest", CALLER),
        ev("Hangup", CALLER, Cause="16"),
    ]
    (record,) = run(tracker, events)
    assert record.outcome is Outcome.VOICEMAIL  # an application held the call; no person ever spoke


def test_withheld_caller_has_no_number_to_text() -> None:
    tracker = CallTracker(InboundMatcher())
    events = [inbound_call(number="anonymous", name="Anonymous"), ev("Hangup", CALLER, Cause="3")]
    (record,) = run(tracker, events)
    assert (record.caller, record.caller_raw, record.caller_name, record.anonymous) == (None, "anonymous", None, True)
    assert record.outcome is Outcome.UNAVAILABLE


def test_presentation_restricted_hides_the_number_even_when_asterisk_sends_one() -> None:
    tracker = CallTracker(InboundMatcher())
    events = [
        inbound_call(),
        ev(
            "NewCallerid",
            CALLER,
            CallerIDNum="15557654321",
            **{"CID-CallingPres": "32 (Presentation Restricted, Not Screened)"},
        ),
        ev("Hangup", CALLER, Cause="3"),
    ]
    (record,) = run(tracker, events)
    assert record.caller is None


def test_every_desk_busy_is_busy_and_one_busy_one_ringing_out_is_no_answer() -> None:
    tracker = CallTracker(InboundMatcher())
    busy = [
        inbound_call(),
        *ringing(DESK_100),
        dial(DESK_100, "BUSY"),
        ev("Hangup", DESK_100, Cause="17"),
        ev("Hangup", CALLER, Cause="17"),
    ]
    assert [r.outcome for r in run(tracker, busy)] == [Outcome.BUSY]
    mixed = [
        inbound_call(),
        *ringing(DESK_100),
        *ringing(DESK_101),
        dial(DESK_100, "BUSY"),
        ev("Hangup", DESK_100, Cause="17"),
        dial(DESK_101, "NOANSWER"),
        ev("Hangup", DESK_101, Cause="0"),
        ev("Hangup", CALLER, Cause="16"),
    ]
    assert [r.outcome for r in run(tracker, mixed)] == [Outcome.NO_ANSWER]


def test_queue_caller_who_hangs_up_while_waiting_is_queue_abandoned() -> None:
    tracker = CallTracker(InboundMatcher())
    events = [
        inbound_call(),
        ev("Newexten", CALLER, Application="Queue", AppData="support"),
        ev("HangupRequest", CALLER, Cause="127"),
        ev("Hangup", CALLER, Cause="127"),
    ]
    assert [r.outcome for r in run(tracker, events)] == [Outcome.QUEUE_ABANDONED]


def test_with_businesses_only_their_numbers_count_and_desk_calls_to_them_do_not() -> None:
    salon = Business(name="Glow Salon", numbers=("+15550001000",), timezone="UTC", default_region="US")
    tracker = CallTracker(InboundMatcher((salon,)))
    other_did = [inbound_call(did="15550009999"), ev("Hangup", CALLER, Cause="16")]
    assert run(tracker, other_did) == []
    desk = {"Channel": "PJSIP/100-00000005", "Uniqueid": "300.5", "Linkedid": "300.5"}
    internal = [
        ev("Newchannel", desk, ChannelState="4", CallerIDNum="100", Context="from-internal", Exten="15550001000"),
        ev("Hangup", desk, Cause="16"),
    ]
    assert run(tracker, internal) == []
    ours = [inbound_call(did="+1 (555) 000-1000"), ev("Hangup", CALLER, Cause="3")]
    (record,) = run(tracker, ours)
    assert (record.business, record.did) == ("Glow Salon", "+15550001000")


def test_a_custom_internal_context_keeps_desk_calls_out_even_on_an_inbound_looking_number() -> None:
    config = Config(inbound=InboundConfig(contexts=("from-trunk", "desks"), internal_contexts=("desks",)))
    tracker = CallTracker(InboundMatcher.from_config(config))
    desk = {"Channel": "PJSIP/100-00000005", "Uniqueid": "300.5", "Linkedid": "300.5"}
    events = [
        ev("Newchannel", desk, ChannelState="4", CallerIDNum="100", Context="desks", Exten="15550001000"),
        ev("Hangup", desk, Cause="16"),
    ]
    assert run(tracker, events) == []


def test_caller_id_from_the_network_is_kept_verbatim_but_bounded() -> None:
    tracker = CallTracker(InboundMatcher())
    hostile = "<script>alert(1)</script>\"'\x07" + "A" * 5000
    (record,) = run(tracker, [inbound_call(number="1" * 3000, name=hostile), ev("Hangup", CALLER, Cause="3")])
    assert record.caller_name is not None and record.caller_name.startswith("<script>alert(1)</script>\"'\x07")
    assert len(record.caller_name) <= 80 and len(record.caller_raw) <= 40
    assert record.caller is None  # not a phone number


def test_queue_that_times_out_is_no_answer_even_though_its_members_legs_were_cancelled() -> None:
    one = {"Channel": "Local/100@queue-members-00000001;1", "Uniqueid": "100.4", "Linkedid": "100.1"}
    two = {"Channel": "Local/100@queue-members-00000001;2", "Uniqueid": "100.5", "Linkedid": "100.1"}
    inner_dial = {
        **two,
        "DestChannel": DESK_100["Channel"],
        "DestUniqueid": DESK_100["Uniqueid"],
        "DestLinkedid": "100.1",
        "DialString": "100",
    }
    tracker = CallTracker(InboundMatcher())
    events = [
        inbound_call(),
        ev("Newexten", CALLER, Application="Queue", AppData="support"),
        ev("Newchannel", one, ChannelState="0"),
        ev("Newchannel", two, ChannelState="4"),
        dial(one),
        ev("Newchannel", DESK_100, ChannelState="0"),
        {"Event": "DialBegin", **inner_dial},
        ev("Newstate", DESK_100, ChannelState="5"),
        ev("Newstate", one, ChannelState="5"),
        # the queue's own timeout: it hangs up the member's Local channel, which cancels the desk's Dial
        dial(one, "CANCEL"),
        {"Event": "DialEnd", **inner_dial, "DialStatus": "CANCEL"},
        ev("Hangup", DESK_100, Cause="16"),
        ev("Hangup", two, Cause="16"),
        ev("Hangup", one, Cause="16"),
        ev("Newexten", CALLER, Application="Hangup"),
        ev("SoftHangupRequest", CALLER, Cause="16"),
        ev("Hangup", CALLER, Cause="16"),
    ]
    assert [r.outcome for r in run(tracker, events)] == [Outcome.NO_ANSWER]


def test_adoption_reads_asterisks_real_coreshowchannels_answer() -> None:
    from callbuddy_pbx.asterisk.ami_protocol import iter_stream
    from tests.traces import TRACES_DIR

    raw = (TRACES_DIR / "actions" / "coreshowchannels-during-call.raw").read_bytes()
    channels = [m for m in iter_stream(raw) if m.get("Event") == "CoreShowChannel"]
    tracker = CallTracker(InboundMatcher())
    tracker.reconcile(channels, now=5000.0)
    assert tracker.active_calls == 1
    caller = next(c for c in channels if c["Uniqueid"] == c["Linkedid"])
    hangups = [
        {**caller, "Event": "HangupRequest", "Cause": "127"},
        *({**c, "Event": "Hangup", "Cause": "127"} for c in channels if c is not caller),
        {**caller, "Event": "Hangup", "Cause": "127"},
    ]
    (record,) = run(tracker, hangups, start=5001.0)
    assert (record.caller, record.did, record.outcome) == ("+15557654321", "+15550001000", Outcome.ABANDONED)
    assert record.started_at == 5000.0 - 2  # `Duration: 00:00:02` when we connected
    assert {leg.endpoint for leg in record.legs} == {"PJSIP/100", "PJSIP/101"}


def test_a_did_that_the_dialplan_finds_after_the_call_arrived_on_s_still_counts() -> None:
    """Some carriers send every call to `s`; the dialplan then jumps to the DID taken from a SIP header."""
    salon = Business(name="Glow Salon", numbers=("+15550001000",), timezone="UTC", default_region="US")
    tracker = CallTracker(InboundMatcher((salon,)))
    events = [
        inbound_call(did="s"),
        ev("Newexten", CALLER, Context="from-trunk", Exten="s", Application="Goto", AppData="from-trunk,15550001000,1"),
        ev("Newexten", CALLER, Context="from-trunk", Exten="15550001000", Application="Dial", AppData="PJSIP/100"),
        *ringing(DESK_100),
        dial(DESK_100, "NOANSWER"),
        ev("Hangup", DESK_100, Cause="0"),
        ev("Hangup", CALLER, Cause="16"),
    ]
    (record,) = run(tracker, events)
    assert (record.business, record.did, record.outcome) == ("Glow Salon", "+15550001000", Outcome.NO_ANSWER)
    assert tracker.active_calls == 0
    other = [inbound_call(did="s"), ev("Hangup", CALLER, Cause="16")]  # never reached a business number
    assert run(tracker, other) == []
    assert tracker.active_calls == 0
