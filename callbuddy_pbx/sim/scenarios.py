"""Scripted AMI event sequences of inbound (and a few non-inbound) calls, shaped like a real Asterisk 22 PBX.

Every scenario with a real counterpart in shared/traces/asterisk (01, 02, 03, 05, 06, 07, 09, 15, 16, 17, 18, 19,
20, 21, 22) reproduces that recording's call events (Newchannel, Newstate, Dial*, Bridge*, (Soft)HangupRequest,
Hangup, Queue*, Agent*, LocalBridge, NewCallerid, MessageWaiting) with the same fields, header order and Privilege,
plus the same kind and amount of noise (VarSet, Newexten, NewConnectedLine, DialState, DeviceStateChange,
ExtensionStatus, QueueMemberStatus, RTCPSent). `Timestamp` headers are on by default (as in the recordings); CEL and
Cdr are off by default (as on a stock Asterisk). Scenarios without a recording (busy, queue abandoned, blind
transfer) follow Asterisk's documentation and source; each says what it is based on.

Usage::

    factory = ScenarioFactory()
    scenario = factory.ring_all_answered(answered_by="101")
    wire = encode_events(scenario.events)                      # AMI bytes
    both = interleave([factory.busy(), factory.voicemail()], [0.0, 1.5])   # concurrent calls

    for scenario in mixed_call_stream(1_000_000, seed=7):      # lazy; see below for the cost
        ...
    for event in stream_events(mixed_call_stream(None, calls_per_second=20)):   # one endless merged stream
        ...

Cost (Python 3.11, one core, measured): `mixed_call_stream(1_000_000)` yields 98.9 million events in 137 s
(0.14 ms per call with Timestamp headers, 0.105 ms without). A call averages ~100 events and building each event's
dict and ScriptedEvent (~1 µs) is the floor. Merging with `stream_events` costs 0.6 µs per event on its own, but at
20 calls/s some 800 calls are in flight and the larger working set makes generate+merge ~0.33 ms per call.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.sim.callgen import (
    P_AGENT,
    P_CALL,
    P_REPORTING,
    QUEUE_START_VARS,
    STATE_RINGING,
    STATE_UP,
    UNKNOWN,
    Bridge,
    CallScript,
    Chan,
    IdSource,
    cel_time,
    event_tv,
    uuid_from_bits,
)

DEFAULT_START = 1795254800.0
MAIN_DID = "15550001000"
VOICEMAIL_DID = "15550001003"
SINGLE_DESK_DID = "15550001004"
HUNT_DID = "15550001007"
SALES_HUNT_DID = "15550001008"
QUEUE_DID = "15550001009"
FOLLOW_ME_DID = "15550001010"
CALLER = "15557654321"
CALLER_NAME = "Jane Caller"
MOBILE = "15559876543"
DESKS = ("100", "101")
HOSTILE_NAME = "<script>alert(1)</script>\"\x07 O'Brien & Co"
QUEUE_NAME = "callbuddy-support"


@dataclass(frozen=True, slots=True)
class ScriptedEvent:
    at: float  # seconds from the scenario (or merged stream) start
    message: AmiMessage


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    caller: str | None  # raw CallerIDNum ("15557654321", "anonymous"; the desk for a call a desk placed)
    did: str | None  # the number dialled on the trunk; None when not an inbound call
    expected_outcome: str | None  # Outcome value; None = not an inbound call (internal / outbound)
    expected_answered_by: str | None  # endpoint of the leg a person answered on, e.g. "PJSIP/101"
    linkedid: str
    events: tuple[ScriptedEvent, ...]
    started_at: float = 0.0  # absolute (unix) time of at == 0; the Timestamp headers are started_at + at

    @property
    def duration(self) -> float:
        return self.events[-1].at if self.events else 0.0


@dataclass(frozen=True, slots=True)
class _Meta:
    name: str
    caller: str | None
    did: str | None
    outcome: str | None
    answered_by: str | None
    linkedid: str


# =====================================================================================================================
# Building blocks shared by the scripts (each mirrors a stretch of a recording)
# =====================================================================================================================


_LINE_LABELS = {SINGLE_DESK_DID: "line 2"}  # the test PBX's NoOp label per DID (main line otherwise)


def _noop_line(label: str, name: str, number: str, dest: str) -> str:
    """The test PBX's first dialplan step (`NoOp(CallBuddy <line>: "<name>" <<number>> -> <DID>)`)."""
    return f'CallBuddy {_LINE_LABELS.get(dest, label)}: "{name}" <{number}> -> {dest}'


def _ring(s: CallScript, caller: Chan, leg: Chan, *, first: bool, ring_ms: str = "2") -> None:
    """A dialled leg starts ringing (180): Newstate 5, its device/hint/queue noise, DialState RINGING (01, 03)."""
    s.newstate(leg, STATE_RINGING)
    if first:
        s.varset(caller, "RINGTIME", "0")
        s.varset(caller, "RINGTIME_MS", ring_ms)
    if leg.desk is not None:
        s.desk_state(leg.desk, "ringing")
    elif leg.device == "PJSIP/trunk":
        s.device_state("PJSIP/trunk", "RINGINUSE" if caller.device == "PJSIP/trunk" else "RINGING")
    if first and caller.device == "PJSIP/trunk":
        s.device_state("PJSIP/trunk", "INUSE")
    s.dial_state(caller, leg)


def _start_dial(s: CallScript, caller: Chan, targets: Sequence[str], timeout: int) -> list[Chan]:
    """`Dial(PJSIP/a&PJSIP/b,<timeout>)` from `caller`: all legs are created, then one DialBegin each.

    A target containing "@" is a number dialled through the trunk (`PJSIP/<number>@trunk`)."""
    data = "&".join(f"PJSIP/{t}" for t in targets) + f",{timeout}"
    s.dial_app(caller, data)
    s.wait(0.0004)
    legs = [s.trunk_leg(caller, t.split("@")[0]) if "@" in t else s.desk_leg(caller, t) for t in targets]
    for leg, target in zip(legs, targets, strict=True):
        s.dial_begin(caller, leg, target)
        if len(targets) == 1:
            s.connected_line(caller, leg.cid_num, leg.cid_name)
    return legs


def _answer(s: CallScript, caller: Chan, leg: Chan, others: Sequence[Chan]) -> Bridge:
    """The leg answers: Newstate 6, DialEnd CANCEL for the others, DIALSTATUS, DialEnd ANSWER, the caller Up, the
    others hang up `26 Answered elsewhere`, then Dial bridges the two (03, 17, 19, 21)."""
    s.newstate(leg, STATE_UP)
    if leg.desk is not None:
        s.desk_state(leg.desk, "inuse")
    multi = bool(others) or caller.conn_num == UNKNOWN
    if multi:
        s.connected_line(caller, leg.cid_num, leg.cid_name)
    for other in others:
        s.dial_end(caller, other, "CANCEL")
    s.varset(caller, "DIALSTATUS", "ANSWER")
    s.varset(caller, "DIALEDPEERNAME", leg.name)
    s.varset(caller, "DIALEDPEERNUMBER", leg.dial_number)
    caller.dialstatus = "ANSWER"
    leg.exten = ""
    s.dial_end(caller, leg, "ANSWER")
    if caller.state != STATE_UP:
        s.newstate(caller, STATE_UP)
    for other in others:
        s.hangup(other, 26, source="")
        s.desk_state(other.desk, "idle")
    if leg.device == "PJSIP/trunk":
        s.device_state("PJSIP/trunk", "INUSE")
    s.wait(0.0005)
    bridge = s.bridge_create()
    s.newexten(leg, "AppDial", "(Outgoing Line)", extension="")
    s.bridge_enter(bridge, leg)
    s.bridge_enter(bridge, caller)
    s.bridge_peer_vars(caller, leg)
    return bridge


def _dial_times(s: CallScript, caller: Chan, answered_s: float, dialed_s: float, *, dialstatus: bool = True) -> None:
    s.varset(caller, "ANSWEREDTIME", str(int(answered_s)))
    s.varset(caller, "ANSWEREDTIME_MS", str(int(answered_s * 1000)))
    s.varset(caller, "DIALEDTIME", str(int(dialed_s)))
    s.varset(caller, "DIALEDTIME_MS", str(int(dialed_s * 1000)))
    if dialstatus:
        s.varset(caller, "DIALSTATUS", "ANSWER")


