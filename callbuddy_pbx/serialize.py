"""CallRecord <-> JSON-ready dict, one shape for `replay`, `calls --json`, the JSON API and the spool."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from callbuddy_pbx.model import CallRecord, LegRecord, Outcome


def call_to_dict(record: CallRecord) -> dict[str, Any]:
    return {
        "linkedid": record.linkedid,
        "business": record.business,
        "did": record.did,
        "caller": record.caller,
        "caller_raw": record.caller_raw,
        "caller_name": record.caller_name,
        "outcome": record.outcome.value,
        "missed": record.missed,
        "answered_by": record.answered_by,
        "started_at": record.started_at,
        "ring_at": record.ring_at,
        "answered_at": record.answered_at,
        "ended_at": record.ended_at,
        "hangup_cause": record.hangup_cause,
        "observed_from_start": record.observed_from_start,
        "from_cel": record.from_cel,
        **({"node": record.node} if record.node else {}),  # one of several Asterisk servers (asterisk.nodes)
        "legs": [asdict(leg) for leg in record.legs],
    }


def call_from_dict(data: dict[str, Any]) -> CallRecord:
    """The inverse of call_to_dict (for calls kept aside as JSON); KeyError/ValueError/TypeError on a bad shape."""
    return CallRecord(
        linkedid=str(data["linkedid"]),
        business=data["business"],
        did=str(data["did"]),
        caller=data["caller"],
        caller_raw=str(data["caller_raw"]),
        caller_name=data["caller_name"],
        outcome=Outcome(data["outcome"]),
        answered_by=data["answered_by"],
        started_at=float(data["started_at"]),
        ring_at=data["ring_at"],
        answered_at=data["answered_at"],
        ended_at=float(data["ended_at"]),
        hangup_cause=data["hangup_cause"],
        legs=tuple(LegRecord(**leg) for leg in data["legs"]),
        observed_from_start=bool(data["observed_from_start"]),
        from_cel=bool(data["from_cel"]),
        node=str(data.get("node", "")),
    )
