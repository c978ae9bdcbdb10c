"""Typed values that flow from the call tracker to the store, the CLI and (later) the recovery policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """How an inbound call ended. The names are part of the product's interface (CLI, JSON, database)."""

    ANSWERED = "answered"  # a person's device was connected with the caller
    NO_ANSWER = "no_answer"  # devices rang, nobody picked up, the PBX gave up
    BUSY = "busy"  # every device tried was busy
    ABANDONED = "abandoned"  # the caller hung up while it rang
    UNAVAILABLE = "unavailable"  # nothing could ring (no device registered / reachable)
    VOICEMAIL = "voicemail"  # no person; voicemail or another application took the call
    QUEUE_ABANDONED = "queue_abandoned"  # the caller hung up while waiting in a queue

    @property
    def missed(self) -> bool:
        return self is not Outcome.ANSWERED


@dataclass(frozen=True, slots=True)
class LegRecord:
    """One channel the PBX created to reach someone for this call (a desk phone, a Local half, a mobile)."""

    channel: str  # e.g. "PJSIP/101-0000003d"
    endpoint: str  # e.g. "PJSIP/101", or "PJSIP/15559876543@trunk" for a dial string through a trunk
    dial_status: str | None  # Asterisk's DialStatus of its DialEnd (ANSWER, NOANSWER, CANCEL, BUSY, ...)
    hangup_cause: int | None  # Q.850 cause of its Hangup
    answered: bool  # this leg reached Up (a person or a device picked up)
    started_at: float
    ended_at: float | None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished inbound call to a business number, judged from all of its legs."""

    linkedid: str
    business: str | None  # the configured business the DID belongs to (None when no businesses are configured)
    did: str  # the number dialled, E.164 when it parses, else as Asterisk gave it
    caller: str | None  # E.164, or None when withheld / not a phone number
    caller_raw: str  # CallerIDNum exactly as Asterisk gave it (never shown unescaped)
    caller_name: str | None
    outcome: Outcome
    answered_by: str | None  # endpoint of the leg a person answered on
    started_at: float
    ring_at: float | None
    answered_at: float | None
    ended_at: float
    hangup_cause: int | None  # the caller channel's Hangup cause
    legs: tuple[LegRecord, ...] = field(default=())
    observed_from_start: bool = True  # False when the call was already in progress when the service connected
    from_cel: bool = False  # judged from Asterisk's CEL rows: the AMI link missed some or all of it
    node: str = ""  # the Asterisk server (asterisk.nodes) it rang on; "": the only one

    @property
    def missed(self) -> bool:
        return self.outcome.missed

    @property
    def anonymous(self) -> bool:
        return self.caller is None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)


def node_key(linkedid: str, node: str) -> str:
    """The key a call is stored, texted and shown under: its Linkedid, and `@<node>` when it rang on one of several
    Asterisk servers (Linkedids are unique per server only). The only Asterisk of a config keeps plain Linkedids."""
    return f"{linkedid}@{node}" if node else linkedid
