"""The scenario scripts of calls that ring phones directly (ring-all, in-order, follow-me, voicemail, busy, blind
transfer, and the desks' own internal and outbound calls): one function per scenario, writing into a `CallScript`
and returning its `ScriptMeta`. The queue scenarios are in queue_scripts.py.

Each script says which recording in shared/traces/asterisk it reproduces or, without one, what it is based on.
"""

from __future__ import annotations

from collections.abc import Sequence

from callbuddy_pbx.sim.call_steps import (
    answer_in_time,
    arrive,
    caller_cancels,
    caller_hangs_up_bridged,
    desk_hangs_up_bridged,
    dial_outcome,
    dial_times,
    dial_times_out,
    dialplan_hangup,
    noop_line,
    refusing_leg,
    ring,
    ring_desks,
    ring_legs,
    set_dialstatus,
    start_dial,
)
from callbuddy_pbx.sim.callgen import CallScript
from callbuddy_pbx.sim.channels import Bridge, Chan
from callbuddy_pbx.sim.pbx_constants import P_CALL, P_REPORTING, STATE_UP
from callbuddy_pbx.sim.scenario_model import DESKS, MOBILE, ScriptMeta


def script_ring_all_no_answer(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    desks: Sequence[str] = DESKS,
    timeout: int = 15,
    name: str = "ring_all_no_answer",
) -> ScriptMeta:
    """Recording 01 (and 09's call B with one desk): every desk rings for the Dial timeout, NOANSWER, PBX hangs up."""
    ch, legs, start = ring_desks(s, caller, caller_name, did, desks, timeout)
    s.wait(timeout - (s.t - start))
    dial_times_out(s, ch, legs, last_step=True, goto=False)
    return ScriptMeta(name, caller, did, "no_answer", None, ch.linkedid)


def script_ring_all_answered(
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
) -> ScriptMeta:
    """Recording 03: both desks ring, `answered_by` picks up, the other gets CANCEL / 26; the caller hangs up."""
    ch, legs, start = ring_desks(s, caller, caller_name, did, desks, timeout)
    winner = next(leg for leg in legs if leg.desk == answered_by)
    others = [leg for leg in legs if leg is not winner]
    bridge = answer_in_time(s, ch, winner, others, ring_start=start, answer_after=answer_after, talk=talk)
    if hangup_by == "desk":
        desk_hangs_up_bridged(s, ch, winner, bridge, talk=talk, dialed=talk + answer_after, final_noop=True)
    else:
        caller_hangs_up_bridged(s, ch, winner, bridge, talk=talk, dialed=talk + answer_after, race=race)
    return ScriptMeta("ring_all_answered", caller, did, "answered", f"PJSIP/{answered_by}", ch.linkedid)


def script_one_declines_other_answers(
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
) -> ScriptMeta:
    """Recording 17: one desk rejects at once (603: HangupRequest 21, DialEnd NOANSWER, Hangup 21 in state Down),
    the other rings and answers."""
    ch = arrive(s, caller, caller_name, did)
    refusing, winner = start_dial(s, ch, (declining, answered_by), 15)
    start = s.t
    refusing_leg(s, ch, refusing, 21, 603, "NOANSWER")
    ring(s, ch, winner, first=True)
    bridge = answer_in_time(s, ch, winner, [], ring_start=start, answer_after=answer_after, talk=talk)
    caller_hangs_up_bridged(s, ch, winner, bridge, talk=talk, dialed=talk + answer_after, race=race)
    return ScriptMeta(
        "ring_all_one_declines_other_answers", caller, did, "answered", f"PJSIP/{answered_by}", ch.linkedid
    )


def script_busy(s: CallScript, caller: str, caller_name: str, did: str, *, desks: Sequence[str] = DESKS) -> ScriptMeta:
    """Every desk answers the INVITE with 486 Busy Here. Not recorded; built like recording 17's 603 leg, with what
    Asterisk does for 486: chan_pjsip maps it to Q.850 17 (`ast_sip_hangup_sip2cause`), the leg's hangup reaches Dial
    as cause 17 and app_dial reports `DialStatus: BUSY` (`ast_hangup_cause_to_dial_status`); Dial copies the cause to
    the caller, so the dialplan sees DIALSTATUS=BUSY HANGUPCAUSE=17 and the caller's Hangup is `17 User busy` with
    TechCause 486 (the response chan_pjsip sends for 17, as 05 shows 3 -> 404)."""
    ch = arrive(s, caller, caller_name, did)
    legs = start_dial(s, ch, desks, 15)
    s.wait(0.0006)
    for leg in legs:
        refusing_leg(s, ch, leg, 17, 486, "BUSY")
    dial_outcome(s, ch, "BUSY", 17)
    dialplan_hangup(s, ch)
    s.hangup(ch, 17, 486, source="")
    return ScriptMeta("busy", caller, did, "busy", None, ch.linkedid)


