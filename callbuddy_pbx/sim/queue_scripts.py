"""The queue scenario scripts: queue `callbuddy-support` (ringall) whose members are Local channels (recording 20),
answered by a member or abandoned by the caller, and the queue building blocks they share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from callbuddy_pbx.sim.call_steps import arrive, dial_answered, dial_times, noop_line, set_dialstatus
from callbuddy_pbx.sim.callgen import CallScript
from callbuddy_pbx.sim.channels import Bridge, Chan
from callbuddy_pbx.sim.pbx_constants import (
    OUTGOING_LINE,
    P_AGENT,
    PRESENTATION_ALLOWED,
    QUEUE_START_VARS,
    STATE_RINGING,
    STATE_UP,
)
from callbuddy_pbx.sim.scenario_model import DESKS, QUEUE_NAME, ScriptMeta


class _Member(NamedTuple):
    """One rung queue member: the Local pair (`;1` dialled by the queue, `;2` dialling the desk) and the desk leg."""

    one: Chan
    two: Chan
    desk: Chan


def _queue_join(s: CallScript, caller: str, caller_name: str, did: str) -> Chan:
    """The caller enters `Queue(callbuddy-support,r,,,60)`: its variables, the queue device ringing, QueueCallerJoin."""
    ch = arrive(s, caller, caller_name, did, "support queue line")
    s.exten(ch, "Queue", f"{QUEUE_NAME},r,,,60")
    for variable in QUEUE_START_VARS:
        s.varset(ch, variable, "")
    s.device_state(f"Queue:{QUEUE_NAME}", "RINGING")
    s.chan_event("QueueCallerJoin", ch, [("Queue", QUEUE_NAME), ("Position", "1"), ("Count", "1")], privilege=P_AGENT)
    s.wait(0.0008)
    s.device_state("PJSIP/trunk", "INUSE")
    return ch


def _queue_leave(s: CallScript, ch: Chan) -> None:
    """The caller leaves the queue (answered or abandoned): the queue's device is free again, QueueCallerLeave."""
    s.device_state(f"Queue:{QUEUE_NAME}", "NOT_INUSE")
    s.chan_event("QueueCallerLeave", ch, [("Queue", QUEUE_NAME), ("Position", "1"), ("Count", "0")], privilege=P_AGENT)
    s.varset(ch, "QUEUEPOSITION", "1")


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


def _queue_ring_members(s: CallScript, ch: Chan, members: Sequence[str]) -> list[_Member]:
    """Recording 20: per member a Local pair (`;1` dialled by the queue, `;2` running `Dial(PJSIP/<member>,60)`),
    AgentCalled, then the desk legs ring inside the Local channels."""
    halves: list[tuple[Chan, Chan]] = []
    for member in members:
        one, two = s.local_pair(ch, member)
        s.emit("AgentCalled", P_AGENT, [*ch.fields(), *_queue_member_fields(one, ch), *_agent_fields(member)])
        s.dial_begin(ch, one, f"Local/{member}@queue-members/n")
        s.exten(two, "NoOp", noop_line("queue member", ch.cid_name, ch.cid_num, member))
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
        s.newexten(one, "AppQueue", OUTGOING_LINE)
        s.chan_event("NewCallerid", one, [("CID-CallingPres", PRESENTATION_ALLOWED)])
        s.chan_event("NewConnectedLine", one)
        s.varset(two, "RINGTIME", "0")
        s.varset(two, "RINGTIME_MS", "2")
        s.dial_state(two, desk)
        s.dial_state(ch, one)
        s.device_state(one.device, "INUSE")
    return [_Member(one, two, desk) for (one, two), desk in zip(halves, desks, strict=True)]


def _ring_queue(
    s: CallScript, caller: str, caller_name: str, did: str, members: Sequence[str], wait: float
) -> tuple[Chan, list[_Member]]:
    """The caller joins the queue, which rings every member; returns `wait` s after the first desk leg was created."""
    ch = _queue_join(s, caller, caller_name, did)
    rung = _queue_ring_members(s, ch, members)
    start = rung[0].desk.created_at - s.start
    s.wait(wait - (s.t - start))
    return ch, rung


def _member_answers(s: CallScript, member: _Member) -> Bridge:
    """Inside the answering member's Local channel: its Dial is answered and bridges `;2` with the desk."""
    two, desk = member.two, member.desk
    s.desk_state(desk.desk, "inuse", queues=False)
    s.newstate(desk, STATE_UP)
    dial_answered(s, two, desk)
    s.newstate(two, STATE_UP)
    inner = s.bridge_create()
    s.newexten(desk, "AppDial", OUTGOING_LINE, extension="")
    s.bridge_enter(inner, desk)
    s.wait(0.001)
    return inner


