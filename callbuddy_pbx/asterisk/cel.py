"""Calls rebuilt from Asterisk's CEL rows and judged by the same tracker as the AMI stream. Pure logic, no I/O.

CEL is Asterisk's durable record of every call: when the AMI link was down (or the service stopped), these rows are
what happened. Each row becomes the AMI event the tracker already understands (CHAN_START -> Newchannel, ANSWER ->
Newstate Up, APP_START -> Newexten, BRIDGE_ENTER/EXIT -> BridgeEnter/Leave, HANGUP -> Hangup), so a call is judged by
exactly one set of outcome rules whichever way its evidence arrived.

Two things AMI says that CEL only implies are rebuilt from the rows of the whole call (which is why only complete
calls, ended by LINKEDID_END, are judged): the caller hanging up (a HANGUP whose `hangupsource` is the caller's own
channel; in AMI a HangupRequest that comes before the legs are torn down), and bridge-mates from other calls (the
`peer` column).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import EARLIEST_TIME, LATEST_TIME, CallTracker
from callbuddy_pbx.model import CallRecord

LINKEDID_END = "LINKEDID_END"
# Rows that say nothing about who was reached (the tracker ignores their AMI twins too); a reader may leave them out.
UNUSED_EVENTS = frozenset({"STREAM_BEGIN", "STREAM_END", "DTMF", "HOLD", "UNHOLD", "USER_DEFINED", "CHAN_END"})
# A caller's own HANGUP is told to the tracker before the legs it tore down: these rows just before it are that
# tear-down, when they came within this long of it.
_TEARDOWN = frozenset({"HANGUP", "CHAN_END", "APP_END", "BRIDGE_EXIT", "STREAM_END"})
TEARDOWN_S = 1.0
MAX_EXTRA_CHARS = 4096  # `extra` is JSON written by Asterisk; a row carrying more is not one of its rows


@dataclass(frozen=True, slots=True)
class CelRow:
    """One CEL row as cel_sqlite3_custom (or cel_pgsql) stores it, with its time already read."""

    id: int  # the table's row id (AcctId): Asterisk's insertion order
    event: str  # eventtype: CHAN_START, ANSWER, HANGUP, ...
    time: float  # unix seconds
    channel: str
    uniqueid: str
    linkedid: str
    cid_name: str = ""
    cid_num: str = ""
    exten: str = ""
    context: str = ""
    app: str = ""
    app_data: str = ""
    peer: str = ""
    extra: str = ""


def event_time(text: str, zone: ZoneInfo | None) -> float | None:
    """`eventtime` as unix seconds: stored as `1796543878.250289` (no `dateformat` in cel.conf) or as wall-clock text
    such as `2026-12-06 07:58:43` (`dateformat = %F %T`) in the PBX's time zone (`zone`; None: this host's)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone) if zone is not None else moment.astimezone()
        value = moment.timestamp()
    if not math.isfinite(value) or not EARLIEST_TIME < value < LATEST_TIME:
        return None
    return value


def _extra(row: CelRow) -> Mapping[str, object]:
    if not row.extra or len(row.extra) > MAX_EXTRA_CHARS or not row.extra.startswith("{"):
        return {}
    try:
        value = json.loads(row.extra)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _caller_hangup_at(rows: Sequence[CelRow]) -> int | None:
    """Where, among one call's rows, the caller's own hang-up belongs (None when the caller did not hang up)."""
    for index, row in enumerate(rows):
        if row.event == "HANGUP" and row.uniqueid == row.linkedid:
            if _extra(row).get("hangupsource") != row.channel:
                return None
            start = index
            while start > 0 and rows[start - 1].event in _TEARDOWN and row.time - rows[start - 1].time <= TEARDOWN_S:
                start -= 1
            return start
    return None


