"""CallRecord -> JSON-ready dict, one shape for `replay`, `calls --json` and the JSON API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from callbuddy_pbx.model import CallRecord


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
