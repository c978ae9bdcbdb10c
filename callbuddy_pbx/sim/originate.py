"""What the simulated PBX does with an AMI Originate of a call back: the events Asterisk 22 sends, in its order.

The desk leg is shaped on shared/traces/asterisk/actions/originate-async-*.raw: its channel is created in the
endpoint's context (`from-internal`, extension `s`), `AppDial2` dials it (DialBegin/DialState/DialEnd with the Dest
fields only), the Originate's CallerID replaces the desk's (NewCallerid, NewConnectedLine). No answer within the
Timeout: `OriginateResponse` Failure, Reason 3, `Uniqueid: <unknown>`, then the desk's Hangup (cause 19), with no
DialEnd; not registered: only `OriginateResponse` Failure, Reason 0. Answered: Newstate Up, DialEnd ANSWER, then
`OriginateResponse` Success, Reason 4, with the channel's name and Uniqueid. (A busy desk, Reason 5 and cause 17, was
not recorded: it is the no-answer shape without the ringing.)

Once the desk answered, the rendered dialplan runs (asterisk/render_dialplan.py): [callbuddy-callback], then
[from-internal] with the number as extension, and the desk dials the trunk. That part is shaped on trace
16-outbound-call: the trunk leg (`PJSIP/trunk-...`, context `from-trunk`, the desk's Linkedid), DialBegin with the
desk as `Channel`, DialState RINGING, then ANSWER with a bridge; or, as in trace 01, NOANSWER with the leg's Hangup
cause 0; or BUSY with cause 17; the dialplan then hangs the desk up with cause 19 or 17.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.sim.channels import Bridge, Chan
from callbuddy_pbx.sim.pbx_constants import (
    CAUSE_TEXT,
    OUTGOING_LINE,
    P_CALL,
    P_DIALPLAN,
    PRESENTATION_ALLOWED,
    STATE_RINGING,
    STATE_UP,
    UNKNOWN,
)

ANSWER, NO_ANSWER, BUSY, UNAVAILABLE = "answer", "no_answer", "busy", "unavailable"
QUEUED = "Originate successfully queued"
CALLBACK_CONTEXT = "callbuddy-callback"  # what the rendered dialplan has (asterisk/callback.py)
DESK_CONTEXT = "from-internal"  # the phones' endpoint context in the rendered pjsip.conf


@dataclass
class OriginatePlan:
    """How the next originated call backs go (a test sets `server.originate_plan`). Times are seconds."""

    desk: str = ANSWER  # ANSWER | NO_ANSWER (rings until the Timeout, at most `desk_ring_s`) | BUSY | UNAVAILABLE
    caller: str = ANSWER  # ANSWER | NO_ANSWER | BUSY
    desk_ring_s: float = 0.05
    caller_ring_s: float = 0.05
    talk_s: float = 0.05
    trunk: str = "trunk"


Step = tuple[float, AmiMessage]  # (seconds to wait before it, the event)


class _Ids:
    """Channel names and Uniqueids of the simulated PBX's originated calls."""

    def __init__(self) -> None:
        self._pjsip = itertools.count(0x200)
        self._uniqueid = itertools.count(500)

    def name(self, device: str) -> str:
        return f"{device}-{next(self._pjsip):08x}"

    def uniqueid(self) -> str:
        return f"{int(time.time())}.{next(self._uniqueid)}"


_IDS = _Ids()


