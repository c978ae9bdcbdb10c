"""Channels and bridges as the AMI events describe them: their snapshot fields, in Asterisk's header order."""

from __future__ import annotations

from dataclasses import dataclass, field

from callbuddy_pbx.sim.pbx_constants import STATE_DESC, STATE_DOWN, UNKNOWN


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
