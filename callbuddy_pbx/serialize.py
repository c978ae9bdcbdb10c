"""CallRecord <-> JSON-ready dicts, shared by `replay`, `calls --json` and (later) the JSON API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from callbuddy_pbx.model import CallRecord


def call_to_dict(record: CallRecord) -> dict[str, Any]:
    data = asdict(record)
    data["outcome"] = record.outcome.value
    data["missed"] = record.missed
    data["legs"] = [dict(leg) for leg in data["legs"]]
    return data
