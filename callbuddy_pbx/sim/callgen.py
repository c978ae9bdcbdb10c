"""Building blocks for scripted AMI event streams that look like the real Asterisk 22 (PJSIP) recordings.

`CallScript` models the channels of one call (name, state, caller id, connected line, dialplan position, ids) and
emits events with the same names, the same header order and the same `Privilege` values as the `ami.raw` files in
shared/traces/asterisk. Scenario scripts (scenarios.py) are written with its primitives, step by step in the order
the recordings show.

Identifiers come from an `IdSource` (one per simulated PBX): a global counter for `Uniqueid` (`<unix>.<n>`, the unix
part being the second the channel was created), an 8-hex-digit counter for `PJSIP/...-XXXXXXXX` names, another for
`Local/...-XXXXXXXX;1/;2`, UUIDs for bridges. `TemplateIds` hands out placeholder tokens instead, so that one run of
a script can be turned into a fast per-call template (see scenarios.py).
"""

from __future__ import annotations

import calendar
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage

UNKNOWN = "<unknown>"
STATE_DOWN, STATE_RING, STATE_RINGING, STATE_UP = 0, 4, 5, 6
STATE_DESC = {STATE_DOWN: "Down", STATE_RING: "Ring", STATE_RINGING: "Ringing", STATE_UP: "Up"}
CAUSE_TEXT = {
    0: "Unknown",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    26: "Answered elsewhere",
    127: "Interworking, unspecified",
}
PRESENTATION_ALLOWED = "0 (Presentation Allowed, Not Screened)"
OUTGOING_LINE = "(Outgoing Line)"

# Privilege classes, as Asterisk 22 sends them with `read = all`.
P_CALL = "call,all"
P_DIALPLAN = "dialplan,all"
P_AGENT = "agent,all"
P_SECURITY = "security,all"
P_REPORTING = "reporting,all"
P_CDR = "cdr,all"

# Variables Dial() clears when it starts (VarSet order as recorded).
DIAL_START_VARS = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
    "PROGRESSTIME",
    "PROGRESSTIME_MS",
)
QUEUE_START_VARS = ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "QUEUEWAIT", "QUEUEWAIT_MS")
_JITTER = ";".join(
    f"{k}jitter=000.000000" for k in ("minrx", "maxrx", "avgrx", "stdevrx", "mintx", "maxtx", "avgtx", "stdevtx")
)
_LOST = ";".join(
    f"  {k}lost=000.000000" for k in ("minrx", "maxrx", "avgrx", "stdevrx", "mintx", "maxtx", "avgtx", "stdevtx")
)
_RTT = ";".join(f"     {k}rtt=000.000000" for k in ("min", "max", "avg", "stdev"))
_MES = ";".join(
    f"   {k}mes=000.000000" for k in ("minrx", "maxrx", "avgrx", "stdevrx", "mintx", "maxtx", "avgtx", "stdevtx")
)
RTP_QOS = (
    (
        "RTPAUDIOQOS",
        "ssrc={ssrc};themssrc=0;lp=0;rxjitter=0.000000;rxcount=0;txjitter=0.000000;txcount={tx};rlp=0;rtt=0.000000;"
        "rxmes=0.000000;txmes=0.000000",
    ),
    ("RTPAUDIOQOSJITTER", _JITTER + ";"),
    ("RTPAUDIOQOSLOSS", _LOST + ";"),
    ("RTPAUDIOQOSRTT", _RTT + ";"),
    ("RTPAUDIOQOSMES", _MES + ";"),
)

# The test PBX's queues (they make QueueMemberStatus noise whenever a member's device changes state).
QUEUES = (
    ("callbuddy-hunt", "Local/{}@queue-members"),
    ("callbuddy-sales", "PJSIP/{}"),
    ("callbuddy-support", "Local/{}@queue-members/n"),
)
QUEUE_DESKS = frozenset({"100", "101"})
HINTED_DESKS = frozenset({"100", "101", "102"})
MEMBER_STATUS = {"idle": ("1", "0", "Idle", "NOT_INUSE"), "inuse": ("2", "1", "InUse", "INUSE")}
MEMBER_STATUS["ringing"] = ("6", "8", "Ringing", "RINGING")

LOCAL_IP = "127.0.0.1"