def _caller_hangs_up_bridged(
    s: CallScript, caller: Chan, leg: Chan, bridge: Bridge, *, talk: float, dialed: float, race: int
) -> None:
    """The caller hangs up a bridged call (BYE, cause 16). Two orders of the bridge teardown occur in the recordings:
    race 0 as in 03/21 (the caller's Hangup before the peer leaves), race 1 as in 17/19 (both leave first)."""
    bridge.technology = "native_rtp"
    s.rtp_qos(caller, talk, peer=leg)
    s.hangup_request(caller, 16)
    s.bridge_peer_clear(caller, leg)
    s.bridge_leave(bridge, caller)
    if race == 0:
        _dial_times(s, caller, talk, dialed)
        s.soft_hangup_request(caller, 16)
        s.hangup(caller, 16)
        s.bridge_leave(bridge, leg)
        s.bridge_destroy(bridge)
    else:
        s.bridge_leave(bridge, leg)
        s.bridge_destroy(bridge)
        _dial_times(s, caller, talk, dialed)
        s.soft_hangup_request(caller, 16)
    s.wait(0.0003)
    s.rtp_qos(leg, talk)
    if caller.device == "PJSIP/trunk" and caller.alive:
        s.device_state("PJSIP/trunk", "NOT_INUSE")
    s.hangup(leg, 16, source=caller.name)
    s.desk_state(leg.desk, "idle")
    if caller.alive:
        s.hangup(caller, 16)
    if caller.device == "PJSIP/trunk" and race == 0:
        s.device_state("PJSIP/trunk", "NOT_INUSE")
    if caller.desk is not None:
        s.desk_state(caller.desk, "idle")


def _desk_hangs_up_bridged(
    s: CallScript, caller: Chan, leg: Chan, bridge: Bridge, *, talk: float, dialed: float, final_noop: bool
) -> None:
    """The answering desk hangs up first: it leaves the bridge, Dial returns on the caller, whose dialplan goes on to
    its `NoOp(DIALSTATUS=...)` and `Hangup()` (the steps the recordings show after every Dial)."""
    bridge.technology = "native_rtp"
    s.rtp_qos(leg, talk, peer=caller)
    s.hangup_request(leg, 16)
    s.bridge_peer_clear(leg, caller)
    s.bridge_leave(bridge, leg)
    s.bridge_leave(bridge, caller)
    s.bridge_destroy(bridge)
    s.hangup(leg, 16)
    s.desk_state(leg.desk, "idle")
    _dial_times(s, caller, talk, dialed)
    if final_noop:
        s.exten(caller, "NoOp", "DIALSTATUS=ANSWER HANGUPCAUSE=16")
    s.exten(caller, "Hangup", "")
    s.soft_hangup_request(caller, 16)
    s.rtp_qos(caller, talk)
    s.hangup(caller, 16, source=leg.name)
    if caller.device == "PJSIP/trunk":
        s.device_state("PJSIP/trunk", "NOT_INUSE")


def _dial_times_out(s: CallScript, caller: Chan, legs: Sequence[Chan], *, last_step: bool, goto: bool) -> None:
    """Dial's timeout: DialEnd NOANSWER per leg (01, 18). On the last step the dialplan hangs the caller up (16)."""
    for leg in legs:
        s.dial_end(caller, leg, "NOANSWER")
    if not last_step:
        for leg in legs:
            s.hangup(leg, 0, source="")
            s.desk_state(leg.desk, "idle", queues=False)
    s.varset(caller, "DIALSTATUS", "NOANSWER")
    caller.dialstatus = "NOANSWER"
    s.exten(caller, "NoOp", "DIALSTATUS=NOANSWER HANGUPCAUSE=0")
    if not last_step:
        if goto:
            s.exten(caller, "GotoIf", "0?done")
        return
    s.exten(caller, "Hangup", "")
    s.soft_hangup_request(caller, 16)
    for leg in legs:
        s.hangup(leg, 0, source="")
        s.desk_state(leg.desk, "idle")
    s.hangup(caller, 16, source=caller.name)
    if caller.device == "PJSIP/trunk":
        s.device_state("PJSIP/trunk", "NOT_INUSE")


def _caller_cancels(s: CallScript, caller: Chan, legs: Sequence[Chan]) -> None:
    """The caller gives up while the legs ring (CANCEL, 487): every channel ends with 127 (02, 06)."""
    s.hangup_request(caller, 127, 487)
    for leg in legs:
        s.dial_end(caller, leg, "CANCEL")
    s.varset(caller, "DIALSTATUS", "CANCEL")
    caller.dialstatus = "CANCEL"
    s.soft_hangup_request(caller, 16, 487)
    for leg in legs:
        s.hangup(leg, 127, 500, source=caller.name)
    s.hangup(caller, 127, 487)
    for leg in legs:
        s.desk_state(leg.desk, "idle")
    s.device_state("PJSIP/trunk", "NOT_INUSE")


def _refusing_leg(s: CallScript, caller: Chan, leg: Chan, cause: int, sip: int, status: str) -> None:
    """A desk that answers the INVITE with a final error at once (603 Decline in 17; 486 Busy Here the same way):
    HangupRequest with the Q.850 cause and the SIP code, DialEnd, Hangup, the leg never left state Down."""
    s.hangup_request(leg, cause, sip)
    s.dial_end(caller, leg, status)
    s.hangup(leg, cause, sip, source=leg.name)


# =====================================================================================================================
# Scripts: one function per scenario, writing into a CallScript
# =====================================================================================================================


def _script_ring_all_no_answer(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    desks: Sequence[str] = DESKS,
    timeout: int = 15,
    name: str = "ring_all_no_answer",
) -> _Meta:
    """Recording 01 (and 09's call B with one desk): every desk rings for the Dial timeout, NOANSWER, PBX hangs up."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line("main line", caller_name, caller, did))
    legs = _start_dial(s, ch, desks, timeout)
    start = s.t
    for i, leg in enumerate(legs):
        _ring(s, ch, leg, first=i == 0)
    s.wait(timeout - (s.t - start))
    _dial_times_out(s, ch, legs, last_step=True, goto=False)
    return _Meta(name, caller, did, "no_answer", None, ch.linkedid)


def _script_ring_all_answered(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    desks: Sequence[str] = DESKS,
    answered_by: str = "101",
    answer_after: float = 3.0,
    talk: float = 3.0,
    timeout: int = 15,
    hangup_by: str = "caller",
    race: int = 0,
) -> _Meta:
    """Recording 03: both desks ring, `answered_by` picks up, the other gets CANCEL / 26; the caller hangs up."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line("main line", caller_name, caller, did))
    legs = _start_dial(s, ch, desks, timeout)
    start = s.t
    for i, leg in enumerate(legs):
        _ring(s, ch, leg, first=i == 0)
    s.wait(answer_after - (s.t - start))
    winner = next(leg for leg in legs if leg.desk == answered_by)
    bridge = _answer(s, ch, winner, [leg for leg in legs if leg is not winner])
    s.wait(talk)
    if hangup_by == "desk":
        _desk_hangs_up_bridged(s, ch, winner, bridge, talk=talk, dialed=talk + answer_after, final_noop=True)
    else:
        _caller_hangs_up_bridged(s, ch, winner, bridge, talk=talk, dialed=talk + answer_after, race=race)
    return _Meta("ring_all_answered", caller, did, "answered", f"PJSIP/{answered_by}", ch.linkedid)


def _script_one_declines_other_answers(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    declining: str = "100",
    answered_by: str = "101",
    answer_after: float = 4.0,
    talk: float = 3.0,
    race: int = 1,
) -> _Meta:
    """Recording 17: one desk rejects at once (603: HangupRequest 21, DialEnd NOANSWER, Hangup 21 in state Down),
    the other rings and answers."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line("main line", caller_name, caller, did))
    legs = _start_dial(s, ch, (declining, answered_by), 15)
    start = s.t
    refusing = legs[0]
    _refusing_leg(s, ch, refusing, 21, 603, "NOANSWER")
    winner = legs[1]
    _ring(s, ch, winner, first=True)
    s.wait(answer_after - (s.t - start))
    bridge = _answer(s, ch, winner, [])
    s.wait(talk)
    _caller_hangs_up_bridged(s, ch, winner, bridge, talk=talk, dialed=talk + answer_after, race=race)
    return _Meta("ring_all_one_declines_other_answers", caller, did, "answered", f"PJSIP/{answered_by}", ch.linkedid)


def _script_busy(s: CallScript, caller: str, caller_name: str, did: str, *, desks: Sequence[str] = DESKS) -> _Meta:
    """Every desk answers the INVITE with 486 Busy Here. Not recorded; built like recording 17's 603 leg, with what
    Asterisk does for 486: chan_pjsip maps it to Q.850 17 (`ast_sip_hangup_sip2cause`), the leg's hangup reaches Dial
    as cause 17 and app_dial reports `DialStatus: BUSY` (`ast_hangup_cause_to_dial_status`); Dial copies the cause to
    the caller, so the dialplan sees DIALSTATUS=BUSY HANGUPCAUSE=17 and the caller's Hangup is `17 User busy` with
    TechCause 486 (the response chan_pjsip sends for 17, as 05 shows 3 -> 404)."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line("main line", caller_name, caller, did))
    legs = _start_dial(s, ch, desks, 15)
    s.wait(0.0006)
    for leg in legs:
        _refusing_leg(s, ch, leg, 17, 486, "BUSY")
    s.varset(ch, "DIALSTATUS", "BUSY")
    ch.dialstatus = "BUSY"
    s.exten(ch, "NoOp", "DIALSTATUS=BUSY HANGUPCAUSE=17")
    s.exten(ch, "Hangup", "")
    s.soft_hangup_request(ch, 16)
    s.hangup(ch, 17, 486, source="")
    return _Meta("busy", caller, did, "busy", None, ch.linkedid)


