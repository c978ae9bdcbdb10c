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
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import EARLIEST_TIME, LATEST_TIME, CallTracker
from callbuddy_pbx.model import CallRecord

LINKEDID_END = "LINKEDID_END"
# The rows that say who was reached; a reader may leave out every other (STREAM_*, CHAN_END, APP_END, DTMF, ...).
USED_EVENTS = ("CHAN_START", "ANSWER", "APP_START", "BRIDGE_ENTER", "BRIDGE_EXIT", "HANGUP", LINKEDID_END)
# Only these rows' caller ID, exten and context, application, peer and extra are read.
DIALPLAN_EVENTS = ("CHAN_START", "APP_START")
CALLER_ID_EVENTS = (*DIALPLAN_EVENTS, "ANSWER", "HANGUP")
EXTRA_EVENTS = ("BRIDGE_ENTER", "BRIDGE_EXIT", "HANGUP")
# A caller's own HANGUP is told to the tracker before the legs it tore down: these rows just before it are that
# tear-down, when they came within this long of it (CHAN_END, APP_END and STREAM_END rows, when read, count too).
_TEARDOWN = frozenset({"HANGUP", "CHAN_END", "APP_END", "BRIDGE_EXIT", "STREAM_END"})
TEARDOWN_S = 1.0
MAX_EXTRA_CHARS = 4096  # `extra` is JSON written by Asterisk; a row carrying more is not one of its rows


class CelRow(NamedTuple):
    """One CEL row as cel_sqlite3_custom (or cel_pgsql) stores it, with its time already read. A tuple: a gap of an
    hour at a busy PBX is hundreds of thousands of rows, read and judged in seconds."""

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
        try:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone) if zone is not None else moment.astimezone()
            value = moment.timestamp()
        except (ValueError, OverflowError, OSError):  # e.g. year 1 in a zone west of UTC: no such moment
            return None
    if not math.isfinite(value) or not EARLIEST_TIME < value < LATEST_TIME:
        return None
    return value


# `extra` as Asterisk writes it: compact JSON with plain values ({"hangupcause":16,"hangupsource":"PJSIP/..."}).
# The few fields used are picked out directly: a JSON parse per row was a fifth of the cost of judging a gap.
_EXTRA_FIELD = {
    key: re.compile(rf'"{key}":(?:"((?:[^"\\]|\\.)*)"|(-?\d+))') for key in ("hangupcause", "hangupsource", "bridge_id")
}


def extra_field(row: CelRow, key: str) -> str | int | None:
    """One field of the row's `extra` (str or int, as written), or None."""
    if not row.extra or len(row.extra) > MAX_EXTRA_CHARS:
        return None
    found = _EXTRA_FIELD[key].search(row.extra)
    if found is None:
        return None
    text, number = found.groups()
    if number is not None:
        return int(number)
    if "\\" not in text:
        return text
    try:
        value = json.loads(f'"{text}"')
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def _caller_hangup_at(rows: Sequence[CelRow]) -> int | None:
    """Where, among one call's rows, the caller's own hang-up belongs (None when the caller did not hang up)."""
    for index, row in enumerate(rows):
        if row.event == "HANGUP" and row.uniqueid == row.linkedid:
            if extra_field(row, "hangupsource") != row.channel:
                return None
            start = index
            while start > 0 and rows[start - 1].event in _TEARDOWN and row.time - rows[start - 1].time <= TEARDOWN_S:
                start -= 1
            return start
    return None


def tracker_events(rows: Sequence[CelRow]) -> Iterator[tuple[dict[str, str], float]]:
    """The AMI events (with their times) that tell the tracker what these rows of ONE call, in row order, say.

    No event carries a Timestamp header: the tracker takes the time it is fed with (the row's)."""
    caller_hangup = _caller_hangup_at(rows)
    names = {row.channel for row in rows if row.event == "CHAN_START"}
    caller_id: tuple[str, str] | None = None
    for index, row in enumerate(rows):
        event, channel, uniqueid, linkedid, at = row.event, row.channel, row.uniqueid, row.linkedid, row.time
        if index == caller_hangup:
            yield (
                {"Event": "HangupRequest", "Channel": _caller_name(rows), "Uniqueid": linkedid, "Linkedid": linkedid},
                at,
            )
        if uniqueid == linkedid and event in CALLER_ID_EVENTS:
            if caller_id is not None and caller_id != (row.cid_num, row.cid_name):
                yield (
                    {
                        "Event": "NewCallerid",
                        "Channel": channel,
                        "Uniqueid": uniqueid,
                        "Linkedid": linkedid,
                        "CallerIDNum": row.cid_num,
                        "CallerIDName": row.cid_name,
                    },
                    at,
                )
            caller_id = (row.cid_num, row.cid_name)
        if event == "CHAN_START":
            yield (
                {
                    "Event": "Newchannel",
                    "Channel": channel,
                    "Uniqueid": uniqueid,
                    "Linkedid": linkedid,
                    "ChannelState": "4" if uniqueid == linkedid else "0",
                    "CallerIDNum": row.cid_num,
                    "CallerIDName": row.cid_name,
                    "Exten": row.exten,
                    "Context": row.context,
                },
                at,
            )
        elif event == "ANSWER":
            yield {"Event": "Newstate", "Channel": channel, "Uniqueid": uniqueid, "Linkedid": linkedid,
                   "ChannelState": "6"}, at  # fmt: skip
        elif event == "APP_START":
            yield {"Event": "Newexten", "Channel": channel, "Uniqueid": uniqueid, "Linkedid": linkedid,
                   "Application": row.app, "Exten": row.exten, "Context": row.context}, at  # fmt: skip
        elif event == "HANGUP":
            cause = extra_field(row, "hangupcause")
            yield {"Event": "Hangup", "Channel": channel, "Uniqueid": uniqueid, "Linkedid": linkedid,
                   "Cause": str(cause) if isinstance(cause, int) else ""}, at  # fmt: skip
        elif event == "BRIDGE_ENTER" or event == "BRIDGE_EXIT":
            bridge = extra_field(row, "bridge_id")
            if not isinstance(bridge, str) or not bridge:
                continue
            if event == "BRIDGE_EXIT":
                yield {"Event": "BridgeLeave", "Uniqueid": uniqueid, "BridgeUniqueid": bridge}, at
                continue
            if row.peer and row.peer not in names:  # a channel of another call was already in the bridge
                names.add(row.peer)
                yield {"Event": "BridgeEnter", "Channel": row.peer, "Uniqueid": f"peer:{row.peer}", "Linkedid": "",
                       "BridgeUniqueid": bridge}, at  # fmt: skip
            yield {"Event": "BridgeEnter", "Channel": channel, "Uniqueid": uniqueid, "Linkedid": linkedid,
                   "BridgeUniqueid": bridge}, at  # fmt: skip


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
    tracker = CallTracker(matcher, from_cel=True)
    verdicts: dict[str, CallRecord | None] = {}
    for linkedid, rows in calls.items():
        found: list[CallRecord] = []
        for event, at in tracker_events(rows):
            found += tracker.feed(event, at)
        found += tracker.flush()
        record = next((r for r in found if r.linkedid == linkedid), None)
        verdicts[linkedid] = record
    return verdicts