def script_caller_hangs_up_while_ringing(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    desks: Sequence[str] = DESKS,
    after: float = 4.0,
    name: str = "caller_hangs_up_while_ringing",
) -> ScriptMeta:
    """Recording 02 (06 with after=0.5): the caller cancels while the desks ring."""
    ch, legs, start = ring_desks(s, caller, caller_name, did, desks, 15)
    s.wait(after - (s.t - start))
    caller_cancels(s, ch, legs)
    return ScriptMeta(name, caller, did, "abandoned", None, ch.linkedid)


def script_no_device_registered(s: CallScript, caller: str, caller_name: str, did: str) -> ScriptMeta:
    """Recording 05: no desk registered, Dial fails at once (no Dial events), the caller ends with 3 / 404."""
    ch = s.inbound(caller, caller_name, did)
    s.wait(0.0002)
    s.exten(ch, "NoOp", noop_line("main line", caller_name, caller, did))
    s.wait(0.0004)
    s.dial_app(ch, "PJSIP/100&PJSIP/101,15")
    dial_outcome(s, ch, "CHANUNAVAIL", 3)
    dialplan_hangup(s, ch)
    s.wait(0.0005)
    s.hangup(ch, 3, 404, source="")
    return ScriptMeta("no_device_registered", caller, did, "unavailable", None, ch.linkedid)


def _rtcp_reports(s: CallScript, ch: Chan, message_s: float) -> float:
    """The RTCP sender reports (RTCPSent, every 5 s from 5.5 s on) while the caller talks to VoiceMail for
    `message_s` s (07); returns the time VoiceMail answered."""
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
    return answered


def script_voicemail(
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
) -> ScriptMeta:
    """Recording 07 (leave_message=False: 22): desk 100 rings 10 s, then VoiceMail answers the caller; when the
    caller hangs up after leaving a message, MessageWaiting."""
    ch = arrive(s, caller, caller_name, did, "voicemail line")
    (leg,) = start_dial(s, ch, (desk,), timeout)
    start = ring_legs(s, ch, [leg])
    s.wait(timeout - (s.t - start))
    s.dial_end(ch, leg, "NOANSWER")
    set_dialstatus(s, ch, "NOANSWER")
    s.exten(ch, "GotoIf", "0?done")
    s.exten(ch, "VoiceMail", f"{desk}@default,u")
    s.hangup(leg, 0, source="")
    s.newstate(ch, STATE_UP)
    s.desk_state(desk, "idle", queues=False)
    answered = _rtcp_reports(s, ch, message_s)
    s.wait(answered + message_s - s.t)
    s.cdr_application(ch, "VoiceMail", f"{desk}@default,u", "ANSWERED")
    s.rtp_qos(ch, message_s)
    s.hangup_request(ch)
    if leave_message:
        s.varset(ch, "VM_MESSAGEFILE", f"/var/spool/asterisk/voicemail/default/{desk}/INBOX/msg{new_messages - 1:04d}")
        s.chan_event(
            "MessageWaiting",
            ch,
            [("Mailbox", f"{desk}@default"), ("Waiting", "1"), ("New", str(new_messages)), ("Old", "0")],
        )
        s.device_state(f"MWI:{desk}@default", "INUSE")
    s.varset(ch, "VMSTATUS", "SUCCESS" if leave_message else "FAILED")
    s.soft_hangup_request(ch, 16)
    s.hangup(ch, 0)
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    name = "voicemail" if leave_message else "voicemail_no_message"
    return ScriptMeta(name, caller, did, "voicemail", None, ch.linkedid)


def script_in_order(
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
) -> ScriptMeta:
    """Recordings 18 (nobody answers) and 19 (the second step answers after 2 s): one Dial per step."""
    ch = arrive(s, caller, caller_name, did, label)
    dialled = 0.0
    for i, desk in enumerate(steps):
        step_start = s.t
        (leg,) = start_dial(s, ch, (desk,), step_timeout)
        ring(s, ch, leg, first=True)
        if desk == answered_by:
            bridge = answer_in_time(s, ch, leg, [], ring_start=step_start, answer_after=answer_after, talk=talk)
            caller_hangs_up_bridged(s, ch, leg, bridge, talk=talk, dialed=dialled + answer_after + talk, race=race)
            name = "in_order_second_answers" if i > 0 else "in_order_first_answers"
            return ScriptMeta(name, caller, did, "answered", f"PJSIP/{desk}", ch.linkedid)
        s.wait(step_timeout - (s.t - step_start))
        dialled += step_timeout
        dial_times_out(s, ch, [leg], last_step=i == len(steps) - 1, goto=True)
    return ScriptMeta("in_order_nobody_answers", caller, did, "no_answer", None, ch.linkedid)