def _queue_connects(
    s: CallScript, ch: Chan, member: _Member, losers: Sequence[_Member], inner: Bridge, *, agent: str, waited: float
) -> Bridge:
    """The queue sees the member's `;1` leg answer after the caller `waited` s: the other members are hung up (26),
    AgentConnect, the member's `;2` joins the desk's bridge and the caller is bridged with `;1` (returned)."""
    one, two, desk = member
    hold = str(int(waited))
    s.device_state(one.device, "INUSE")
    s.newstate(one, STATE_UP)
    s.dial_end(ch, one, "ANSWER")
    for loser in losers:
        s.dial_end(ch, loser.one, "CANCEL")
    s.connected_line(ch, desk.cid_num, desk.cid_name)
    for loser in losers:
        s.dial_end(ch, loser.one, "CANCEL")  # hangupcalls() publishes a second CANCEL (recorded in 20)
        s.hangup_request(loser.two, 26)
        s.hangup(loser.one, 26, source="")
        s.dial_end(loser.two, loser.desk, "CANCEL")
    _queue_leave(s, ch)
    s.varset(ch, "QUEUEWAIT", hold)
    s.varset(ch, "QUEUEWAIT_MS", str(int(waited * 1000)))
    s.pair_event("AgentConnect", ch, one, [*_agent_fields(agent), ("HoldTime", hold), ("RingTime", hold)], P_AGENT)
    for loser in losers:
        s.device_state(loser.two.device, "NOT_INUSE")
        s.varset(loser.two, "DIALSTATUS", "CANCEL")  # a bare VarSet: the CEL HANGUP keeps Dial's empty dialstatus
        s.soft_hangup_request(loser.two, 16)
        s.hangup(loser.two, 26)
        s.hangup(loser.desk, 26, source="")
        s.desk_state(loser.desk.desk, "idle")
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
    return outer


def _caller_hangs_up_on_member(
    s: CallScript, ch: Chan, member: _Member, inner: Bridge, outer: Bridge, *, agent: str, waited: float, talk: float
) -> None:
    """The caller hangs up after talking `talk` s: AgentComplete, both bridges are torn down, all hang up (16)."""
    one, two, desk = member
    s.rtp_qos(ch, talk, peer=one)
    s.hangup_request(ch)
    s.pair_event(
        "AgentComplete",
        ch,
        one,
        [*_agent_fields(agent), ("HoldTime", str(int(waited))), ("TalkTime", str(int(talk))), ("Reason", "caller")],
        P_AGENT,
    )
    s.varset(ch, "BRIDGEPEER", "")
    s.bridge_leave(outer, ch)
    s.varset(one, "BRIDGEPEER", "")
    s.varset(one, "BRIDGEPVTCALLID", "")
    dial_times(s, ch, talk, talk + waited, dialstatus=False)
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
    dial_times(s, two, talk, talk + waited)
    s.bridge_destroy(inner)
    s.soft_hangup_request(two, 16)
    s.hangup(two, 16, source=ch.name)
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    s.device_state(one.device, "NOT_INUSE")
    s.rtp_qos(desk, talk)
    s.hangup(desk, 16, source=ch.name)
    s.desk_state(desk.desk, "idle")


def script_queue_answered(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    members: Sequence[str] = DESKS,
    answered_by: str = "101",
    answer_after: float = 3.0,
    talk: float = 4.0,
) -> ScriptMeta:
    """Recording 20: queue `callbuddy-support` (ringall) with Local members; `answered_by` answers inside its Local
    channel; two bridges (desk + `;2`, caller + `;1`); the caller hangs up (AgentComplete, all hang up 16)."""
    ch, rung = _ring_queue(s, caller, caller_name, did, members, answer_after)
    member = next(r for r in rung if r.desk.desk == answered_by)
    losers = [r for r in rung if r is not member]
    inner = _member_answers(s, member)
    outer = _queue_connects(s, ch, member, losers, inner, agent=answered_by, waited=answer_after)
    s.wait(talk)
    _caller_hangs_up_on_member(s, ch, member, inner, outer, agent=answered_by, waited=answer_after, talk=talk)
    return ScriptMeta("queue_answered", caller, did, "answered", f"PJSIP/{answered_by}", ch.linkedid)


def script_queue_abandoned(
    s: CallScript, caller: str, caller_name: str, did: str, *, members: Sequence[str] = DESKS, after: float = 8.0
) -> ScriptMeta:
    """The caller hangs up while the queue rings its members. Not recorded; the start is recording 20, the rest follows
    app_queue.c (Asterisk 22): wait_for_answer() sees the caller's hangup and publishes `DialEnd CANCEL` for every
    member, try_calling() then runs hangupcalls(), which publishes a second CANCEL per member (as the losing member
    of 20 shows) and hangs the `;1` halves up without a cause (no `C` option), core_unreal passes that (0) to the
    `;2` halves as a HangupRequest, whose Dial cancels the desks; queue_exec() then calls record_abandoned()
    (`VarSet ABANDONED=TRUE`, `QueueCallerAbandon` with Queue, Position, OriginalPosition, HoldTime) and
    leave_queue() (`QueueCallerLeave`, QUEUEPOSITION). The caller's own events are those of a CANCEL (02)."""
    ch, rung = _ring_queue(s, caller, caller_name, did, members, after)
    s.hangup_request(ch, 127, 487)
    for member in rung:
        s.dial_end(ch, member.one, "CANCEL")
    for member in rung:
        s.dial_end(ch, member.one, "CANCEL")
        s.hangup_request(member.two, 0)
        s.hangup(member.one, 0, source="")
        s.device_state(member.one.device, "NOT_INUSE")
    s.varset(ch, "ABANDONED", "TRUE")
    s.chan_event(
        "QueueCallerAbandon",
        ch,
        [("Queue", QUEUE_NAME), ("Position", "1"), ("OriginalPosition", "1"), ("HoldTime", str(int(after)))],
        privilege=P_AGENT,
    )
    _queue_leave(s, ch)
    for member in rung:
        s.dial_end(member.two, member.desk, "CANCEL")
        set_dialstatus(s, member.two, "CANCEL")
        s.soft_hangup_request(member.two, 16)
        s.hangup(member.desk, 0, source="")
        s.hangup(member.two, 0, source="")
        s.desk_state(member.desk.desk, "idle")
    s.soft_hangup_request(ch, 16, 487)
    s.hangup(ch, 127, 487)
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    return ScriptMeta("queue_abandoned", caller, did, "queue_abandoned", None, ch.linkedid)
