"""What a scripted scenario is: the public data model (`Scenario`, `ScriptedEvent`), the test PBX's numbers the
scenarios use by default, and what a scenario script returns (`ScriptMeta`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage

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
class ScriptMeta:
    """What a script says about the call it wrote (everything of a `Scenario` but the events and their timing)."""

    name: str
    caller: str | None
    did: str | None
    outcome: str | None
    answered_by: str | None
    linkedid: str


Script = Callable[..., ScriptMeta]  # (CallScript, caller, caller_name, did, **options) or (CallScript, **options)