def tracker_events(rows: Sequence[CelRow]) -> Iterator[tuple[dict[str, str], float]]:
    """The AMI events (with their times) that tell the tracker what these rows of ONE call, in row order, say."""
    caller_hangup = _caller_hangup_at(rows)
    names: set[str] = {row.channel for row in rows if row.event == "CHAN_START"}
    caller_id: dict[str, tuple[str, str]] = {}
    for index, row in enumerate(rows):
        base = {"Channel": row.channel, "Uniqueid": row.uniqueid, "Linkedid": row.linkedid, "Timestamp": repr(row.time)}
        if index == caller_hangup:
            yield {"Event": "HangupRequest", **base, "Uniqueid": row.linkedid, "Channel": _caller_name(rows)}, row.time
        event = row.event
        if event == "CHAN_START":
            state = "4" if row.uniqueid == row.linkedid else "0"
            caller_id[row.uniqueid] = (row.cid_num, row.cid_name)
            yield (
                {
                    "Event": "Newchannel",
                    **base,
                    "ChannelState": state,
                    "CallerIDNum": row.cid_num,
                    "CallerIDName": row.cid_name,
                    "Exten": row.exten,
                    "Context": row.context,
                },
                row.time,
            )
            continue
        if row.uniqueid == row.linkedid and caller_id.get(row.uniqueid, (row.cid_num, row.cid_name)) != (
            row.cid_num,
            row.cid_name,
        ):
            caller_id[row.uniqueid] = (row.cid_num, row.cid_name)
            yield {"Event": "NewCallerid", **base, "CallerIDNum": row.cid_num, "CallerIDName": row.cid_name}, row.time
        if event == "ANSWER":
            yield {"Event": "Newstate", **base, "ChannelState": "6"}, row.time
        elif event == "APP_START":
            yield (
                {
                    "Event": "Newexten",
                    **base,
                    "Application": row.app,
                    "AppData": row.app_data,
                    "Exten": row.exten,
                    "Context": row.context,
                },
                row.time,
            )
        elif event in ("BRIDGE_ENTER", "BRIDGE_EXIT"):
            bridge = _extra(row).get("bridge_id")
            if not isinstance(bridge, str) or not bridge:
                continue
            if event == "BRIDGE_EXIT":
                yield {"Event": "BridgeLeave", **base, "BridgeUniqueid": bridge}, row.time
                continue
            if row.peer and row.peer not in names:  # a channel of another call was already in the bridge
                names.add(row.peer)
                yield (
                    {
                        "Event": "BridgeEnter",
                        "Channel": row.peer,
                        "Uniqueid": f"peer:{row.peer}",
                        "Linkedid": "",
                        "BridgeUniqueid": bridge,
                        "Timestamp": repr(row.time),
                    },
                    row.time,
                )
            yield {"Event": "BridgeEnter", **base, "BridgeUniqueid": bridge}, row.time
        elif event == "HANGUP":
            cause = _extra(row).get("hangupcause")
            yield {"Event": "Hangup", **base, "Cause": str(cause) if isinstance(cause, int) else ""}, row.time


def _caller_name(rows: Sequence[CelRow]) -> str:
    return next((row.channel for row in rows if row.uniqueid == row.linkedid), "")


def complete_calls(rows: Iterable[CelRow]) -> dict[str, list[CelRow]]:
    """Rows grouped by call, in row order, keeping only the calls that are over (their LINKEDID_END is there)."""
    by_call: dict[str, list[CelRow]] = {}
    for row in rows:
        by_call.setdefault(row.linkedid, []).append(row)
    return {
        linkedid: sorted(call, key=lambda row: row.id)
        for linkedid, call in by_call.items()
        if linkedid and any(row.event == LINKEDID_END for row in call)
    }


def judge(calls: Mapping[str, Sequence[CelRow]], matcher: InboundMatcher) -> dict[str, CallRecord | None]:
    """Each complete call's verdict, by Linkedid: its record when it was an inbound call to a business number, else
    None (an outbound or internal call, never ours to report). Judged from all of its rows: fully observed."""
    tracker = CallTracker(matcher)
    verdicts: dict[str, CallRecord | None] = {}
    for linkedid, rows in calls.items():
        found: list[CallRecord] = []
        for event, at in tracker_events(rows):
            found += tracker.feed(event, at)
        found += tracker.flush()
        record = next((r for r in found if r.linkedid == linkedid), None)
        verdicts[linkedid] = replace(record, from_cel=True) if record is not None else None
    return verdicts