def _script_caller_hangs_up_while_ringing(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    desks: Sequence[str] = DESKS,
    after: float = 4.0,
    name: str = "caller_hangs_up_while_ringing",
) -> _Meta:
    """Recording 02 (06 with after=0.5): the caller cancels while the desks ring."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line("main line", caller_name, caller, did))
    legs = _start_dial(s, ch, desks, 15)
    start = s.t
    for i, leg in enumerate(legs):
        _ring(s, ch, leg, first=i == 0)
    s.wait(after - (s.t - start))
    _caller_cancels(s, ch, legs)
    return _Meta(name, caller, did, "abandoned", None, ch.linkedid)


def _script_no_device_registered(s: CallScript, caller: str, caller_name: str, did: str) -> _Meta:
    """Recording 05: no desk registered, Dial fails at once (no Dial events), the caller ends with 3 / 404."""
    ch = s.inbound(caller, caller_name, did)
    s.wait(0.0002)
    s.exten(ch, "NoOp", _noop_line("main line", caller_name, caller, did))
    s.wait(0.0004)
    s.dial_app(ch, "PJSIP/100&PJSIP/101,15")
    s.varset(ch, "DIALSTATUS", "CHANUNAVAIL")
    ch.dialstatus = "CHANUNAVAIL"
    s.exten(ch, "NoOp", "DIALSTATUS=CHANUNAVAIL HANGUPCAUSE=3")
    s.exten(ch, "Hangup", "")
    s.soft_hangup_request(ch, 16)
    s.wait(0.0005)
    s.hangup(ch, 3, 404, source="")
    return _Meta("no_device_registered", caller, did, "unavailable", None, ch.linkedid)


def _script_voicemail(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    desk: str = "100",
    timeout: int = 10,
    message_s: float = 16.0,
    leave_message: bool = True,
    new_messages: int = 1,
) -> _Meta:
    """Recording 07 (leave_message=False: 22): desk 100 rings 10 s, then VoiceMail answers the caller; when the
    caller hangs up after leaving a message, MessageWaiting."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line("voicemail line", caller_name, caller, did))
    (leg,) = _start_dial(s, ch, (desk,), timeout)
    start = s.t
    _ring(s, ch, leg, first=True)
    s.wait(timeout - (s.t - start))
    s.dial_end(ch, leg, "NOANSWER")
    s.varset(ch, "DIALSTATUS", "NOANSWER")
    ch.dialstatus = "NOANSWER"
    s.exten(ch, "GotoIf", "0?done")
    s.exten(ch, "VoiceMail", f"{desk}@default,u")
    s.hangup(leg, 0, source="")
    s.newstate(ch, STATE_UP)
    s.desk_state(desk, "idle", queues=False)
    answered = s.t
    ssrc = f"0x{s.rng.getrandbits(32):08x}"
    report = 5.5
    while report < message_s - 0.1:
        s.wait(answered + report - s.t)
        packets = int((report - 0.5) * 50)
        s.chan_event(
            "RTCPSent",
            ch,
            [
                ("To", "127.0.0.1:6301"),
                ("From", "127.0.0.1:20357"),
                ("MES", "87.2"),
                ("SSRC", ssrc),
                ("PT", "200(SR)"),
                ("ReportCount", "0"),
                ("SentNTP", s.ids.timestamp(s.now)),
                ("SentRTP", str(packets * 160)),
                ("SentPackets", str(packets)),
                ("SentOctets", str(packets * 160)),
            ],
            privilege=P_REPORTING,
        )
        report += 5.0
    s.wait(answered + message_s - s.t)
    s.cdr_application(ch, "VoiceMail", f"{desk}@default,u", "ANSWERED")
    if leave_message:
        s.rtp_qos(ch, message_s)
        s.hangup_request(ch)
        s.varset(ch, "VM_MESSAGEFILE", f"/var/spool/asterisk/voicemail/default/{desk}/INBOX/msg{new_messages - 1:04d}")
        s.chan_event(
            "MessageWaiting",
            ch,
            [("Mailbox", f"{desk}@default"), ("Waiting", "1"), ("New", str(new_messages)), ("Old", "0")],
        )
        s.device_state(f"MWI:{desk}@default", "INUSE")
        s.varset(ch, "VMSTATUS", "SUCCESS")
    else:
        s.rtp_qos(ch, message_s)
        s.hangup_request(ch)
        s.varset(ch, "VMSTATUS", "FAILED")
    s.soft_hangup_request(ch, 16)
    s.hangup(ch, 0)
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    name = "voicemail" if leave_message else "voicemail_no_message"
    return _Meta(name, caller, did, "voicemail", None, ch.linkedid)


def _queue_join(s: CallScript, caller: str, caller_name: str, did: str) -> Chan:
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line("support queue line", caller_name, caller, did))
    s.exten(ch, "Queue", f"{QUEUE_NAME},r,,,60")
    for variable in QUEUE_START_VARS:
        s.varset(ch, variable, "")
    s.device_state(f"Queue:{QUEUE_NAME}", "RINGING")
    s.chan_event("QueueCallerJoin", ch, [("Queue", QUEUE_NAME), ("Position", "1"), ("Count", "1")], privilege=P_AGENT)
    s.wait(0.0008)
    s.device_state("PJSIP/trunk", "INUSE")
    return ch


def _queue_member_fields(one: Chan, caller: Chan) -> list[tuple[str, str]]:
    """The `;1` half as AgentCalled shows it (a later snapshot than DialBegin's: Exten = DID, connected = caller)."""
    fields = one.fields("Dest")
    patched = {
        "DestExten": caller.exten,
        "DestConnectedLineNum": caller.cid_num,
        "DestConnectedLineName": caller.cid_name,
    }
    return [(k, patched.get(k, v)) for k, v in fields]


def _agent_fields(member: str) -> list[tuple[str, str]]:
    return [("Queue", QUEUE_NAME), ("Interface", f"Local/{member}@queue-members/n"), ("MemberName", f"Desk {member}")]


def _queue_ring_members(s: CallScript, ch: Chan, members: Sequence[str]) -> list[tuple[Chan, Chan, Chan]]:
    """Recording 20: per member a Local pair (`;1` dialled by the queue, `;2` running `Dial(PJSIP/<member>,60)`),
    AgentCalled, then the desk legs ring inside the Local channels."""
    halves: list[tuple[Chan, Chan]] = []
    for member in members:
        one, two = s.local_pair(ch, member)
        s.emit("AgentCalled", P_AGENT, [*ch.fields(), *_queue_member_fields(one, ch), *_agent_fields(member)])
        s.dial_begin(ch, one, f"Local/{member}@queue-members/n")
        s.exten(two, "NoOp", _noop_line("queue member", ch.cid_name, ch.cid_num, member))
        s.dial_app(two, f"PJSIP/{member},60")
        halves.append((one, two))
    desks = [s.desk_leg(two, member) for (_, two), member in zip(halves, members, strict=True)]
    for (_, two), desk, member in zip(halves, desks, members, strict=True):
        s.dial_begin(two, desk, member)
        s.connected_line(two, desk.cid_num, desk.cid_name)
    for (one, two), desk in zip(halves, desks, strict=True):
        s.newstate(desk, STATE_RINGING)
        s.desk_state(desk.desk, "ringing")
        one.cid_num, one.cid_name = desk.cid_num, desk.cid_name
        one.conn_num, one.conn_name, one.exten = ch.cid_num, ch.cid_name, ch.exten
        s.newstate(one, STATE_RINGING)
        s.newexten(one, "AppQueue", "(Outgoing Line)")
        s.chan_event("NewCallerid", one, [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])
        s.chan_event("NewConnectedLine", one)
        s.varset(two, "RINGTIME", "0")
        s.varset(two, "RINGTIME_MS", "2")
        s.dial_state(two, desk)
        s.dial_state(ch, one)
        s.device_state(one.device, "INUSE")
    return [(one, two, desk) for (one, two), desk in zip(halves, desks, strict=True)]