class IdSource:
    """Identifiers the way one Asterisk process hands them out (plus the SIP peers' Call-IDs)."""

    def __init__(
        self,
        rng: random.Random,
        *,
        first_uniqueid: int = 59,
        first_pjsip: int = 0x3B,
        first_local: int = 6,
        sipp_pid: int = 21413,
    ) -> None:
        self.rng = rng
        self.next_uniqueid = first_uniqueid
        self.next_pjsip = first_pjsip
        self.next_local = first_local
        self.next_sipp_call = 1
        self.sipp_pid = sipp_pid

    def uniqueid(self, when: float) -> str:
        n = self.next_uniqueid
        self.next_uniqueid += 1
        return f"{int(when)}.{n}"

    def pjsip_suffix(self) -> str:
        n = self.next_pjsip
        self.next_pjsip += 1
        return f"{n:08x}"

    def local_suffix(self) -> str:
        n = self.next_local
        self.next_local += 1
        return f"{n:08x}"

    def uuid(self) -> str:
        return uuid_from_bits(self.rng.getrandbits(128))

    def sipp_call_id(self) -> str:
        """Call-ID of a call a SIP user agent (SIPp: the carrier, a desk placing a call) started."""
        n = self.next_sipp_call
        self.next_sipp_call += 1
        return f"{n}-{self.sipp_pid}@{LOCAL_IP}"

    def timestamp(self, when: float) -> str:
        return f"{when:.6f}"

    def cel_time(self, when: float) -> str:
        return cel_time(when)

    def event_tv(self, when: float) -> str:
        return event_tv(when)


def uuid_from_bits(bits: int) -> str:
    """A version-4 UUID string from 128 random bits (what Asterisk uses for bridge ids and its own Call-IDs)."""
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[bits & 3]}{h[17:20]}-{h[20:32]}"


_CEL_CACHE: dict[int, str] = {}


