"""The building blocks the scenario scripts are written with: each writes one stretch of a call into a `CallScript`,
the way a stretch of a recording in shared/traces/asterisk shows it (the recording is named in each docstring)."""

from __future__ import annotations

from collections.abc import Sequence

from callbuddy_pbx.sim.callgen import CallScript
from callbuddy_pbx.sim.channels import Bridge, Chan
from callbuddy_pbx.sim.pbx_constants import OUTGOING_LINE, STATE_RINGING, STATE_UP, UNKNOWN
from callbuddy_pbx.sim.scenario_model import SINGLE_DESK_DID

_LINE_LABELS = {SINGLE_DESK_DID: "line 2"}  # the test PBX's NoOp label per DID (main line otherwise)


def noop_line(label: str, name: str, number: str, dest: str) -> str:
    """The test PBX's first dialplan step (`NoOp(CallBuddy <line>: "<name>" <<number>> -> <DID>)`)."""
    return f'CallBuddy {_LINE_LABELS.get(dest, label)}: "{name}" <{number}> -> {dest}'


def arrive(s: CallScript, caller: str, caller_name: str, did: str, label: str = "main line") -> Chan:
    """An inbound call arrives from the carrier and the dialplan's first step logs it (`NoOp`)."""
    ch = s.inbound(caller, caller_name, did)
    s.exten(ch, "NoOp", noop_line(label, caller_name, caller, did))
    return ch


def set_dialstatus(s: CallScript, ch: Chan, status: str) -> None:
    """Dial (or Queue) reports its outcome in DIALSTATUS."""
    s.varset(ch, "DIALSTATUS", status)
    ch.dialstatus = status


def dial_outcome(s: CallScript, ch: Chan, status: str, cause: int) -> None:
    """Dial returns `status`; the dialplan's next step logs it (`NoOp(DIALSTATUS=... HANGUPCAUSE=...)`)."""
    set_dialstatus(s, ch, status)
    s.exten(ch, "NoOp", f"DIALSTATUS={status} HANGUPCAUSE={cause}")


def dialplan_hangup(s: CallScript, ch: Chan) -> None:
    """The dialplan's last step, `Hangup()`, and the soft hangup it requests."""
    s.exten(ch, "Hangup", "")
    s.soft_hangup_request(ch, 16)


def ring(s: CallScript, caller: Chan, leg: Chan, *, first: bool, ring_ms: str = "2") -> None:
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


def ring_legs(s: CallScript, caller: Chan, legs: Sequence[Chan]) -> float:
    """Every dialled leg starts ringing, in order (the first sets RINGTIME); returns the time ringing started."""
    start = s.t
    for i, leg in enumerate(legs):
        ring(s, caller, leg, first=i == 0)
    return start


def start_dial(s: CallScript, caller: Chan, targets: Sequence[str], timeout: int) -> list[Chan]:
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


def ring_desks(
    s: CallScript, caller: str, caller_name: str, did: str, desks: Sequence[str], timeout: int
) -> tuple[Chan, list[Chan], float]:
    """A call to the main line rings every desk at once (01, 02, 03): the caller's channel, the legs, and the time
    they started ringing."""
    ch = arrive(s, caller, caller_name, did)
    legs = start_dial(s, ch, desks, timeout)
    return ch, legs, ring_legs(s, ch, legs)


def dial_answered(s: CallScript, caller: Chan, leg: Chan) -> None:
    """Dial's side of an answer: DIALSTATUS and the peer's name and number, then DialEnd ANSWER."""
    set_dialstatus(s, caller, "ANSWER")
    s.varset(caller, "DIALEDPEERNAME", leg.name)
    s.varset(caller, "DIALEDPEERNUMBER", leg.dial_number)
    leg.exten = ""
    s.dial_end(caller, leg, "ANSWER")


def answer(s: CallScript, caller: Chan, leg: Chan, others: Sequence[Chan]) -> Bridge:
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
    dial_answered(s, caller, leg)
    if caller.state != STATE_UP:
        s.newstate(caller, STATE_UP)
    for other in others:
        s.hangup(other, 26, source="")
        s.desk_state(other.desk, "idle")
    if leg.device == "PJSIP/trunk":
        s.device_state("PJSIP/trunk", "INUSE")
    s.wait(0.0005)
    bridge = s.bridge_create()
    s.newexten(leg, "AppDial", OUTGOING_LINE, extension="")
    s.bridge_enter(bridge, leg)
    s.bridge_enter(bridge, caller)
    s.bridge_peer_vars(caller, leg)
    return bridge