def _script_queue_answered(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    members: Sequence[str] = DESKS,
    answered_by: str = "101",
    answer_after: float = 3.0,
    talk: float = 4.0,
) -> _Meta:
    """Recording 20: queue `callbuddy-support` (ringall) with Local members; `answered_by` answers inside its Local
    channel; two bridges (desk + `;2`, caller + `;1`); the caller hangs up (AgentComplete, all hang up 16)."""
    ch = _queue_join(s, caller, caller_name, did)
    rung = _queue_ring_members(s, ch, members)
    start = rung[0][2].created_at - s.start
    s.wait(answer_after - (s.t - start))
    one, two, desk = next(r for r in rung if r[2].desk == answered_by)
    losers = [r for r in rung if r[2] is not desk]
    hold = str(int(answer_after))
    # inside the winner's Local channel: its Dial is answered and bridges ;2 with the desk
    s.desk_state(desk.desk, "inuse", queues=False)
    s.newstate(desk, STATE_UP)
    s.varset(two, "DIALSTATUS", "ANSWER")
    s.varset(two, "DIALEDPEERNAME", desk.name)
    s.varset(two, "DIALEDPEERNUMBER", desk.dial_number)
    two.dialstatus = "ANSWER"
    desk.exten = ""
    s.dial_end(two, desk, "ANSWER")
    s.newstate(two, STATE_UP)
    inner = s.bridge_create()
    s.newexten(desk, "AppDial", "(Outgoing Line)", extension="")
    s.bridge_enter(inner, desk)
    s.wait(0.001)
    # the queue sees its ;1 leg answer
    s.device_state(one.device, "INUSE")
    s.newstate(one, STATE_UP)
    s.dial_end(ch, one, "ANSWER")
    for l_one, _, _ in losers:
        s.dial_end(ch, l_one, "CANCEL")
    s.connected_line(ch, desk.cid_num, desk.cid_name)
    for l_one, l_two, l_desk in losers:
        s.dial_end(ch, l_one, "CANCEL")  # hangupcalls() publishes a second CANCEL (recorded in 20)
        s.hangup_request(l_two, 26)
        s.hangup(l_one, 26, source="")
        s.dial_end(l_two, l_desk, "CANCEL")
    s.device_state(f"Queue:{QUEUE_NAME}", "NOT_INUSE")
    s.chan_event("QueueCallerLeave", ch, [("Queue", QUEUE_NAME), ("Position", "1"), ("Count", "0")], privilege=P_AGENT)
    s.varset(ch, "QUEUEPOSITION", "1")
    s.varset(ch, "QUEUEWAIT", hold)
    s.varset(ch, "QUEUEWAIT_MS", str(int(answer_after * 1000)))
    s.pair_event(
        "AgentConnect", ch, one, [*_agent_fields(answered_by), ("HoldTime", hold), ("RingTime", hold)], P_AGENT
    )
    for _, l_two, l_desk in losers:
        s.device_state(l_two.device, "NOT_INUSE")
        s.varset(l_two, "DIALSTATUS", "CANCEL")
        s.soft_hangup_request(l_two, 16)
        s.hangup(l_two, 26)
        s.hangup(l_desk, 26, source="")
        s.desk_state(l_desk.desk, "idle")
    s.bridge_enter(inner, two)
    s.varset(desk, "BRIDGEPEER", two.name)
    s.varset(two, "BRIDGEPEER", desk.name)
    s.varset(two, "BRIDGEPVTCALLID", desk.call_id)
    ch.dialstatus = "ANSWER"
    s.newstate(ch, STATE_UP)
    outer = s.bridge_create()
    s.bridge_enter(outer, one)
    s.bridge_enter(outer, ch)
    s.varset(one, "BRIDGEPEER", ch.name)
    s.varset(one, "BRIDGEPVTCALLID", ch.call_id)
    s.varset(ch, "BRIDGEPEER", one.name)
    # the caller hangs up
    s.wait(talk)
    s.rtp_qos(ch, talk, peer=one)
    s.hangup_request(ch)
    s.pair_event(
        "AgentComplete",
        ch,
        one,
        [*_agent_fields(answered_by), ("HoldTime", hold), ("TalkTime", str(int(talk))), ("Reason", "caller")],
        P_AGENT,
    )
    s.varset(ch, "BRIDGEPEER", "")
    s.bridge_leave(outer, ch)
    s.varset(one, "BRIDGEPEER", "")
    s.varset(one, "BRIDGEPVTCALLID", "")
    _dial_times(s, ch, talk, talk + answer_after, dialstatus=False)
    s.soft_hangup_request(ch, 16)
    s.bridge_leave(outer, one)
    s.bridge_destroy(outer)
    s.hangup(ch, 16)
    s.hangup_request(two, 16)
    s.hangup(one, 16, source=ch.name)
    s.bridge_peer_clear(two)
    s.varset(desk, "BRIDGEPEER", "")
    s.bridge_leave(inner, two)
    s.bridge_leave(inner, desk)
    _dial_times(s, two, talk, talk + answer_after)
    s.bridge_destroy(inner)
    s.soft_hangup_request(two, 16)
    s.hangup(two, 16, source=ch.name)
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    s.device_state(one.device, "NOT_INUSE")
    s.rtp_qos(desk, talk)
    s.hangup(desk, 16, source=ch.name)
    s.desk_state(desk.desk, "idle")
    return _Meta("queue_answered", caller, did, "answered", f"PJSIP/{answered_by}", ch.linkedid)


def _script_queue_abandoned(
    s: CallScript, caller: str, caller_name: str, did: str, *, members: Sequence[str] = DESKS, after: float = 8.0
) -> _Meta:
    """The caller hangs up while the queue rings its members. Not recorded; the start is recording 20, the rest follows
    app_queue.c (Asterisk 22): wait_for_answer() sees the caller's hangup and publishes `DialEnd CANCEL` for every
    member, try_calling() then runs hangupcalls(), which publishes a second CANCEL per member (as the losing member
    of 20 shows) and hangs the `;1` halves up without a cause (no `C` option), core_unreal passes that (0) to the
    `;2` halves as a HangupRequest, whose Dial cancels the desks; queue_exec() then calls record_abandoned()
    (`VarSet ABANDONED=TRUE`, `QueueCallerAbandon` with Queue, Position, OriginalPosition, HoldTime) and
    leave_queue() (`QueueCallerLeave`, QUEUEPOSITION). The caller's own events are those of a CANCEL (02)."""
    ch = _queue_join(s, caller, caller_name, did)
    rung = _queue_ring_members(s, ch, members)
    start = rung[0][2].created_at - s.start
    s.wait(after - (s.t - start))
    s.hangup_request(ch, 127, 487)
    for one, _, _ in rung:
        s.dial_end(ch, one, "CANCEL")
    for one, two, _ in rung:
        s.dial_end(ch, one, "CANCEL")
        s.hangup_request(two, 0)
        s.hangup(one, 0, source="")
        s.device_state(one.device, "NOT_INUSE")
    s.varset(ch, "ABANDONED", "TRUE")
    hold = str(int(after))
    s.chan_event(
        "QueueCallerAbandon",
        ch,
        [("Queue", QUEUE_NAME), ("Position", "1"), ("OriginalPosition", "1"), ("HoldTime", hold)],
        privilege=P_AGENT,
    )
    s.device_state(f"Queue:{QUEUE_NAME}", "NOT_INUSE")
    s.chan_event("QueueCallerLeave", ch, [("Queue", QUEUE_NAME), ("Position", "1"), ("Count", "0")], privilege=P_AGENT)
    s.varset(ch, "QUEUEPOSITION", "1")
    for _, two, desk in rung:
        s.dial_end(two, desk, "CANCEL")
        s.varset(two, "DIALSTATUS", "CANCEL")
        two.dialstatus = "CANCEL"
        s.soft_hangup_request(two, 16)
        s.hangup(desk, 0, source="")
        s.hangup(two, 0, source="")
        s.desk_state(desk.desk, "idle")
    s.soft_hangup_request(ch, 16, 487)
    s.hangup(ch, 127, 487)
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    return _Meta("queue_abandoned", caller, did, "queue_abandoned", None, ch.linkedid)


def _script_in_order(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    steps: Sequence[str] = DESKS,
    step_timeout: int = 5,
    answered_by: str | None = None,
    answer_after: float = 2.0,
    talk: float = 3.0,
    label: str = "hunt line",
    race: int = 1,
) -> _Meta:
    """Recordings 18 (nobody answers) and 19 (the second step answers after 2 s): one Dial per step."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line(label, caller_name, caller, did))
    dialled = 0.0
    for i, desk in enumerate(steps):
        step_start = s.t
        (leg,) = _start_dial(s, ch, (desk,), step_timeout)
        _ring(s, ch, leg, first=True)
        if desk == answered_by:
            s.wait(answer_after - (s.t - step_start))
            bridge = _answer(s, ch, leg, [])
            s.wait(talk)
            _caller_hangs_up_bridged(s, ch, leg, bridge, talk=talk, dialed=dialled + answer_after + talk, race=race)
            name = "in_order_second_answers" if i > 0 else "in_order_first_answers"
            return _Meta(name, caller, did, "answered", f"PJSIP/{desk}", ch.linkedid)
        s.wait(step_timeout - (s.t - step_start))
        dialled += step_timeout
        _dial_times_out(s, ch, [leg], last_step=i == len(steps) - 1, goto=True)
    return _Meta("in_order_nobody_answers", caller, did, "no_answer", None, ch.linkedid)


def _script_follow_me(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    desk: str = "100",
    mobile: str = MOBILE,
    answer_after: float = 3.0,
    talk: float = 3.0,
) -> _Meta:
    """Recording 21: `Dial(PJSIP/100&PJSIP/<mobile>@trunk,15)`; the outbound trunk leg answers, the desk gets 26."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line("follow-me line", caller_name, caller, did))
    desk_leg, mobile_leg = _start_dial(s, ch, (desk, f"{mobile}@trunk"), 15)
    start = s.t
    _ring(s, ch, desk_leg, first=True)
    _ring(s, ch, mobile_leg, first=False)
    s.wait(answer_after - (s.t - start))
    bridge = _answer(s, ch, mobile_leg, [desk_leg])
    s.wait(talk)
    _caller_hangs_up_bridged(s, ch, mobile_leg, bridge, talk=talk, dialed=talk + answer_after, race=0)
    return _Meta("follow_me_mobile_answers", caller, did, "answered", f"PJSIP/{mobile}@trunk", ch.linkedid)