def cel_time(when: float) -> str:
    """CEL/Cdr time format of this PBX (UTC, whole seconds)."""
    second = int(when)
    text = _CEL_CACHE.get(second)
    if text is None:
        if len(_CEL_CACHE) > 4096:
            _CEL_CACHE.clear()
        text = _CEL_CACHE[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
    return text


def event_tv(when: float) -> str:
    """Security events' EventTV (`2026-11-21T09:53:43.830+0000`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when))) + f".{int(when * 1000) % 1000:03d}+0000"


def unix_of_cel_time(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


@dataclass(slots=True, eq=False)
class Chan:
    """One Asterisk channel as the events describe it (the snapshot fields, in their header order)."""

    name: str
    uniqueid: str
    linkedid: str
    cid_num: str
    cid_name: str
    context: str
    exten: str
    state: int = STATE_DOWN
    priority: int = 1
    conn_num: str = UNKNOWN
    conn_name: str = UNKNOWN
    device: str = ""  # device-state name (`PJSIP/100`, `PJSIP/trunk`, `Local/100@queue-members`)
    desk: str | None = None  # desk number when this channel is a desk phone
    call_id: str = ""  # SIP Call-ID: what BRIDGEPVTCALLID shows to its bridge peer
    dial_number: str = ""  # DIALEDPEERNUMBER, as the dialling channel records it
    created_at: float = 0.0
    answered_at: float | None = None
    app: str = ""  # dialplan application running (CEL)
    appdata: str = ""
    ani: str = ""  # CEL CallerIDani / CallerIDdnid
    dnid: str = ""
    pbx_started: bool = False
    alive: bool = True
    hangup_source: str = ""
    dialstatus: str = ""

    def fields(self, prefix: str = "") -> list[tuple[str, str]]:
        return [
            (prefix + "Channel", self.name),
            (prefix + "ChannelState", str(self.state)),
            (prefix + "ChannelStateDesc", STATE_DESC[self.state]),
            (prefix + "CallerIDNum", self.cid_num),
            (prefix + "CallerIDName", self.cid_name),
            (prefix + "ConnectedLineNum", self.conn_num),
            (prefix + "ConnectedLineName", self.conn_name),
            (prefix + "Language", "en"),
            (prefix + "AccountCode", ""),
            (prefix + "Context", self.context),
            (prefix + "Exten", self.exten),
            (prefix + "Priority", str(self.priority)),
            (prefix + "Uniqueid", self.uniqueid),
            (prefix + "Linkedid", self.linkedid),
        ]


@dataclass(slots=True, eq=False)
class Bridge:
    uniqueid: str
    technology: str = "simple_bridge"
    members: list[Chan] = field(default_factory=list)

    def fields(self) -> list[tuple[str, str]]:
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", self.technology),
            ("BridgeCreator", UNKNOWN),
            ("BridgeName", UNKNOWN),
            ("BridgeNumChannels", str(len(self.members))),
            ("BridgeVideoSourceMode", "none"),
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

    def _register(self, ch: Chan) -> Chan:
        ch.created_at = self.now
        self.channels.append(ch)
        self._linkedid_open += 1
        return ch

    def inbound(self, caller_num: str, caller_name: str, did: str) -> Chan:
        """A call arriving from the carrier: `PJSIP/trunk-...` in state Ring, context from-trunk, Exten = the DID."""
        uid = self.ids.uniqueid(self.now)
        ch = Chan(
            name="PJSIP/trunk-" + self.ids.pjsip_suffix(),
            uniqueid=uid,
            linkedid=uid,
            cid_num=caller_num,
            cid_name=caller_name,
            context="from-trunk",
            exten=did,
            state=STATE_RING,
            device="PJSIP/trunk",
            call_id=self.ids.sipp_call_id(),
        )
        self._register(ch)
        self.newchannel(ch)
        self.varset(ch, "SIPDOMAIN", LOCAL_IP)
        ch.ani, ch.dnid = caller_num, did
        return ch

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
        uid = self.ids.uniqueid(self.now)
        ch = Chan(
            name=f"PJSIP/{desk}-" + self.ids.pjsip_suffix(),
            uniqueid=uid,
            linkedid=uid,
            cid_num=desk,
            cid_name=f"Desk {desk}",
            context="from-internal",
            exten=dialled,
            state=STATE_RING,
            device=f"PJSIP/{desk}",
            desk=desk,
            call_id=call_id,
        )
        self._register(ch)
        self.newchannel(ch)
        self.varset(ch, "SIPDOMAIN", LOCAL_IP)
        ch.ani, ch.dnid = desk, dialled
        return ch

    def desk_leg(self, caller: Chan, desk: str) -> Chan:
        """Dial() creating the leg to a desk phone: Newchannel (Down, Exten s), AppDial, connected line = caller."""
        ch = Chan(
            name=f"PJSIP/{desk}-" + self.ids.pjsip_suffix(),
            uniqueid=self.ids.uniqueid(self.now),
            linkedid=caller.linkedid,
            cid_num=desk,
            cid_name=f"Desk {desk}",
            context="from-internal",
            exten="s",
            device=f"PJSIP/{desk}",
            desk=desk,
            call_id=self.ids.uuid(),
            dial_number=desk,
        )
        self._register(ch)
        self.newchannel(ch)
        self.varset(ch, "DIALEDPEERNUMBER", desk)
        ch.exten, ch.conn_num, ch.conn_name = caller.exten, caller.cid_num, caller.cid_name
        self.newexten(ch, "AppDial", OUTGOING_LINE, extension=caller.exten)
        self.chan_event("NewConnectedLine", ch)
        return ch

    def trunk_leg(self, caller: Chan, number: str) -> Chan:
        """Dial() of `PJSIP/<number>@trunk`: an outbound trunk channel (Down, `<unknown>`), its caller id set to the
        calling channel's Exten (NewCallerid), as in the recordings 16 and 21."""
        ch = Chan(
            name="PJSIP/trunk-" + self.ids.pjsip_suffix(),
            uniqueid=self.ids.uniqueid(self.now),
            linkedid=caller.linkedid,
            cid_num=UNKNOWN,
            cid_name=UNKNOWN,
            context="from-trunk",
            exten="s",
            device="PJSIP/trunk",
            call_id=self.ids.uuid(),
            dial_number=f"{number}@trunk",
        )
        self._register(ch)
        self.newchannel(ch)
        self.varset(ch, "DIALEDPEERNUMBER", ch.dial_number)
        ch.cid_num = caller.exten
        ch.exten, ch.conn_num, ch.conn_name = caller.exten, caller.cid_num, caller.cid_name
        self.newexten(ch, "AppDial", OUTGOING_LINE, extension=caller.exten)
        self.chan_event("NewCallerid", ch, [("CID-CallingPres", PRESENTATION_ALLOWED)])
        self.chan_event("NewConnectedLine", ch)
        return ch

    def local_pair(self, caller: Chan, member: str, context: str = "queue-members") -> tuple[Chan, Chan]:
        """A queue member that is a Local channel (`Local/<member>@<context>/n`): the `;1` half (the queue's leg)
        and the `;2` half (runs the member's dialplan), tied by a LocalBridge event (recording 20)."""
        suffix = self.ids.local_suffix()
        base = f"Local/{member}@{context}-{suffix}"
        dial_number = f"{member}@{context}/n"
        one = Chan(
            name=base + ";1",
            uniqueid=self.ids.uniqueid(self.now),
            linkedid=caller.linkedid,
            cid_num=UNKNOWN,
            cid_name=UNKNOWN,
            context=context,
            exten=member,
            device=f"Local/{member}@{context}",
            call_id="",
            dial_number=dial_number,
        )
        two = Chan(
            name=base + ";2",
            uniqueid=self.ids.uniqueid(self.now),
            linkedid=caller.linkedid,
            cid_num=UNKNOWN,
            cid_name=UNKNOWN,
            context=context,
            exten=member,
            state=STATE_RING,
            device=f"Local/{member}@{context}",
            dial_number=dial_number,
        )
        self._register(one)
        self.newchannel(one)
        self._register(two)
        self.newchannel(two)
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