def answer_in_time(
    s: CallScript,
    caller: Chan,
    leg: Chan,
    others: Sequence[Chan],
    *,
    ring_start: float,
    answer_after: float,
    talk: float,
) -> Bridge:
    """`leg` answers `answer_after` s after ringing started (see `answer`); the two then talk for `talk` s."""
    s.wait(answer_after - (s.t - ring_start))
    bridge = answer(s, caller, leg, others)
    s.wait(talk)
    return bridge


def dial_times(s: CallScript, caller: Chan, answered_s: float, dialed_s: float, *, dialstatus: bool = True) -> None:
    s.varset(caller, "ANSWEREDTIME", str(int(answered_s)))
    s.varset(caller, "ANSWEREDTIME_MS", str(int(answered_s * 1000)))
    s.varset(caller, "DIALEDTIME", str(int(dialed_s)))
    s.varset(caller, "DIALEDTIME_MS", str(int(dialed_s * 1000)))
    if dialstatus:
        s.varset(caller, "DIALSTATUS", "ANSWER")


def caller_hangs_up_bridged(
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
        dial_times(s, caller, talk, dialed)
        s.soft_hangup_request(caller, 16)
        s.hangup(caller, 16)
        s.bridge_leave(bridge, leg)
        s.bridge_destroy(bridge)
    else:
        s.bridge_leave(bridge, leg)
        s.bridge_destroy(bridge)
        dial_times(s, caller, talk, dialed)
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


def desk_hangs_up_bridged(
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
    dial_times(s, caller, talk, dialed)
    if final_noop:
        s.exten(caller, "NoOp", "DIALSTATUS=ANSWER HANGUPCAUSE=16")
    dialplan_hangup(s, caller)
    s.rtp_qos(caller, talk)
    s.hangup(caller, 16, source=leg.name)
    if caller.device == "PJSIP/trunk":
        s.device_state("PJSIP/trunk", "NOT_INUSE")


def dial_times_out(s: CallScript, caller: Chan, legs: Sequence[Chan], *, last_step: bool, goto: bool) -> None:
    """Dial's timeout: DialEnd NOANSWER per leg (01, 18). On the last step the dialplan hangs the caller up (16)."""
    for leg in legs:
        s.dial_end(caller, leg, "NOANSWER")
    if not last_step:
        for leg in legs:
            s.hangup(leg, 0, source="")
            s.desk_state(leg.desk, "idle", queues=False)
    dial_outcome(s, caller, "NOANSWER", 0)
    if not last_step:
        if goto:
            s.exten(caller, "GotoIf", "0?done")
        return
    dialplan_hangup(s, caller)
    for leg in legs:
        s.hangup(leg, 0, source="")
        s.desk_state(leg.desk, "idle")
    s.hangup(caller, 16, source="dialplan/builtin")  # the dialplan hung up (recordings 01, 18)
    if caller.device == "PJSIP/trunk":
        s.device_state("PJSIP/trunk", "NOT_INUSE")


def caller_cancels(s: CallScript, caller: Chan, legs: Sequence[Chan]) -> None:
    """The caller gives up while the legs ring (CANCEL, 487): every channel ends with 127 (02, 06)."""
    s.hangup_request(caller, 127, 487)
    for leg in legs:
        s.dial_end(caller, leg, "CANCEL")
    set_dialstatus(s, caller, "CANCEL")
    s.soft_hangup_request(caller, 16, 487)
    for leg in legs:
        s.hangup(leg, 127, 500, source=caller.name)
    s.hangup(caller, 127, 487)
    for leg in legs:
        s.desk_state(leg.desk, "idle")
    s.device_state("PJSIP/trunk", "NOT_INUSE")


def refusing_leg(s: CallScript, caller: Chan, leg: Chan, cause: int, sip: int, status: str) -> None:
    """A desk that answers the INVITE with a final error at once (603 Decline in 17; 486 Busy Here the same way):
    HangupRequest with the Q.850 cause and the SIP code, DialEnd, Hangup, the leg never left state Down."""
    s.hangup_request(leg, cause, sip)
    s.dial_end(caller, leg, status)
    s.hangup(leg, cause, sip, source=leg.name)