def _script_blind_transfer(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    desks: Sequence[str] = DESKS,
    answered_by: str = "101",
    target: str = "100",
    answer_after: float = 3.0,
    talk: float = 5.0,
    ring_after_transfer: float = 8.0,
) -> _Meta:
    """Desk 101 answers (as in 03), then blind-transfers the caller (SIP REFER) to desk 100, which rings and is never
    answered; the caller finally hangs up. Not recorded; based on Asterisk 22's source:

    - res_pjsip_refer.c takes the REFER and calls ast_bridge_transfer_blind(is_external=1, transferer=desk 101's
      channel, exten=100, context=TRANSFER_CONTEXT or the transferer endpoint's context = from-internal).
    - bridge.c: the Dial bridge holds two channels, so this is the two-party case: no Local channel is created (a
      `Local/100@from-internal-XXXXXXXX;1/;2` pair only replaces the transferer in bridges of more than two
      channels). set_transfer_variables_all() sets BLINDTRANSFER=<transferer> on the transferee;
      bridge_channel_internal_queue_blind_transfer() runs res_pjsip_refer's callback on the transferee
      (SIPTRANSFER=yes, SIPREFERREDBYHDR, SIPREFERTOHDR) and queues the transfer on it; the transferer is removed
      from the bridge; the `BlindTransfer` AMI event follows (Result Success, Transferer*/Transferee* snapshots, the
      bridge, IsExternal Yes, Context, Extension).
    - bridge_channel.c: the transferee does ast_async_goto(from-internal,100,1) and is kicked out of the bridge, so
      the caller's *own* channel (same name, Uniqueid and Linkedid) leaves Dial and runs from-internal,100:
      NoOp, `Dial(PJSIP/100,15)`: the new PJSIP/100 leg gets the caller's Linkedid. The transferer, an imparted
      Dial peer with no PBX, is hung up (16) once out of the bridge.
    - The caller (Up) finally sends BYE: HangupRequest 16, DialEnd CANCEL for the ringing desk, both end 16.
    Expected: answered (by desk 101, before the transfer)."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", _noop_line("main line", caller_name, caller, did))
    legs = _start_dial(s, ch, desks, 15)
    start = s.t
    for i, leg in enumerate(legs):
        _ring(s, ch, leg, first=i == 0)
    s.wait(answer_after - (s.t - start))
    transferer = next(leg for leg in legs if leg.desk == answered_by)
    bridge = _answer(s, ch, transferer, [leg for leg in legs if leg is not transferer])
    s.wait(talk)
    # REFER from the transferer
    bridge.technology = "native_rtp"
    s.varset(ch, "BLINDTRANSFER", transferer.name)
    s.varset(ch, "SIPTRANSFER", "yes")
    s.varset(ch, "SIPREFERREDBYHDR", f"<sip:{answered_by}@127.0.0.1>")
    s.varset(ch, "SIPREFERTOHDR", f"sip:{target}@127.0.0.1")
    s.emit(
        "BlindTransfer",
        P_CALL,
        [
            ("Result", "Success"),
            *[("Transferer" + k, v) for k, v in transferer.fields()],
            *[("Transferee" + k, v) for k, v in ch.fields()],
            *bridge.fields(),
            ("IsExternal", "Yes"),
            ("Context", "from-internal"),
            ("Extension", target),
        ],
    )
    if s.cel_cdr:
        extra = f'{{"extension":"{target}","context":"from-internal","bridge_id":"{bridge.uniqueid}"}}'
        s.cel(transferer, "BLINDTRANSFER", peer=ch.name, extra=extra)
    s.bridge_peer_clear(ch, transferer)
    s.bridge_leave(bridge, transferer)
    s.bridge_leave(bridge, ch)
    s.bridge_destroy(bridge)
    s.rtp_qos(transferer, talk)
    s.hangup(transferer, 16, source=transferer.name)
    s.desk_state(transferer.desk, "idle")
    _dial_times(s, ch, talk, talk + answer_after)
    s.goto(ch, "from-internal", target)
    s.exten(ch, "NoOp", _noop_line("internal", caller_name, caller, target))
    (ring_leg,) = _start_dial(s, ch, (target,), 15)
    ring_start = s.t
    _ring(s, ch, ring_leg, first=True)
    s.wait(ring_after_transfer - (s.t - ring_start))
    s.hangup_request(ch, 16)
    s.dial_end(ch, ring_leg, "CANCEL")
    s.varset(ch, "DIALSTATUS", "CANCEL")
    ch.dialstatus = "CANCEL"
    s.soft_hangup_request(ch, 16)
    s.hangup(ring_leg, 16, source=ch.name)
    s.desk_state(target, "idle")
    s.rtp_qos(ch, talk + ring_after_transfer)
    s.hangup(ch, 16)
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    return _Meta(
        "answered_then_blind_transfer_not_picked_up", caller, did, "answered", f"PJSIP/{answered_by}", ch.linkedid
    )


def _script_internal(
    s: CallScript, *, from_desk: str = "100", to_desk: str = "101", answer_after: float = 2.0, talk: float = 2.0
) -> _Meta:
    """Recording 15: desk 100 calls desk 101 (context from-internal); no inbound call."""
    ch = s.desk_call(from_desk, to_desk)
    s.exten(ch, "NoOp", _noop_line("internal", ch.cid_name, ch.cid_num, to_desk))
    (leg,) = _start_dial(s, ch, (to_desk,), 15)
    start = s.t
    _ring(s, ch, leg, first=True)
    s.desk_state(from_desk, "inuse")
    s.wait(answer_after - (s.t - start))
    bridge = _answer(s, ch, leg, [])
    s.wait(talk)
    _caller_hangs_up_bridged(s, ch, leg, bridge, talk=talk, dialed=talk + answer_after, race=1)
    return _Meta("internal_call", from_desk, None, None, None, ch.linkedid)


def _script_outbound(
    s: CallScript, *, from_desk: str = "100", number: str = "15552223333", answer_after: float = 2.0, talk: float = 3.0
) -> _Meta:
    """Recording 16: desk 100 calls an external number through the trunk; no inbound call."""
    ch = s.desk_call(from_desk, number)
    s.exten(ch, "NoOp", _noop_line("outbound", ch.cid_name, ch.cid_num, number))
    (leg,) = _start_dial(s, ch, (f"{number}@trunk",), 30)
    start = s.t
    _ring(s, ch, leg, first=True)
    s.desk_state(from_desk, "inuse")
    s.wait(answer_after - (s.t - start))
    bridge = _answer(s, ch, leg, [])
    s.wait(talk)
    _caller_hangs_up_bridged(s, ch, leg, bridge, talk=talk, dialed=talk + answer_after, race=1)
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    return _Meta("outbound_call", from_desk, None, None, None, ch.linkedid)


# =====================================================================================================================
# Factory
# =====================================================================================================================

_Script = Callable[..., _Meta]


class ScenarioFactory:
    """Makes scenarios for one simulated PBX: it owns the Uniqueid / channel-name counters, so scenarios made by one
    factory never collide and can run concurrently (see `interleave`).

    Each scenario starts at `start` (absolute unix time) or, by default, at the factory's clock, which then moves
    past the scenario's end (plus one second). `timestamps` adds the `Timestamp` header (`timestampevents = yes`, as
    in the recordings); `cel_cdr` adds CEL and Cdr events (off on a stock Asterisk).
    """

    def __init__(
        self, start_time: float = DEFAULT_START, *, timestamps: bool = True, cel_cdr: bool = False, seed: int = 0
    ) -> None:
        self.start_time = start_time
        self.clock = start_time
        self.timestamps = timestamps
        self.cel_cdr = cel_cdr
        self.seed = seed
        self.rng = random.Random(seed)
        self.ids = IdSource(random.Random(seed + 1))
        self.boot_time = int(start_time) - 742
        self._mailbox_new: dict[str, int] = {}

    # ---- plumbing -------------------------------------------------------------------------------------------------

    def _run(self, script: _Script, start: float | None, *args: Any, **kwargs: Any) -> Scenario:
        begin = self.clock if start is None else start
        s = CallScript(
            self.ids,
            begin,
            timestamps=self.timestamps,
            cel_cdr=self.cel_cdr,
            rng=random.Random(self.rng.getrandbits(64)),
            boot_time=self.boot_time,
        )
        meta = script(s, *args, **kwargs)
        events = tuple(ScriptedEvent(at, message) for at, message in s.events)
        self.clock = max(self.clock, begin + s.t + 1.0)
        return Scenario(
            meta.name, meta.caller, meta.did, meta.outcome, meta.answered_by, meta.linkedid, events, started_at=begin
        )

    def _race(self) -> int:
        return self.rng.randrange(2)

    # ---- inbound calls with a recording ---------------------------------------------------------------------------

    def ring_all_no_answer(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        timeout: int = 15,
        start: float | None = None,
    ) -> Scenario:
        """01: the desks ring for `timeout` s, nobody answers (no_answer)."""
        return self._run(_script_ring_all_no_answer, start, caller, caller_name, did, desks=desks, timeout=timeout)

    def ring_all_answered(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        answered_by: str = "101",
        answer_after: float = 3.0,
        talk: float = 3.0,
        hangup_by: str = "caller",
        start: float | None = None,
    ) -> Scenario:
        """03: `answered_by` picks up after `answer_after` s, they talk `talk` s; `hangup_by` "caller" or "desk"."""
        if answered_by not in desks:
            raise ValueError(f"answered_by {answered_by!r} is not one of the desks {tuple(desks)}")
        return self._run(
            _script_ring_all_answered,
            start,
            caller,
            caller_name,
            did,
            desks=desks,
            answered_by=answered_by,
            answer_after=answer_after,
            talk=talk,
            hangup_by=hangup_by,
            race=self._race(),
        )

    def ring_all_one_declines_other_answers(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        declining: str = "100",
        answered_by: str = "101",
        answer_after: float = 4.0,
        talk: float = 3.0,
        start: float | None = None,
    ) -> Scenario:
        """17: `declining` rejects (603) at once, `answered_by` answers after `answer_after` s."""
        return self._run(
            _script_one_declines_other_answers,
            start,
            caller,
            caller_name,
            did,
            declining=declining,
            answered_by=answered_by,
            answer_after=answer_after,
            talk=talk,
            race=self._race(),
        )

    def caller_hangs_up_while_ringing(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        after: float = 4.0,
        start: float | None = None,
    ) -> Scenario:
        """02 (06 with after=0.5): the caller cancels after `after` s of ringing (abandoned)."""
        return self._run(
            _script_caller_hangs_up_while_ringing, start, caller, caller_name, did, desks=desks, after=after
        )

    def no_device_registered(
        self, caller: str = CALLER, caller_name: str = CALLER_NAME, did: str = MAIN_DID, *, start: float | None = None
    ) -> Scenario:
        """05: nothing can ring: no Dial events, Hangup cause 3 (unavailable)."""
        return self._run(_script_no_device_registered, start, caller, caller_name, did)

    def voicemail(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = VOICEMAIL_DID,
        *,
        desk: str = "100",
        timeout: int = 10,
        message_s: float = 16.0,
        leave_message: bool = True,
        start: float | None = None,
    ) -> Scenario:
        """07 (22 with leave_message=False): no answer, then VoiceMail answers the caller (voicemail)."""
        new = self._mailbox_new.get(desk, 0) + (1 if leave_message else 0)
        self._mailbox_new[desk] = new
        return self._run(
            _script_voicemail,
            start,
            caller,
            caller_name,
            did,
            desk=desk,
            timeout=timeout,
            message_s=message_s,
            leave_message=leave_message,
            new_messages=max(new, 1),
        )

    def queue_answered(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = QUEUE_DID,
        *,
        members: Sequence[str] = DESKS,
        answered_by: str = "101",
        answer_after: float = 3.0,
        talk: float = 4.0,
        start: float | None = None,
    ) -> Scenario:
        """20: queue with Local-channel members; `answered_by` answers inside its Local channel (answered)."""
        return self._run(
            _script_queue_answered,
            start,
            caller,
            caller_name,
            did,
            members=members,
            answered_by=answered_by,
            answer_after=answer_after,
            talk=talk,
        )

    def in_order_second_answers(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = SALES_HUNT_DID,
        *,
        steps: Sequence[str] = DESKS,
        step_timeout: int = 5,
        answer_after: float = 2.0,
        talk: float = 3.0,
        start: float | None = None,
    ) -> Scenario:
        """19: one Dial per desk in turn; the last step's desk answers after `answer_after` s."""
        return self._run(
            _script_in_order,
            start,
            caller,
            caller_name,
            did,
            steps=steps,
            step_timeout=step_timeout,
            answered_by=steps[-1],
            answer_after=answer_after,
            talk=talk,
            label="sales hunt line",
            race=self._race(),
        )

    def in_order_nobody_answers(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = HUNT_DID,
        *,
        steps: Sequence[str] = DESKS,
        step_timeout: int = 5,
        start: float | None = None,
    ) -> Scenario:
        """18: one Dial per desk in turn, each times out (no_answer)."""
        return self._run(_script_in_order, start, caller, caller_name, did, steps=steps, step_timeout=step_timeout)

    def follow_me_mobile_answers(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = FOLLOW_ME_DID,
        *,
        desk: str = "100",
        mobile: str = MOBILE,
        answer_after: float = 3.0,
        talk: float = 3.0,
        start: float | None = None,
    ) -> Scenario:
        """21: desk and the owner's mobile (through the trunk) ring together; the mobile answers."""
        return self._run(
            _script_follow_me,
            start,
            caller,
            caller_name,
            did,
            desk=desk,
            mobile=mobile,
            answer_after=answer_after,
            talk=talk,
        )

    def internal_call(
        self,
        *,
        from_desk: str = "100",
        to_desk: str = "101",
        answer_after: float = 2.0,
        talk: float = 2.0,
        start: float | None = None,
    ) -> Scenario:
        """15: desk to desk (context from-internal): not an inbound call."""
        return self._run(
            _script_internal, start, from_desk=from_desk, to_desk=to_desk, answer_after=answer_after, talk=talk
        )

    def outbound_call(
        self,
        *,
        from_desk: str = "100",
        number: str = "15552223333",
        answer_after: float = 2.0,
        talk: float = 3.0,
        start: float | None = None,
    ) -> Scenario:
        """16: a desk calls out through the trunk: not an inbound call."""
        return self._run(
            _script_outbound, start, from_desk=from_desk, number=number, answer_after=answer_after, talk=talk
        )

    # ---- inbound calls without a recording (see each script's docstring for what it is based on) -------------------

    def busy(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        start: float | None = None,
    ) -> Scenario:
        """Every desk answers 486 Busy Here: DialEnd BUSY, desk Hangup 17 `User busy` (busy)."""
        return self._run(_script_busy, start, caller, caller_name, did, desks=desks)

    def queue_abandoned(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = QUEUE_DID,
        *,
        members: Sequence[str] = DESKS,
        after: float = 8.0,
        start: float | None = None,
    ) -> Scenario:
        """The caller hangs up after `after` s waiting in the queue: QueueCallerAbandon (queue_abandoned)."""
        return self._run(_script_queue_abandoned, start, caller, caller_name, did, members=members, after=after)

    def answered_then_blind_transfer_not_picked_up(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        answered_by: str = "101",
        target: str = "100",
        answer_after: float = 3.0,
        talk: float = 5.0,
        ring_after_transfer: float = 8.0,
        start: float | None = None,
    ) -> Scenario:
        """`answered_by` answers, blind-transfers the caller to `target`, which is never answered (answered)."""
        return self._run(
            _script_blind_transfer,
            start,
            caller,
            caller_name,
            did,
            answered_by=answered_by,
            target=target,
            answer_after=answer_after,
            talk=talk,
            ring_after_transfer=ring_after_transfer,
        )

    def anonymous_caller_no_answer(
        self, did: str = MAIN_DID, *, desks: Sequence[str] = DESKS, timeout: int = 15, start: float | None = None
    ) -> Scenario:
        """01 with a withheld number (CallerIDNum `anonymous`, CallerIDName `Anonymous`): no_answer, nobody to text."""
        return self._run(
            _script_ring_all_no_answer,
            start,
            "anonymous",
            "Anonymous",
            did,
            desks=desks,
            timeout=timeout,
            name="anonymous_caller_no_answer",
        )

    def hostile_caller_name(
        self,
        caller: str = CALLER,
        caller_name: str = HOSTILE_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        timeout: int = 15,
        start: float | None = None,
    ) -> Scenario:
        """01 with a CallerIDName full of markup, quotes and a control character (no CR/LF: AMI cannot carry them)."""
        if "\r" in caller_name or "\n" in caller_name:
            raise ValueError("an AMI header value cannot contain CR or LF")
        return self._run(
            _script_ring_all_no_answer,
            start,
            caller,
            caller_name,
            did,
            desks=desks,
            timeout=timeout,
            name="hostile_caller_name",
        )