def script_follow_me(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    desk: str = "100",
    mobile: str = MOBILE,
    answer_after: float = 3.0,
    talk: float = 3.0,
) -> ScriptMeta:
    """Recording 21: `Dial(PJSIP/100&PJSIP/<mobile>@trunk,15)`; the outbound trunk leg answers, the desk gets 26."""
    ch = arrive(s, caller, caller_name, did, "follow-me line")
    desk_leg, mobile_leg = start_dial(s, ch, (desk, f"{mobile}@trunk"), 15)
    start = ring_legs(s, ch, [desk_leg, mobile_leg])
    bridge = answer_in_time(s, ch, mobile_leg, [desk_leg], ring_start=start, answer_after=answer_after, talk=talk)
    caller_hangs_up_bridged(s, ch, mobile_leg, bridge, talk=talk, dialed=talk + answer_after, race=0)
    return ScriptMeta("follow_me_mobile_answers", caller, did, "answered", f"PJSIP/{mobile}@trunk", ch.linkedid)


def _refer(s: CallScript, ch: Chan, transferer: Chan, bridge: Bridge, *, referred_by: str, target: str) -> None:
    """`transferer` blind-transfers `ch` (SIP REFER) to `target` and leaves the bridge, which goes away; `ch` leaves
    it too, to run the transfer's dialplan (see `script_blind_transfer`)."""
    bridge.technology = "native_rtp"
    s.varset(ch, "BLINDTRANSFER", transferer.name)
    s.varset(ch, "SIPTRANSFER", "yes")
    s.varset(ch, "SIPREFERREDBYHDR", f"<sip:{referred_by}@127.0.0.1>")
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


def script_blind_transfer(
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
) -> ScriptMeta:
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
    ch, legs, start = ring_desks(s, caller, caller_name, did, desks, 15)
    transferer = next(leg for leg in legs if leg.desk == answered_by)
    others = [leg for leg in legs if leg is not transferer]
    bridge = answer_in_time(s, ch, transferer, others, ring_start=start, answer_after=answer_after, talk=talk)
    _refer(s, ch, transferer, bridge, referred_by=answered_by, target=target)
    s.rtp_qos(transferer, talk)
    s.hangup(transferer, 16, source=transferer.name)
    s.desk_state(transferer.desk, "idle")
    dial_times(s, ch, talk, talk + answer_after)
    s.goto(ch, "from-internal", target)
    s.exten(ch, "NoOp", noop_line("internal", caller_name, caller, target))
    (ring_leg,) = start_dial(s, ch, (target,), 15)
    ring_start = ring_legs(s, ch, [ring_leg])
    s.wait(ring_after_transfer - (s.t - ring_start))
    s.hangup_request(ch, 16)
    s.dial_end(ch, ring_leg, "CANCEL")
    set_dialstatus(s, ch, "CANCEL")
    s.soft_hangup_request(ch, 16)
    s.hangup(ring_leg, 16, source=ch.name)
    s.desk_state(target, "idle")
    s.rtp_qos(ch, talk + ring_after_transfer)
    s.hangup(ch, 16)
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    return ScriptMeta(
        "answered_then_blind_transfer_not_picked_up", caller, did, "answered", f"PJSIP/{answered_by}", ch.linkedid
    )


def _desk_call_answered(
    s: CallScript,
    from_desk: str,
    dialled: str,
    *,
    label: str,
    target: str,
    timeout: int,
    answer_after: float,
    talk: float,
) -> Chan:
    """`from_desk` dials `dialled` (`Dial(PJSIP/<target>,<timeout>)`), which answers after `answer_after` s; the desk
    hangs up after `talk` s (15, 16)."""
    ch = s.desk_call(from_desk, dialled)
    s.exten(ch, "NoOp", noop_line(label, ch.cid_name, ch.cid_num, dialled))
    (leg,) = start_dial(s, ch, (target,), timeout)
    start = ring_legs(s, ch, [leg])
    s.desk_state(from_desk, "inuse")
    bridge = answer_in_time(s, ch, leg, [], ring_start=start, answer_after=answer_after, talk=talk)
    caller_hangs_up_bridged(s, ch, leg, bridge, talk=talk, dialed=talk + answer_after, race=1)
    return ch


def script_internal(
    s: CallScript, *, from_desk: str = "100", to_desk: str = "101", answer_after: float = 2.0, talk: float = 2.0
) -> ScriptMeta:
    """Recording 15: desk 100 calls desk 101 (context from-internal); no inbound call."""
    ch = _desk_call_answered(
        s, from_desk, to_desk, label="internal", target=to_desk, timeout=15, answer_after=answer_after, talk=talk
    )
    return ScriptMeta("internal_call", from_desk, None, None, None, ch.linkedid)


def script_outbound(
    s: CallScript, *, from_desk: str = "100", number: str = "15552223333", answer_after: float = 2.0, talk: float = 3.0
) -> ScriptMeta:
    """Recording 16: desk 100 calls an external number through the trunk; no inbound call."""
    target = f"{number}@trunk"
    ch = _desk_call_answered(
        s, from_desk, number, label="outbound", target=target, timeout=30, answer_after=answer_after, talk=talk
    )
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    return ScriptMeta("outbound_call", from_desk, None, None, None, ch.linkedid)
