"""Typed configuration of the PBX itself (phones, ring groups, trunks), from which Asterisk's files are rendered.

(The YAML readers for these sections are added below the types.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

RING_STRATEGIES: tuple[str, ...] = ("ring_all", "in_order")
NO_ANSWER_ACTIONS: tuple[str, ...] = ("hangup", "voicemail", "forward")
ASTERISK_VERSIONS: tuple[int, ...] = (20, 22)


@dataclass(frozen=True, slots=True)
class Phone:
    """A desk phone or softphone: one PJSIP endpoint + auth + aor."""

    extension: str  # "100"
    name: str  # shown as caller ID name on internal calls
    business: str  # the business it belongs to (exactly one)
    secret: str = field(default="auto", repr=False)  # "auto": derived from pbx.secret_key (stable across renders)
    voicemail: bool = True  # a mailbox <extension>@default exists


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """What happens when nobody in the ring group answers."""

    action: str = "hangup"  # "hangup" | "voicemail" | "forward"
    extension: str = ""  # voicemail: whose mailbox
    number: str = ""  # forward: an external number, E.164


@dataclass(frozen=True, slots=True)
class RingGroup:
    """How calls to one business number ring the phones."""

    number: str  # the DID, E.164 (one of the business's numbers)
    members: tuple[str, ...]  # extensions, in order (the order matters for in_order)
    strategy: str = "ring_all"  # "ring_all" | "in_order"
    ring_s: int = 20  # ring_all: how long all members ring; in_order: how long each member rings
    total_s: int = 60  # in_order: at most this long in all
    no_answer: NoAnswer = NoAnswer()


@dataclass(frozen=True, slots=True)
class Trunk:
    """A SIP trunk from a template in sip_trunks/ with the installer's values."""

    name: str  # the PJSIP endpoint name, e.g. "trunk"
    template: str  # file stem in sip_trunks/, e.g. "twilio-elastic-sip"
    fields: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # the template's placeholders -> values
    dids: tuple[str, ...] = ()  # E.164 numbers this trunk delivers


@dataclass(frozen=True, slots=True)
class PbxConfig:
    asterisk_version: int = 22
    secret_key: str = field(default="", repr=False)  # derives "auto" SIP secrets: HMAC(secret_key, extension)
    sip_port: int = 5060
    local_net: tuple[str, ...] = ()  # e.g. ("192.168.1.0/24",): NAT settings on the transport
    external_address: str = ""  # the public address when behind NAT
    phones: tuple[Phone, ...] = ()
    ring_groups: tuple[RingGroup, ...] = ()
    trunks: tuple[Trunk, ...] = ()