# =====================================================================================================================
# Merging, encoding
# =====================================================================================================================


def interleave(scenarios: Sequence[Scenario], offsets: Sequence[float]) -> list[ScriptedEvent]:
    """Merge scenarios that start `offsets[i]` seconds into one stream, ordered by time (concurrent calls).

    The result's `at` is seconds from the stream start. `Timestamp` headers are rewritten to match it (stream start
    = the first scenario's `started_at` minus its offset), so a replay's clock and the headers agree.
    """
    if len(scenarios) != len(offsets):
        raise ValueError(f"{len(scenarios)} scenarios but {len(offsets)} offsets")
    if not scenarios:
        return []
    base = scenarios[0].started_at - offsets[0]
    keyed: list[tuple[float, int, int, ScriptedEvent]] = []
    for i, (scenario, offset) in enumerate(zip(scenarios, offsets, strict=True)):
        for j, event in enumerate(scenario.events):
            at = offset + event.at
            message = event.message
            if "Timestamp" in message:
                message = {**message, "Timestamp": f"{base + at:.6f}"}
            keyed.append((at, i, j, ScriptedEvent(at, message)))
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    return [item[3] for item in keyed]


def _merge_windows(
    calls: Iterator[tuple[float, Sequence[float], Sequence[AmiMessage]]], window_s: float
) -> Iterator[list[tuple[float, AmiMessage]]]:
    """Merge calls given as (start offset, event times, payloads), in order of start, window by window: each
    yielded batch holds the events due in one `window_s` of stream time, sorted (ties keep call, then event, order).
    Only the calls in progress are looked at, so the cost per event stays small with many calls in flight."""
    pending = next(calls, None)
    active: list[list[Any]] = []  # [event times, payloads, next index, offset, time of the next event]
    window_end = 0.0
    while active or pending is not None:
        if not active and pending is not None:
            window_end = max(window_end, pending[0])
        window_end += window_s
        while pending is not None and pending[0] < window_end:
            offset, ats, payloads = pending
            if ats:
                active.append([ats, payloads, 0, offset, offset + ats[0]])
            pending = next(calls, None)
        batch: list[tuple[float, AmiMessage]] = []
        still: list[list[Any]] = []
        for entry in active:
            if entry[4] < window_end:
                ats, payloads, index, offset = entry[0], entry[1], entry[2], entry[3]
                count = len(ats)
                while index < count:
                    at = offset + ats[index]
                    if at >= window_end:
                        break
                    batch.append((at, payloads[index]))
                    index += 1
                if index == count:
                    continue
                entry[2], entry[4] = index, offset + ats[index]
            still.append(entry)
        active = still
        batch.sort(key=_first)
        yield batch