def originate_steps(action: Mapping[str, str], plan: OriginatePlan) -> list[Step]:
    """The events of one Originate (Channel `PJSIP/<desk>`, Context/Exten/Priority, ChannelId, CallerID)."""
    device = action.get("Channel", "")
    desk_number = device.partition("/")[2]
    response: dict[str, str] = {"ActionID": action.get("ActionID", "")} if "ActionID" in action else {}
    cid_name, cid_num = _caller_id(action.get("CallerID", ""))
    if plan.desk == UNAVAILABLE or not desk_number:
        return [(0.0, _originate_response(response, "Failure", device, action, "0", UNKNOWN, cid_num, cid_name))]
    uniqueid = action.get("ChannelId") or _IDS.uniqueid()
    desk = Chan(_IDS.name(device), uniqueid, uniqueid, desk_number, f"Desk {desk_number}", DESK_CONTEXT, "s")
    steps: list[Step] = [
        (0.0, _event("Newchannel", desk)),
        (0.0, _event("Newexten", desk, P_DIALPLAN, Extension="s", Application="AppDial2", AppData=OUTGOING_LINE)),
    ]
    desk.cid_num, desk.cid_name = cid_num, cid_name
    steps.append((0.0, _event("NewCallerid", desk, **{"CID-CallingPres": PRESENTATION_ALLOWED})))
    desk.conn_num, desk.conn_name = cid_num, cid_name
    steps += [(0.0, _event("NewConnectedLine", desk)), (0.0, _dest_event("DialBegin", desk, DialString=desk_number))]
    if plan.desk == BUSY:
        steps.append((0.0, _originate_response(response, "Failure", device, action, "5", UNKNOWN, cid_num, cid_name)))
        return [*steps, (0.0, _hangup(desk, 17))]
    desk.state = STATE_RINGING
    steps += [(0.0, _dest_event("DialState", desk, DialStatus="RINGING")), (0.0, _event("Newstate", desk))]
    if plan.desk == NO_ANSWER:
        ring = min(plan.desk_ring_s, _timeout_s(action))
        failure = _originate_response(response, "Failure", device, action, "3", UNKNOWN, cid_num, cid_name)
        return [*steps, (ring, failure), (0.0, _hangup(desk, 19, TechCause="480"))]
    desk.state = STATE_UP
    steps += [
        (plan.desk_ring_s, _event("Newstate", desk)),
        (0.0, _dest_event("DialEnd", desk, DialStatus="ANSWER")),
        (0.0, _originate_response(response, "Success", desk.name, action, "4", uniqueid, cid_num, cid_name)),
    ]
    return steps + _dialplan(desk, action, plan)


def _dialplan(desk: Chan, action: Mapping[str, str], plan: OriginatePlan) -> list[Step]:
    """The answered desk runs [callbuddy-callback], then [from-internal] dials the number through the trunk."""
    number = action.get("Exten", "")
    if action.get("Context") != CALLBACK_CONTEXT or not number.startswith("+"):
        return [(0.0, _hangup(desk, 0))]  # no such extension: Asterisk hangs the answered channel up
    desk.context, desk.exten = CALLBACK_CONTEXT, number
    endpoint = desk.name.rpartition("-")[0].partition("/")[2]
    steps: list[Step] = [
        (0.0, _exten(desk, 1, "NoOp", f"CallBuddy: call back from phone {endpoint}")),
        (0.0, _exten(desk, 2, "Set", f'CALLERID(all)="Desk {endpoint}" <{endpoint}>')),
        (0.0, _exten(desk, 3, "Goto", f"from-internal,{number},1")),
    ]
    desk.cid_num, desk.cid_name = endpoint, f"Desk {endpoint}"
    desk.context = DESK_CONTEXT
    steps.append((0.0, _exten(desk, 1, "Gosub", "callbuddy-caller,s,1")))
    desk.context, desk.exten = "callbuddy-outbound", "s"
    dial = f"PJSIP/{number}@{plan.trunk},60"
    steps.append((0.0, _exten(desk, 8, "Dial", dial)))
    trunk = Chan(_IDS.name("PJSIP/trunk"), _IDS.uniqueid(), desk.linkedid, UNKNOWN, UNKNOWN, "from-trunk", "s")
    steps.append((0.0, _event("Newchannel", trunk)))
    trunk.cid_num, trunk.exten, trunk.conn_num, trunk.conn_name = number, number, endpoint, f"Desk {endpoint}"
    steps.append((0.0, _event("NewCallerid", trunk, **{"CID-CallingPres": PRESENTATION_ALLOWED})))
    steps.append((0.0, _dial_event("DialBegin", desk, trunk, DialString=f"{number}@{plan.trunk}")))
    trunk.state = STATE_RINGING
    steps += [(0.0, _event("Newstate", trunk)), (0.0, _dial_event("DialState", desk, trunk, DialStatus="RINGING"))]
    if plan.caller == ANSWER:
        return steps + _talk(desk, trunk, plan)
    status, leg_cause, desk_cause = ("BUSY", 17, 17) if plan.caller == BUSY else ("NOANSWER", 0, 19)
    wait = plan.caller_ring_s if plan.caller == NO_ANSWER else 0.0
    return [
        *steps,
        (wait, _dial_event("DialEnd", desk, trunk, DialStatus=status)),
        (0.0, _hangup(trunk, leg_cause)),
        (0.0, _exten(desk, 13 if status == "BUSY" else 14, "Hangup", str(desk_cause))),
        (0.0, _hangup(desk, desk_cause)),
    ]


