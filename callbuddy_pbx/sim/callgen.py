"""`CallScript`: writes the AMI events of one call the way the real Asterisk 22 (PJSIP) recordings show them.

It models the channels of one call (name, state, caller id, connected line, dialplan position, ids) and emits events
with the same names, the same header order and the same `Privilege` values as the `ami.raw` files in
shared/traces/asterisk. The scenario scripts (call_scripts.py, queue_scripts.py) are written with its primitives,
step by step in the order the recordings show.

What it is built from lives next to it and stays importable from here: the constants (pbx_constants.py), the
identifiers and time formats (call_ids.py) and the channel / bridge snapshots (channels.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.sim.call_ids import IdSource, cel_time, event_tv, unix_of_cel_time, uuid_from_bits
from callbuddy_pbx.sim.channels import Bridge, Chan
from callbuddy_pbx.sim.pbx_constants import (
    CAUSE_TEXT,
    DIAL_START_VARS,
    HINTED_DESKS,
    LOCAL_IP,
    MEMBER_STATUS,
    OUTGOING_LINE,
    P_AGENT,
    P_CALL,
    P_CDR,
    P_DIALPLAN,
    P_REPORTING,
    P_SECURITY,
    PRESENTATION_ALLOWED,
    QUEUE_DESKS,
    QUEUE_START_VARS,
    QUEUES,
    RTP_QOS,
    STATE_DESC,
    STATE_DOWN,
    STATE_RING,
    STATE_RINGING,
    STATE_UP,
    UNKNOWN,
)

__all__ = [
    "CAUSE_TEXT",
    "DIAL_START_VARS",
    "HINTED_DESKS",
    "LOCAL_IP",
    "MEMBER_STATUS",
    "OUTGOING_LINE",
    "PRESENTATION_ALLOWED",
    "P_AGENT",
    "P_CALL",
    "P_CDR",
    "P_DIALPLAN",
    "P_REPORTING",
    "P_SECURITY",
    "QUEUES",
    "QUEUE_DESKS",
    "QUEUE_START_VARS",
    "RTP_QOS",
    "STATE_DESC",
    "STATE_DOWN",
    "STATE_RING",
    "STATE_RINGING",
    "STATE_UP",
    "UNKNOWN",
    "Bridge",
    "CallScript",
    "Chan",
    "IdSource",
    "cel_time",
    "event_tv",
    "unix_of_cel_time",
    "uuid_from_bits",
]


@dataclass(slots=True, eq=False)
class _CdrLeg:
    dialler: Chan
    leg: Chan | None
    application: str
    data: str
    disposition: str = "NO ANSWER"


class CallScript:
    """Emits the events of one call (all channels of one Linkedid), advancing its own clock.

    `t` is seconds from the scenario start; `start` the absolute time of t == 0. Every emitted event advances `t` by
    a few tenths of a millisecond, like a real PBX's burst of events for one moment; `wait()` jumps ahead.
    """

    def __init__(
        self,
        ids: IdSource,
        start: float,
        *,
        timestamps: bool = True,
        cel_cdr: bool = False,
        rng: random.Random | None = None,
        boot_time: float | None = None,
    ) -> None:
        self.ids = ids
        self.start = start
        self.timestamps = timestamps
        self.cel_cdr = cel_cdr
        self.rng = rng or random.Random(0)
        self.t = 0.0
        self.events: list[tuple[float, AmiMessage]] = []
        self.channels: list[Chan] = []
        self.boot_time = int(boot_time if boot_time is not None else start - 720)
        self._cdr: list[_CdrLeg] = []
        self._linkedid_open = 0
        self._busy_desks: set[str] = set()

    # ---- time ---------------------------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.start + self.t

    def tick(self, low: float = 0.00002, high: float = 0.00025) -> None:
        self.t += self.rng.uniform(low, high)

    def wait(self, seconds: float) -> None:
        self.t += seconds

    # ---- raw emission -------------------------------------------------------------------------------------------

    def emit(self, event: str, privilege: str, items: Iterable[tuple[str, str]]) -> None:
        message: AmiMessage = {"Event": event, "Privilege": privilege}
        if self.timestamps:
            message["Timestamp"] = self.ids.timestamp(self.now)
        for key, value in items:
            message[key] = value
        self.events.append((self.t, message))
        self.tick()

    def chan_event(self, event: str, ch: Chan, extra: Sequence[tuple[str, str]] = (), privilege: str = P_CALL) -> None:
        self.emit(event, privilege, [*ch.fields(), *extra])

    def pair_event(
        self, event: str, ch: Chan, dest: Chan, extra: Sequence[tuple[str, str]] = (), privilege: str = P_CALL
    ) -> None:
        self.emit(event, privilege, [*ch.fields(), *dest.fields("Dest"), *extra])

    # ---- channels -----------------------------------------------------------------------------------------------

    def _open(self, ch: Chan) -> Chan:
        """A new channel of this call: Newchannel (and CEL CHAN_START)."""
        ch.created_at = self.now
        self.channels.append(ch)
        self._linkedid_open += 1
        self.newchannel(ch)
        return ch

    def _calling_channel(
        self, device: str, cid_num: str, cid_name: str, context: str, exten: str, call_id: str, desk: str | None
    ) -> Chan:
        """The channel of a SIP peer calling the PBX: state Ring, its own Linkedid, Exten = the number it called."""
        uid = self.ids.uniqueid(self.now)
        ch = Chan(
            name=f"{device}-" + self.ids.pjsip_suffix(),
            uniqueid=uid,
            linkedid=uid,
            cid_num=cid_num,
            cid_name=cid_name,
            context=context,
            exten=exten,
            state=STATE_RING,
            device=device,
            desk=desk,
            call_id=call_id,
        )
        self._open(ch)
        self.varset(ch, "SIPDOMAIN", LOCAL_IP)
        ch.ani, ch.dnid = cid_num, exten
        return ch

    def inbound(self, caller_num: str, caller_name: str, did: str) -> Chan:
        """A call arriving from the carrier: `PJSIP/trunk-...` in state Ring, context from-trunk, Exten = the DID."""
        call_id = self.ids.sipp_call_id()
        return self._calling_channel("PJSIP/trunk", caller_num, caller_name, "from-trunk", did, call_id, None)

    def desk_call(self, desk: str, dialled: str, *, port: int = 5301) -> Chan:
        """A desk phone placing a call: digest challenge and auth (security events), then its channel in Ring."""
        call_id = self.ids.sipp_call_id()
        remote = f"IPV4/UDP/{LOCAL_IP}/{port}"
        security = [
            ("EventTV", self.ids.event_tv(self.now)),
            ("Severity", "Informational"),
            ("Service", "PJSIP"),
            ("EventVersion", "1"),
            ("AccountID", desk),
            ("SessionID", call_id),
            ("LocalAddress", f"IPV4/UDP/{LOCAL_IP}/5060"),
            ("RemoteAddress", remote),
        ]
        self.emit("ChallengeSent", P_SECURITY, [*security, ("Challenge", "")])
        self.wait(0.0016)
        security[0] = ("EventTV", self.ids.event_tv(self.now))
        self.emit("SuccessfulAuth", P_SECURITY, [*security, ("UsingPassword", "1")])
        self.wait(0.0009)
        return self._calling_channel(f"PJSIP/{desk}", desk, f"Desk {desk}", "from-internal", dialled, call_id, desk)

    def _dialled_leg(
        self, caller: Chan, device: str, cid_num: str, cid_name: str, context: str, dial_number: str, desk: str | None
    ) -> Chan:
        """Dial() creating a leg: Newchannel (Down, Exten s), AppDial, connected line = caller. A trunk leg (no desk)
        takes the calling channel's Exten as its caller id (NewCallerid)."""
        ch = Chan(
            name=f"{device}-" + self.ids.pjsip_suffix(),
            uniqueid=self.ids.uniqueid(self.now),
            linkedid=caller.linkedid,
            cid_num=cid_num,
            cid_name=cid_name,
            context=context,
            exten="s",
            device=device,
            desk=desk,
            call_id=self.ids.uuid(),
            dial_number=dial_number,
        )
        self._open(ch)
        self.varset(ch, "DIALEDPEERNUMBER", dial_number)
        if desk is None:
            ch.cid_num = caller.exten
        ch.exten, ch.conn_num, ch.conn_name = caller.exten, caller.cid_num, caller.cid_name
        self.newexten(ch, "AppDial", OUTGOING_LINE, extension=caller.exten)
        if desk is None:
            self.chan_event("NewCallerid", ch, [("CID-CallingPres", PRESENTATION_ALLOWED)])
        self.chan_event("NewConnectedLine", ch)
        return ch

    def desk_leg(self, caller: Chan, desk: str) -> Chan:
        """Dial() creating the leg to a desk phone: Newchannel (Down, Exten s), AppDial, connected line = caller."""
        return self._dialled_leg(caller, f"PJSIP/{desk}", desk, f"Desk {desk}", "from-internal", desk, desk)

    def trunk_leg(self, caller: Chan, number: str) -> Chan:
        """Dial() of `PJSIP/<number>@trunk`: an outbound trunk channel (Down, `<unknown>`), its caller id set to the
        calling channel's Exten (NewCallerid), as in the recordings 16 and 21."""
        return self._dialled_leg(caller, "PJSIP/trunk", UNKNOWN, UNKNOWN, "from-trunk", f"{number}@trunk", None)

    def local_pair(self, caller: Chan, member: str, context: str = "queue-members") -> tuple[Chan, Chan]:
        """A queue member that is a Local channel (`Local/<member>@<context>/n`): the `;1` half (the queue's leg)
        and the `;2` half (runs the member's dialplan), tied by a LocalBridge event (recording 20)."""
        suffix = self.ids.local_suffix()
        base = f"Local/{member}@{context}-{suffix}"
        dial_number = f"{member}@{context}/n"

        def half(end: str, state: int) -> Chan:
            return Chan(
                name=base + end,
                uniqueid=self.ids.uniqueid(self.now),
                linkedid=caller.linkedid,
                cid_num=UNKNOWN,
                cid_name=UNKNOWN,
                context=context,
                exten=member,
                state=state,
                device=f"Local/{member}@{context}",
                dial_number=dial_number,
            )

        one, two = half(";1", STATE_DOWN), half(";2", STATE_RING)
        self._open(one)
        self._open(two)
        one.cid_num = caller.exten
        self.newexten(one, "AppQueue", OUTGOING_LINE, extension=member)
        self.chan_event("NewCallerid", one, [("CID-CallingPres", PRESENTATION_ALLOWED)])
        self.varset(one, "DIALEDPEERNUMBER", dial_number)
        self.varset(two, "DIALEDPEERNUMBER", dial_number)
        two.cid_num, two.cid_name = caller.cid_num, caller.cid_name
        two.conn_num, two.conn_name = caller.exten, UNKNOWN
        two.ani, two.dnid = caller.cid_num, member
        self.chan_event("NewCallerid", two, [("CID-CallingPres", PRESENTATION_ALLOWED)])
        self.chan_event("NewConnectedLine", two)
        self.emit(
            "LocalBridge",
            P_CALL,
            [
                *[("LocalOne" + k, v) for k, v in one.fields()],
                *[("LocalTwo" + k, v) for k, v in two.fields()],
                ("Context", context),
                ("Exten", member),
                ("LocalOptimization", "No"),
            ],
        )
        return one, two

    # ---- channel events -----------------------------------------------------------------------------------------

    def newchannel(self, ch: Chan) -> None:
        self.chan_event("Newchannel", ch)
        if self.cel_cdr:
            self.cel(ch, "CHAN_START", application="", appdata="", ani="", dnid="")

    def newstate(self, ch: Chan, state: int) -> None:
        ch.state = state
        self.chan_event("Newstate", ch)
        if state == STATE_UP:
            ch.answered_at = self.now
            if self.cel_cdr:
                self.cel(ch, "ANSWER")

    def varset(self, ch: Chan, variable: str, value: str) -> None:
        self.chan_event("VarSet", ch, [("Variable", variable), ("Value", value)], privilege=P_DIALPLAN)

    def newexten(self, ch: Chan, application: str, data: str, *, extension: str | None = None) -> None:
        self.chan_event(
            "Newexten",
            ch,
            [
                ("Extension", ch.exten if extension is None else extension),
                ("Application", application),
                ("AppData", data),
            ],
            privilege=P_DIALPLAN,
        )
        ch.app, ch.appdata = application, data

    def exten(self, ch: Chan, application: str, data: str) -> None:
        """The dialplan running the next priority on `ch` (priority 1 for its first step)."""
        if self.cel_cdr and ch.app in ("Dial", "Queue", "VoiceMail"):
            self.cel(ch, "APP_END")
        if ch.pbx_started:
            ch.priority += 1
        ch.pbx_started = True
        self.newexten(ch, application, data)
        if self.cel_cdr and application in ("Dial", "Queue", "VoiceMail"):
            self.cel(ch, "APP_START")

    def goto(self, ch: Chan, context: str, exten: str) -> None:
        """An async goto (e.g. a blind transfer): the next dialplan step runs at context,exten,1."""
        if self.cel_cdr and ch.app in ("Dial", "Queue", "VoiceMail"):
            self.cel(ch, "APP_END")
        ch.context, ch.exten, ch.priority, ch.pbx_started = context, exten, 1, False
        ch.app = ch.appdata = ""

    def connected_line(self, ch: Chan, num: str, name: str) -> None:
        ch.conn_num, ch.conn_name = num, name
        self.chan_event("NewConnectedLine", ch)

    def dial_app(self, caller: Chan, data: str) -> None:
        """`Dial(<data>)`: the Newexten, then the variables Dial resets."""
        self.exten(caller, "Dial", data)
        for variable in DIAL_START_VARS:
            self.varset(caller, variable, "")
        caller.dialstatus = ""

    def dial_begin(self, caller: Chan, leg: Chan, dial_string: str) -> None:
        self.pair_event("DialBegin", caller, leg, [("DialString", dial_string)])
        if self.cel_cdr:
            self._cdr.append(_CdrLeg(caller, leg, caller.app, caller.appdata))

    def dial_state(self, caller: Chan, leg: Chan, status: str = "RINGING") -> None:
        self.pair_event("DialState", caller, leg, [("DialStatus", status)])

    def dial_end(self, caller: Chan, leg: Chan, status: str) -> None:
        self.pair_event("DialEnd", caller, leg, [("DialStatus", status)])
        if self.cel_cdr:
            for cdr in self._cdr:
                if cdr.leg is leg and cdr.dialler is caller:
                    cdr.disposition = {"ANSWER": "ANSWERED", "BUSY": "BUSY"}.get(status, cdr.disposition)

    def hangup_request(self, ch: Chan, cause: int | None = None, tech_cause: int | None = None) -> None:
        extra: list[tuple[str, str]] = []
        if cause is not None:
            extra.append(("Cause", str(cause)))
        if tech_cause is not None:
            extra.append(("TechCause", str(tech_cause)))
        self.chan_event("HangupRequest", ch, extra)
        if not ch.hangup_source:
            ch.hangup_source = ch.name

    def soft_hangup_request(self, ch: Chan, cause: int = 16, tech_cause: int | None = None) -> None:
        extra = [("Cause", str(cause))]
        if tech_cause is not None:
            extra.append(("TechCause", str(tech_cause)))
        self.chan_event("SoftHangupRequest", ch, extra)

    def hangup(self, ch: Chan, cause: int, tech_cause: int | None = None, *, source: str | None = None) -> None:
        extra = [("Cause", str(cause)), ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown"))]
        if tech_cause is not None:
            extra.append(("TechCause", str(tech_cause)))
        self.chan_event("Hangup", ch, extra)
        ch.alive = False
        self._linkedid_open -= 1
        if self.cel_cdr:
            if ch.app in ("Dial", "Queue", "VoiceMail"):
                # still in the application: it ends first, and the HANGUP row names none (as in the recordings)
                self.cel(ch, "APP_END")
                ch.app = ch.appdata = ""
            hangup_source = ch.hangup_source if source is None else source
            extra_json = f'{{"hangupcause":{cause},"hangupsource":"{hangup_source}","dialstatus":"{ch.dialstatus}"}}'
            self.cel(ch, "HANGUP", extra=extra_json)
            self.cel(ch, "CHAN_END")
            self._emit_cdrs(ch)
            if self._linkedid_open == 0:
                self.cel(ch, "LINKEDID_END")

    # ---- bridges ------------------------------------------------------------------------------------------------

    def bridge_create(self) -> Bridge:
        bridge = Bridge(self.ids.uuid())
        self.emit("BridgeCreate", P_CALL, bridge.fields())
        return bridge

    def bridge_enter(self, bridge: Bridge, ch: Chan) -> None:
        peer = bridge.members[0].name if bridge.members else ""
        bridge.members.append(ch)
        self.emit("BridgeEnter", P_CALL, [*bridge.fields(), *ch.fields()])
        if self.cel_cdr:
            extra = f'{{"bridge_id":"{bridge.uniqueid}","bridge_technology":"{bridge.technology}"}}'
            self.cel(ch, "BRIDGE_ENTER", peer=peer, extra=extra)

    def bridge_leave(self, bridge: Bridge, ch: Chan) -> None:
        bridge.members.remove(ch)
        self.emit("BridgeLeave", P_CALL, [*bridge.fields(), *ch.fields()])
        if self.cel_cdr:
            peer = bridge.members[0].name if bridge.members else ""
            extra = f'{{"bridge_id":"{bridge.uniqueid}","bridge_technology":"{bridge.technology}"}}'
            self.cel(ch, "BRIDGE_EXIT", peer=peer, extra=extra)

    def bridge_destroy(self, bridge: Bridge) -> None:
        self.emit("BridgeDestroy", P_CALL, bridge.fields())

    def bridge_peer_vars(self, a: Chan, b: Chan, rounds: int = 3) -> None:
        """BRIDGEPEER / BRIDGEPVTCALLID, set on both sides once per bridge change (three rounds in the recordings)."""
        for _ in range(rounds):
            self.varset(a, "BRIDGEPEER", b.name)
            if b.call_id:
                self.varset(a, "BRIDGEPVTCALLID", b.call_id)
            self.varset(b, "BRIDGEPEER", a.name)
            if a.call_id:
                self.varset(b, "BRIDGEPVTCALLID", a.call_id)

    def bridge_peer_clear(self, *chans: Chan) -> None:
        for ch in chans:
            self.varset(ch, "BRIDGEPEER", "")
            self.varset(ch, "BRIDGEPVTCALLID", "")

    def rtp_qos(self, ch: Chan, talk_s: float, *, peer: Chan | None = None) -> None:
        """The RTP statistics variables chan_pjsip sets when a call with media ends (…BRIDGED on the bridge peer)."""
        ssrc = str(self.rng.randrange(10_000_000, 2_000_000_000))
        tx = str(int(talk_s * 50))
        for name, template in RTP_QOS:
            value = template.format(ssrc=ssrc, tx=tx)
            self.varset(ch, name, value)
            if peer is not None:
                self.varset(peer, name + "BRIDGED", value)

    # ---- state noise (device states, hints, queue members) --------------------------------------------------------

    def device_state(self, device: str, state: str) -> None:
        self.emit("DeviceStateChange", P_CALL, [("Device", device), ("State", state)])

    def desk_state(self, desk: str | None, state: str, *, queues: bool = True) -> None:
        """What a desk phone's device-state change drags along: its hint, its device state, its queue memberships."""
        if desk is None:
            return
        member_status, hint_status, hint_text, device_state = MEMBER_STATUS[state]
        if desk in HINTED_DESKS:
            self.emit(
                "ExtensionStatus",
                P_CALL,
                [
                    ("Exten", desk),
                    ("Context", "desk-hints"),
                    ("Hint", f"PJSIP/{desk}"),
                    ("Status", hint_status),
                    ("StatusText", hint_text),
                ],
            )
        self.device_state(f"PJSIP/{desk}", device_state)
        if desk in QUEUE_DESKS:
            # a queue's `_avail` device is in use while none of its (registered) members is free
            was_full = self._busy_desks >= QUEUE_DESKS
            if state == "idle":
                self._busy_desks.discard(desk)
            else:
                self._busy_desks.add(desk)
            if was_full != (self._busy_desks >= QUEUE_DESKS):
                self.queue_avail("NOT_INUSE" if was_full else "INUSE")
        if queues and desk in QUEUE_DESKS:
            for queue, interface in QUEUES:
                self.emit(
                    "QueueMemberStatus",
                    P_AGENT,
                    [
                        ("Queue", queue),
                        ("MemberName", f"Desk {desk}"),
                        ("Interface", interface.format(desk)),
                        ("StateInterface", f"PJSIP/{desk}"),
                        ("Membership", "static"),
                        ("Penalty", "0"),
                        ("CallsTaken", "0"),
                        ("LastCall", "0"),
                        ("LastPause", "0"),
                        ("LoginTime", str(self.boot_time)),
                        ("InCall", "0"),
                        ("Status", member_status),
                        ("Paused", "0"),
                        ("PausedReason", ""),
                        ("Ringinuse", "0"),
                        ("Wrapuptime", "0"),
                    ],
                )

    def queue_avail(self, state: str) -> None:
        for queue, _ in QUEUES:
            self.device_state(f"Queue:{queue}_avail", state)

    # ---- CEL and Cdr (optional; a stock Asterisk sends neither) ---------------------------------------------------

    def cel(
        self,
        ch: Chan,
        name: str,
        *,
        application: str | None = None,
        appdata: str | None = None,
        peer: str = "",
        extra: str = "",
        ani: str | None = None,
        dnid: str | None = None,
    ) -> None:
        self.emit(
            "CEL",
            P_CALL,
            [
                ("EventName", name),
                ("AccountCode", ""),
                ("CallerIDnum", ch.cid_num),
                ("CallerIDname", ch.cid_name),
                ("CallerIDani", ch.ani if ani is None else ani),
                ("CallerIDrdnis", ""),
                ("CallerIDdnid", ch.dnid if dnid is None else dnid),
                ("Exten", ch.exten),
                ("Context", ch.context),
                ("Channel", ch.name),
                ("Application", ch.app if application is None else application),
                ("AppData", ch.appdata if appdata is None else appdata),
                ("EventTime", self.ids.cel_time(self.now)),
                ("AMAFlags", "DOCUMENTATION"),
                ("UniqueID", ch.uniqueid),
                ("LinkedID", ch.linkedid),
                ("Userfield", ""),
                ("Peer", peer),
                ("PeerAccount", ""),
                ("Extra", extra),
            ],
        )

    def cdr_application(self, caller: Chan, application: str, data: str, disposition: str) -> None:
        """A Cdr for an application that answered the caller itself (VoiceMail)."""
        if self.cel_cdr:
            self._cdr.append(_CdrLeg(caller, None, application, data, disposition))

    def _emit_cdrs(self, ch: Chan) -> None:
        for cdr in [c for c in self._cdr if c.dialler is ch]:
            self._cdr.remove(cdr)
            leg = cdr.leg
            start = ch.created_at if leg is None else leg.created_at
            answered = ch.answered_at if leg is None else leg.answered_at
            if cdr.disposition != "ANSWERED":
                answered = None
            self.emit(
                "Cdr",
                P_CDR,
                [
                    ("AccountCode", ""),
                    ("Source", ch.cid_num),
                    ("Destination", ch.dnid or ch.exten),
                    ("DestinationContext", ch.context),
                    ("CallerID", f'"{ch.cid_name}" <{ch.cid_num}>'),
                    ("Channel", ch.name),
                    ("DestinationChannel", "" if leg is None else leg.name),
                    ("LastApplication", cdr.application),
                    ("LastData", cdr.data),
                    ("StartTime", self.ids.cel_time(start)),
                    ("AnswerTime", "" if answered is None else self.ids.cel_time(answered)),
                    ("EndTime", self.ids.cel_time(self.now)),
                    ("Duration", str(int(self.now - start))),
                    ("BillableSeconds", "0" if answered is None else str(int(self.now - answered))),
                    ("Disposition", cdr.disposition),
                    ("AMAFlags", "DOCUMENTATION"),
                    ("UniqueID", ch.uniqueid),
                    ("UserField", ""),
                ],
            )