def _first(item: tuple[float, object]) -> float:
    return item[0]


def stream_events(scenarios: Iterable[Scenario], *, window_s: float = 1.0) -> Iterator[ScriptedEvent]:
    """Lazily merge scenarios into one time-ordered stream (concurrent calls); `at` is seconds from the first
    scenario's start. The scenarios must come in order of `started_at` (as `mixed_call_stream` yields them);
    messages are not copied."""
    source = iter(scenarios)
    first = next(source, None)
    if first is None:
        return
    base = first.started_at

    def calls() -> Iterator[tuple[float, Sequence[float], Sequence[AmiMessage]]]:
        for scenario in itertools.chain((first,), source):
            events = scenario.events
            yield scenario.started_at - base, [e.at for e in events], [e.message for e in events]

    make = ScriptedEvent
    for batch in _merge_windows(calls(), window_s):
        for at, message in batch:
            yield make(at, message)


def encode_message(message: AmiMessage) -> bytes:
    """One AMI message on the wire: `Key: Value` lines and a blank line. CR/LF inside a value is refused."""
    text = "".join(f"{key}: {value}\r\n" for key, value in message.items()) + "\r\n"
    if text.count("\n") != len(message) + 1 or text.count("\r") != len(message) + 1:
        raise ValueError(f"AMI message {message.get('Event', '?')!r} has a header containing CR or LF")
    return text.encode("utf-8")


def encode_events(events: Iterable[ScriptedEvent]) -> bytes:
    """AMI wire bytes (`Event: X\\r\\n...\\r\\n\\r\\n` per event), as Asterisk writes them to a client."""
    return b"".join(encode_message(event.message) for event in events)


# =====================================================================================================================
# Fast templates for long mixed streams
# =====================================================================================================================

_PLACEHOLDER = "\x00"


class _TemplateIds(IdSource):
    """Hands out placeholder tokens; every token records how to compute its per-call value."""

    def __init__(self) -> None:
        super().__init__(random.Random(0))
        self.specs: list[tuple[str, int, float]] = []
        self.counts = {"uid": 0, "pjsip": 0, "local": 0, "uuid": 0, "callid": 0}

    def _token(self, kind: str, when: float = 0.0) -> str:
        index = len(self.specs)
        number = self.counts.get(kind, 0)
        if kind in self.counts:
            self.counts[kind] += 1
        self.specs.append((kind, number, when))
        return f"{_PLACEHOLDER}{index}{_PLACEHOLDER}"

    def param(self, name: str) -> str:
        index = len(self.specs)
        self.specs.append(("param:" + name, 0, 0.0))
        return f"{_PLACEHOLDER}{index}{_PLACEHOLDER}"

    def uniqueid(self, when: float) -> str:
        return self._token("uid", when)

    def pjsip_suffix(self) -> str:
        return self._token("pjsip")

    def local_suffix(self) -> str:
        return self._token("local")

    def uuid(self) -> str:
        return self._token("uuid")

    def sipp_call_id(self) -> str:
        return self._token("callid")

    def timestamp(self, when: float) -> str:
        return self._token("ts", when)

    def cel_time(self, when: float) -> str:
        return self._token("celtime", when)

    def event_tv(self, when: float) -> str:
        return self._token("tv", when)


_TemplateFn = Callable[..., tuple[str, tuple[ScriptedEvent, ...]]]


def _parts_expr(value: str) -> str:
    """Python expression for a string that contains tokens (`\\0<index>\\0`): literals and `v<index>` joined."""
    parts = value.split(_PLACEHOLDER)
    pieces = [repr(part) if i % 2 == 0 else f"v{part}" for i, part in enumerate(parts) if i % 2 == 1 or part]
    return pieces[0] if len(pieces) == 1 else " + ".join(pieces)


def _spec_expr(kind: str, number: int, when: float) -> str:
    if kind == "uid":
        return f'f"{{_int(t0 + {when!r})}}.{{n0 + {number}}}"'
    if kind == "pjsip":
        return f'f"{{h0 + {number}:08x}}"'
    if kind == "local":
        return f'f"{{l0 + {number}:08x}}"'
    if kind == "uuid":
        return "_uuid(_bits(128))"
    if kind == "callid":
        return f'f"{{c0 + {number}}}-{{pid}}@127.0.0.1"'
    if kind == "ts":  # "<seconds>.<microseconds>" from integer microseconds: cheaper than formatting a float
        return f'(_s := _str(u0 + {round(when * 1_000_000)}))[:-6] + "." + _s[-6:]'
    if kind == "celtime":
        return f"_cel_time(t0 + {when!r})"
    if kind == "tv":
        return f"_event_tv(t0 + {when!r})"
    if kind.startswith("param:"):
        return kind[len("param:") :]
    raise ValueError(kind)


@dataclass(frozen=True, slots=True)
class _Template:
    meta: _Meta
    build: _TemplateFn  # (call values) -> (linkedid, events)
    counts: dict[str, int]


def _compile_template(
    script: _Script, kwargs: dict[str, Any], *, timestamps: bool, cel_cdr: bool, boot: int
) -> _Template:
    ids = _TemplateIds()
    tokens = [ids.param(p) for p in ("caller", "caller_name", "did")]
    s = CallScript(ids, 0.0, timestamps=timestamps, cel_cdr=cel_cdr, rng=random.Random(11), boot_time=boot)
    inbound = kwargs.pop("_inbound", True)
    meta = script(s, *tokens, **kwargs) if inbound else script(s, **kwargs)
    # Per call: every token's value once (v<i>), every string built from tokens once (w<j>), then the events as
    # dict displays referring to them.
    composite: dict[str, str] = {}

    def expr(value: str) -> str:
        if _PLACEHOLDER not in value:
            return repr(value)
        parts = _parts_expr(value)
        if " + " not in parts:
            return parts
        if value not in composite:
            composite[value] = f"w{len(composite)}"
        return composite[value]

    body_lines = [f"    return {expr(meta.linkedid)}, ("]
    for at, message in s.events:
        body = ", ".join(f"{key!r}: {expr(value)}" for key, value in message.items())
        body_lines.append(f"        _SE({at!r}, {{{body}}}),")
    body_lines.append("    )")
    head = "(t0, n0, h0, l0, c0, pid, _bits, caller, caller_name, did):"
    prologue = ["    u0 = _int(round(t0 * 1000000))"]
    prologue += [f"    v{i} = {_spec_expr(*spec)}" for i, spec in enumerate(ids.specs)]
    lines = ["def build" + head, *prologue]
    lines += [f"    {name} = {_parts_expr(value)}" for value, name in composite.items()]
    lines += body_lines
    namespace: dict[str, Any] = {
        "_SE": ScriptedEvent,
        "_str": str,
        "_int": int,
        "_uuid": uuid_from_bits,
        "_cel_time": cel_time,
        "_event_tv": event_tv,
    }
    code = compile("\n".join(lines), f"<scenario template {meta.name}>", "exec")
    exec(code, namespace)  # noqa: S102 - source generated above from our own script's events, no outside input
    return _Template(meta, cast(_TemplateFn, namespace["build"]), dict(ids.counts))