def _talk(desk: Chan, trunk: Chan, plan: OriginatePlan) -> list[Step]:
    trunk.state = STATE_UP
    steps: list[Step] = [
        (plan.caller_ring_s, _event("Newstate", trunk)),
        (0.0, _dial_event("DialEnd", desk, trunk, DialStatus="ANSWER")),
    ]
    bridge = Bridge(f"{desk.linkedid}-bridge")
    steps.append((0.0, _bridge_event("BridgeCreate", bridge)))
    for member in (trunk, desk):
        bridge.members.append(member)
        steps.append((0.0, _bridge_event("BridgeEnter", bridge, member)))
    steps.append((plan.talk_s, _event("HangupRequest", desk, Cause="16")))
    for member in (desk, trunk):
        bridge.members.remove(member)
        steps.append((0.0, _bridge_event("BridgeLeave", bridge, member)))
    steps += [(0.0, _bridge_event("BridgeDestroy", bridge)), (0.0, _hangup(desk, 16)), (0.0, _hangup(trunk, 16))]
    return steps


def _caller_id(text: str) -> tuple[str, str]:
    """`"Name" <number>` as Asterisk splits it (ast_callerid_parse)."""
    name, _, rest = text.partition("<")
    return name.strip().strip('"'), rest.partition(">")[0].strip()


def _timeout_s(action: Mapping[str, str]) -> float:
    value = action.get("Timeout", "30000")
    return int(value) / 1000 if value.isdigit() else 30.0


def _head(name: str, privilege: str = P_CALL) -> dict[str, str]:
    return {"Event": name, "Privilege": privilege, "Timestamp": f"{time.time():.6f}"}


def _event(name: str, chan: Chan, privilege: str = P_CALL, **extra: str) -> AmiMessage:
    return {**_head(name, privilege), **dict(chan.fields()), **extra}


def _exten(chan: Chan, priority: int, app: str, data: str) -> AmiMessage:
    chan.priority = priority
    return _event("Newexten", chan, P_DIALPLAN, Extension=chan.exten, Application=app, AppData=data)


def _dest_event(name: str, dest: Chan, **extra: str) -> AmiMessage:
    """A dial of the Originate itself (AppDial2): Dest fields only, no calling channel."""
    return {**_head(name), **dict(dest.fields("Dest")), **extra}


def _dial_event(name: str, caller: Chan, dest: Chan, **extra: str) -> AmiMessage:
    return {**_head(name), **dict(caller.fields()), **dict(dest.fields("Dest")), **extra}


def _bridge_event(name: str, bridge: Bridge, member: Chan | None = None) -> AmiMessage:
    fields = dict(bridge.fields())
    return {**_head(name), **fields, **(dict(member.fields()) if member is not None else {})}


def _hangup(chan: Chan, cause: int, **extra: str) -> AmiMessage:
    return _event("Hangup", chan, Cause=str(cause), **{"Cause-txt": CAUSE_TEXT.get(cause, "Unknown")}, **extra)


def _originate_response(
    response: Mapping[str, str],
    result: str,
    channel: str,
    action: Mapping[str, str],
    reason: str,
    uniqueid: str,
    cid_num: str,
    cid_name: str,
) -> AmiMessage:
    return {
        **_head("OriginateResponse"),
        **response,
        "Response": result,
        "Channel": channel,
        "Context": action.get("Context", ""),
        "Exten": action.get("Exten", ""),
        "Reason": reason,
        "Uniqueid": uniqueid,
        "CallerIDNum": cid_num,
        "CallerIDName": cid_name,
    }


__all__ = ["ANSWER", "BUSY", "NO_ANSWER", "QUEUED", "UNAVAILABLE", "OriginatePlan", "originate_steps"]