# (weight, kind, script, keyword variants, DIDs, caller kind)
_KINDS: tuple[tuple[float, str, _Script, tuple[dict[str, Any], ...], tuple[str, ...], str], ...] = (
    (
        30.0,
        "ring_all_answered",
        _script_ring_all_answered,
        (
            {"answered_by": "101", "answer_after": 3.0, "talk": 42.0, "race": 0},
            {"answered_by": "100", "answer_after": 7.5, "talk": 185.0, "race": 1},
            {"desks": ("100", "101", "102"), "answered_by": "102", "answer_after": 1.8, "talk": 12.0, "race": 0},
            {"answered_by": "101", "answer_after": 4.2, "talk": 65.0, "hangup_by": "desk"},
        ),
        (MAIN_DID, "15550002000", "15550003000", "15550004000"),
        "person",
    ),
    (
        12.0,
        "ring_all_no_answer",
        _script_ring_all_no_answer,
        ({}, {"desks": ("100", "101", "102"), "timeout": 20}, {"desks": ("102",)}),
        (MAIN_DID, "15550002000", SINGLE_DESK_DID),
        "person",
    ),
    (
        12.0,
        "caller_hangs_up_while_ringing",
        _script_caller_hangs_up_while_ringing,
        ({"after": 4.0}, {"after": 0.5}, {"after": 11.0, "desks": ("100", "101", "102")}),
        (MAIN_DID, "15550002000", "15550003000"),
        "person",
    ),
    (
        8.0,
        "voicemail",
        _script_voicemail,
        ({"message_s": 16.0}, {"message_s": 38.0}, {"message_s": 2.5, "leave_message": False}),
        (VOICEMAIL_DID,),
        "person",
    ),
    (4.0, "busy", _script_busy, ({}, {"desks": ("100",)}), (MAIN_DID, "15550002000"), "person"),
    (3.0, "no_device_registered", _script_no_device_registered, ({},), (MAIN_DID, "15550003000"), "person"),
    (
        6.0,
        "queue_answered",
        _script_queue_answered,
        ({"answer_after": 3.0, "talk": 95.0}, {"answered_by": "100", "answer_after": 9.0, "talk": 30.0}),
        (QUEUE_DID,),
        "person",
    ),
    (3.0, "queue_abandoned", _script_queue_abandoned, ({"after": 8.0}, {"after": 21.0}), (QUEUE_DID,), "person"),
    (
        4.0,
        "in_order_second_answers",
        _script_in_order,
        ({"answered_by": "101", "answer_after": 2.0, "talk": 48.0, "label": "sales hunt line"},),
        (SALES_HUNT_DID,),
        "person",
    ),
    (2.0, "in_order_nobody_answers", _script_in_order, ({},), (HUNT_DID,), "person"),
    (2.0, "follow_me_mobile_answers", _script_follow_me, ({"talk": 75.0},), (FOLLOW_ME_DID,), "person"),
    (
        2.0,
        "ring_all_one_declines_other_answers",
        _script_one_declines_other_answers,
        ({"talk": 33.0},),
        (MAIN_DID,),
        "person",
    ),
    (1.5, "answered_then_blind_transfer_not_picked_up", _script_blind_transfer, ({},), (MAIN_DID,), "person"),
    (2.0, "anonymous_caller_no_answer", _script_ring_all_no_answer, ({"name": "anonymous_caller_no_answer"},),
     (MAIN_DID,), "anonymous"),
    (0.5, "hostile_caller_name", _script_ring_all_no_answer, ({"name": "hostile_caller_name"},), (MAIN_DID,),
     "hostile"),
    (3.0, "internal_call", _script_internal, ({"_inbound": False}, {"_inbound": False, "to_desk": "102"}), (), "desk"),
    (4.0, "outbound_call", _script_outbound, ({"_inbound": False, "talk": 120.0},), (), "desk"),
)  # fmt: skip

_FIRST = ("Jane", "Bob", "Maria", "Wei", "Aisha", "Tom", "Olga", "Luis", "Priya", "Sam", "Chloé", "Kenji", "Zoë")
_LAST = ("Caller", "Second", "Garcia", "Chen", "Okafor", "Smith", "Ivanova", "Müller", "Patel", "Nguyen", "O'Neil")
_HOSTILE = (HOSTILE_NAME, '"; DROP TABLE calls; --', "<img src=x onerror=alert(1)>\x1b[31m", "\x07\t \u202e evil")


class _MixedState:
    """Compiled templates of one factory configuration (compiled on first use)."""

    def __init__(self, timestamps: bool, cel_cdr: bool, boot: int) -> None:
        self.timestamps, self.cel_cdr, self.boot = timestamps, cel_cdr, boot
        self.cache: dict[tuple[int, int], _Template] = {}

    def template(self, kind: int, variant: int) -> _Template:
        key = (kind, variant)
        template = self.cache.get(key)
        if template is None:
            _, _, script, variants, _, _ = _KINDS[kind]
            template = _compile_template(
                script, dict(variants[variant]), timestamps=self.timestamps, cel_cdr=self.cel_cdr, boot=self.boot
            )
            self.cache[key] = template
        return template


_STATES: dict[tuple[bool, bool, int], _MixedState] = {}


def _mixed_calls(
    count: int | None, seed: int, calls_per_second: float, factory: ScenarioFactory | None
) -> Iterator[tuple[_Template, float, tuple[Any, ...], str | None, str | None]]:
    """The calls of a mixed stream: (template, start, build arguments, caller, DID), ids reserved in the factory."""
    factory = factory or ScenarioFactory(seed=seed)
    if factory.clock < 1e9:
        raise ValueError("mixed streams need a unix start time (ScenarioFactory start_time)")
    key = (factory.timestamps, factory.cel_cdr, factory.boot_time)
    state = _STATES.get(key)
    if state is None:
        if len(_STATES) >= 8:  # one per factory configuration; keep a few
            del _STATES[next(iter(_STATES))]
        state = _STATES[key] = _MixedState(factory.timestamps, factory.cel_cdr, factory.boot_time)
    rng = random.Random(seed)
    bits = random.Random(seed ^ 0x5EED).getrandbits
    weights = list(itertools.accumulate(k[0] for k in _KINDS))
    kinds = range(len(_KINDS))
    ids = factory.ids
    when = factory.clock
    produced = 0
    while count is None or produced < count:
        kind = rng.choices(kinds, cum_weights=weights, k=1)[0]
        _, _, _, variants, dids, caller_kind = _KINDS[kind]
        template = state.template(kind, rng.randrange(len(variants)))
        caller: str | None
        if caller_kind == "anonymous":
            caller, caller_name = "anonymous", "Anonymous"
        elif caller_kind == "desk":
            caller, caller_name = template.meta.caller, ""
        else:
            caller = f"1{rng.choice('2345678')}{rng.randrange(10)}{rng.randrange(10)}555{rng.randrange(10000):04d}"
            caller_name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            if caller_kind == "hostile":
                caller_name = rng.choice(_HOSTILE)
        did = rng.choice(dids) if dids else None
        args = (
            when,
            ids.next_uniqueid,
            ids.next_pjsip,
            ids.next_local,
            ids.next_sipp_call,
            ids.sipp_pid,
            bits,
            caller or "",
            caller_name,
            did or "",
        )
        counts = template.counts
        ids.next_uniqueid += counts["uid"]
        ids.next_pjsip += counts["pjsip"]
        ids.next_local += counts["local"]
        ids.next_sipp_call += counts["callid"]
        yield template, when, args, caller, did
        produced += 1
        when += rng.expovariate(calls_per_second) if calls_per_second > 0 else 0.0
        factory.clock = max(factory.clock, when)


def mixed_call_stream(
    count: int | None,
    *,
    seed: int = 0,
    calls_per_second: float = 1.0,
    factory: ScenarioFactory | None = None,
) -> Iterator[Scenario]:
    """A lazy, deterministic (per seed) stream of varied scenarios: a weighted mix of every kind above with varied
    callers, names, DIDs and timings; `count=None` never ends. Calls start as a Poisson process of
    `calls_per_second` from the factory's clock (each `Scenario.started_at`), so they overlap like real traffic;
    merge them with `stream_events`. Each kind is compiled once into a template; a call then costs ~0.14 ms."""
    for template, when, args, caller, did in _mixed_calls(count, seed, calls_per_second, factory):
        linkedid, events = template.build(*args)
        meta = template.meta
        yield Scenario(meta.name, caller, did, meta.outcome, meta.answered_by, linkedid, events, started_at=when)
