"""Call tracker: AMI events in, finished inbound calls out. Pure logic, no I/O, no clock of its own.

A call is every channel sharing one `Linkedid`. Its outcome is judged once the caller's channel has hung up and the
other channels are gone (or a short grace period has passed), from all legs together: a single leg's DialEnd is never
the verdict. "Answered" needs positive evidence that a person's device was connected with the caller (a Dial ANSWER
from the caller, or a shared bridge), followed through Local channel halves; the caller's own channel going Up is not
enough (voicemail, IVR and playback answer it too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from callbuddy_pbx.asterisk.inbound import InboundMatch, InboundMatcher, endpoint_of
from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.phone import is_withheld, to_e164

log = logging.getLogger(__name__)

EARLIEST_TIME = 946_684_800.0  # 2000-01-01: an AMI Timestamp outside these is not a clock reading
LATEST_TIME = 4_102_444_800.0  # 2100-01-01

STATE_RING = 4
STATE_RINGING = 5
STATE_UP = 6

# Channel technologies that are never a person picking up: Local halves are followed through to what they reach.
NON_PERSON_TECHS = frozenset(
    {
        "Local",
        "Announcer",
        "Recorder",
        "Snoop",
        "CBAnn",
        "CBRec",
        "ConfBridge",
        "Bridge",
        "Message",
        "Multicast",
        "MulticastRTP",
        "UnicastRTP",
        "AudioSocket",
        "Surrogate",
    }
)
VOICEMAIL_APPS = frozenset({"voicemail", "minivmrecord", "minivmgreet"})
QUEUE_APPS = frozenset({"queue"})

# What a leg's DialEnd status (or, without one, its Hangup) says about the device it tried.
_ANSWER, _BUSY, _NOANSWER, _CANCEL, _UNAVAILABLE = "ANSWER", "BUSY", "NOANSWER", "CANCEL", "UNAVAILABLE"
_DIAL_RESULTS = {
    "ANSWER": _ANSWER,
    "BUSY": _BUSY,
    "NOANSWER": _NOANSWER,
    "CANCEL": _CANCEL,
    "CHANUNAVAIL": _UNAVAILABLE,
    "CONGESTION": _UNAVAILABLE,
    "INVALIDARGS": _UNAVAILABLE,
    "DONTCALL": _NOANSWER,
    "TORTURE": _NOANSWER,
}
_CAUSE_BUSY = 17
# Q.850 causes meaning the device could not be reached at all (unallocated, no route, absent, out of order, ...).
_CAUSES_UNREACHABLE = frozenset({1, 2, 3, 20, 22, 27, 28, 34, 38, 41, 42, 44, 47, 58, 66, 88, 102, 111})

DEFAULT_GRACE_S = 2.0  # after the caller hangs up, how long to wait for the other legs' last events
# Caller ID comes from the phone network: keep what a display needs, never an unbounded string.
MAX_CALLER_NAME_CHARS = 80
MAX_CALLER_NUMBER_CHARS = 40


def ami_event_time(event: Mapping[str, str], received_at: float) -> float:
    """The event's own time when it has a plausible one (finite, 2000-2100), else when it arrived: one event
    with `Timestamp: nan` or `1e20` must not poison a call's durations or the rows it is stored as."""
    stamp = event.get("Timestamp")
    if stamp:
        try:
            value = float(stamp)
        except ValueError:
            return received_at
        if EARLIEST_TIME < value < LATEST_TIME:  # False for nan and the infinities too
            return value
    return received_at


def _tech(channel: str) -> str:
    return channel.split("/", 1)[0]


def _is_person_tech(channel: str) -> bool:
    return _tech(channel) not in NON_PERSON_TECHS


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


@dataclass(slots=True, eq=False)
class _Channel:
    name: str
    uniqueid: str
    created_at: float
    dial_string: str | None = None
    state: int = 0
    ringing_at: float | None = None
    up_at: float | None = None
    dial_status: str | None = None
    dial_status_at: float | None = None
    hangup_cause: int | None = None
    ended_at: float | None = None
    application: str = ""  # lower-cased dialplan application it is running (from Newexten)
    generation: int = 0  # the tracker's snapshot generation when it was first seen (see begin_snapshot)

    @property
    def live(self) -> bool:
        return self.ended_at is None

    @property
    def endpoint(self) -> str:
        # A number dialled through a trunk (`15559876543@trunk`) names the person better than the trunk does;
        # a contact-form dial string (`101/sip:101@host`) does not, the endpoint is in the channel name.
        dial = self.dial_string
        if dial and "@" in dial and "/" not in dial and _tech(self.name) != "Local":
            return f"{_tech(self.name)}/{dial}"
        return endpoint_of(self.name)

    def device_result(self) -> str | None:
        """ANSWER/BUSY/NOANSWER/CANCEL/UNAVAILABLE for a dialled device leg, None when nothing is known yet."""
        if self.dial_status:
            return _DIAL_RESULTS.get(self.dial_status, _NOANSWER)
        if self.up_at is not None:
            return _ANSWER
        if self.hangup_cause == _CAUSE_BUSY:
            return _BUSY
        if self.ringing_at is None and self.hangup_cause in _CAUSES_UNREACHABLE:
            return _UNAVAILABLE
        if self.ended_at is not None:
            return _NOANSWER  # rang out or was hung up by an application (e.g. ARI originate timeout, cause 19)
        return None


@dataclass(slots=True, eq=False)
class _Call:
    linkedid: str
    match: InboundMatch | None  # None until the dialplan reaches a business number (e.g. after a Goto from `s`)
    caller: _Channel
    caller_number: str
    caller_name: str
    observed_from_start: bool = True
    # The link dropped while this call was live and Asterisk's channel list has not been read since: whatever
    # happened in between is unknown, so a call that ends before that list arrives is not fully observed.
    awaiting_reconcile: bool = False
    channels: dict[str, _Channel] = field(default_factory=dict)  # by Uniqueid, caller included
    # undirected "these two channels were connected" edges: (uniqueid a, uniqueid b, when)
    links: list[tuple[str, str, float]] = field(default_factory=list)
    foreign: dict[str, str] = field(default_factory=dict)  # bridge-mates from other calls: Uniqueid -> channel
    withheld: bool = False
    queue_abandoned: bool = False
    left_while_ringing: bool = False
    left_before_any_leg: bool = False
    caller_ended_received: float | None = None

    def others(self) -> Iterable[_Channel]:
        return (c for c in self.channels.values() if c is not self.caller)


class CallTracker:
    """Feed it every AMI event in arrival order; it returns the inbound calls each event finished.

    `received_at` is the wall-clock time the event arrived; event times come from the `Timestamp` header when
    Asterisk sends it (`timestampevents = yes`) and fall back to `received_at`.
    """

    def __init__(self, matcher: InboundMatcher, *, grace_s: float = DEFAULT_GRACE_S, from_cel: bool = False) -> None:
        self._matcher = matcher
        self._grace_s = grace_s
        self._from_cel = from_cel  # fed Asterisk's CEL rows (asterisk.cel), not the AMI stream: records say so
        self._calls: dict[str, _Call] = {}
        self._bridges: dict[str, dict[str, str]] = {}  # bridge id -> {Uniqueid: channel name} of current members
        self._generation = 0  # bumped when a channel list is asked for: channels seen after may not be in it
        self._handlers: dict[str, Callable[[Mapping[str, str], float], _Call | None]] = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_newstate,
            "NewCallerid": self._on_newcallerid,
            "Newexten": self._on_newexten,
            "DialBegin": self._on_dialbegin,
            "DialEnd": self._on_dialend,
            "BridgeEnter": self._on_bridgeenter,
            "BridgeLeave": self._on_bridgeleave,
            "BridgeDestroy": self._on_bridgedestroy,
            "HangupRequest": self._on_hanguprequest,
            "Hangup": self._on_hangup,
            "QueueCallerAbandon": self._on_queueabandon,
            "AgentConnect": self._on_agentconnect,
            "Rename": self._on_rename,
        }

    # ---- public API -------------------------------------------------------------------------------------------

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def feed(self, event: Mapping[str, str], received_at: float) -> list[CallRecord]:
        handler = self._handlers.get(event.get("Event", ""))
        if handler is None:
            return []
        call = handler(event, received_at)
        if call is not None and call.caller_ended_received is not None and not any(c.live for c in call.others()):
            return self._finish(call)
        return []

    def follows(self, linkedid: str) -> bool:
        """Whether this call is in progress here (started, not yet judged)."""
        return linkedid in self._calls

    def tick(self, now: float) -> list[CallRecord]:
        """Finish calls whose caller left more than the grace period ago while some leg's end was never seen."""
        done = [
            call
            for call in self._calls.values()
            if call.caller_ended_received is not None and now - call.caller_ended_received >= self._grace_s
        ]
        return [record for call in done for record in self._finish(call)]

    def flush(self) -> list[CallRecord]:
        """End of a recorded stream: finish every call whose caller has hung up; calls still in progress stay."""
        done = [call for call in self._calls.values() if call.caller.ended_at is not None]
        return [record for call in done for record in self._finish(call)]

    def disconnected(self) -> None:
        """The AMI link dropped: every call in progress may miss events until `reconcile` reads the channel list."""
        for call in self._calls.values():
            call.awaiting_reconcile = True

    def begin_snapshot(self) -> int:
        """Call just before asking Asterisk for its channel list; pass the result to `reconcile` as `asked`. A
        channel whose Newchannel arrives while the list is on its way may be missing from it without having ended."""
        self._generation += 1
        return self._generation

    def reconcile(
        self, live_channels: Iterable[Mapping[str, str]], now: float, *, asked: int | None = None
    ) -> list[CallRecord]:
        """After (re)connecting: align with Asterisk's `CoreShowChannels` list.

        A tracked call shows what happened while we were away when one of its channels ended, one was answered
        (Up, never seen Up), or it has a channel we never saw: it is then marked as not fully observed (an answer
        may have been missed, so it is never texted on this evidence alone). Tracked channels that no longer exist
        ended while we were away; calls in progress that we never saw start are adopted when their caller is still
        ringing.
        """
        live = {ch.get("Uniqueid", ""): ch for ch in live_channels}
        by_call: dict[str, set[str]] = {}
        for uniqueid, snapshot in live.items():
            by_call.setdefault(snapshot.get("Linkedid", ""), set()).add(uniqueid)
        finished: list[CallRecord] = []
        for call in list(self._calls.values()):
            gap = bool(by_call.get(call.linkedid, set()) - call.channels.keys())  # a channel born while away
            for channel in call.channels.values():
                if asked is not None and channel.generation >= asked:
                    continue  # first seen after the list was asked for: it may not be in it, it has not ended
                if channel.live and channel.uniqueid not in live:
                    channel.ended_at = now
                    gap = True
                elif channel.uniqueid in live:
                    snapshot = live[channel.uniqueid]
                    gap = gap or (_int_state(snapshot) == STATE_UP and channel.up_at is None)  # answered while away
                    self._apply_snapshot(call, channel, snapshot, now)
            call.awaiting_reconcile = False
            if gap:
                call.observed_from_start = False
            if not call.caller.live:
                if call.caller_ended_received is None:
                    call.caller_ended_received = now
                finished += self._finish(call)
        by_linkedid: dict[str, list[Mapping[str, str]]] = {}
        for snapshot in live.values():
            by_linkedid.setdefault(snapshot.get("Linkedid", ""), []).append(snapshot)
        for linkedid, snapshots in by_linkedid.items():
            if linkedid and linkedid not in self._calls:
                self._adopt(linkedid, snapshots, now)
        self._bridges = {b: m for b, m in self._bridges.items() if any(uid in live for uid in m)}
        return finished

    # ---- event handlers ---------------------------------------------------------------------------------------

    _time = staticmethod(ami_event_time)

    def _on_newchannel(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        linkedid = event.get("Linkedid", "")
        uniqueid = event.get("Uniqueid", "")
        call = self._calls.get(linkedid)
        at = self._time(event, received_at)
        if call is not None:
            if uniqueid not in call.channels:
                call.channels[uniqueid] = _Channel(
                    event.get("Channel", ""), uniqueid, at, state=_int_state(event), generation=self._generation
                )
            return call
        if not uniqueid or uniqueid != linkedid or _int_state(event) != STATE_RING:
            return None
        name, context = event.get("Channel", ""), event.get("Context", "")
        if not self._matcher.could_be_inbound(name, context):
            return None
        match = self._matcher.match(name, context, event.get("Exten", ""))
        caller = _Channel(name, uniqueid, at, state=STATE_RING, generation=self._generation)
        call = _Call(linkedid, match, caller, event.get("CallerIDNum", ""), event.get("CallerIDName", ""))
        call.channels[uniqueid] = caller
        self._calls[linkedid] = call
        return None

    def _channel(self, event: Mapping[str, str]) -> tuple[_Call | None, _Channel | None]:
        call = self._calls.get(event.get("Linkedid", ""))
        if call is None:
            return None, None
        return call, call.channels.get(event.get("Uniqueid", ""))

    def _on_newstate(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call, channel = self._channel(event)
        if channel is None:
            return call
        state = _int_state(event)
        channel.state = state
        at = self._time(event, received_at)
        if state == STATE_RINGING and channel.ringing_at is None:
            channel.ringing_at = at
        elif state == STATE_UP and channel.up_at is None:
            channel.up_at = at
        return call

    def _on_newcallerid(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call, channel = self._channel(event)
        if call is not None and channel is call.caller:
            call.caller_number = event.get("CallerIDNum", call.caller_number)
            call.caller_name = event.get("CallerIDName", call.caller_name)
            if "Restricted" in event.get("CID-CallingPres", ""):
                call.withheld = True
        return call

    def _on_newexten(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call, channel = self._channel(event)
        if channel is not None:
            channel.application = event.get("Application", "").lower()
            if call is not None and call.match is None and channel is call.caller:
                call.match = self._matcher.match(channel.name, event.get("Context", ""), event.get("Exten", ""))
        return call

    def _on_dialbegin(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call = self._calls.get(event.get("DestLinkedid", ""))
        if call is None:
            return None
        dest_id = event.get("DestUniqueid", "")
        dest = call.channels.get(dest_id)
        at = self._time(event, received_at)
        if dest is None:
            dest = call.channels[dest_id] = _Channel(
                event.get("DestChannel", ""), dest_id, at, generation=self._generation
            )
        dest.dial_string = event.get("DialString") or dest.dial_string
        dest.dial_status = dest.dial_status_at = None  # a new Dial of the same channel starts afresh
        return call

    def _on_dialend(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call = self._calls.get(event.get("DestLinkedid", ""))
        if call is None:
            return None
        dest = call.channels.get(event.get("DestUniqueid", ""))
        if dest is None:
            return call
        at = self._time(event, received_at)
        status = event.get("DialStatus", "")
        dest.dial_status, dest.dial_status_at = status, at
        if status == _ANSWER:
            if dest.up_at is None:
                dest.up_at = at
            dialer = event.get("Uniqueid")
            if dialer:
                call.links.append((dialer, dest.uniqueid, at))
        return call

    def _on_agentconnect(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call = self._calls.get(event.get("Linkedid", ""))
        if call is not None and event.get("DestUniqueid"):
            call.links.append((event.get("Uniqueid", ""), event["DestUniqueid"], self._time(event, received_at)))
        return call

    def _on_bridgeenter(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        bridge_id = event.get("BridgeUniqueid", "")
        uniqueid = event.get("Uniqueid", "")
        name = event.get("Channel", "")
        at = self._time(event, received_at)
        members = self._bridges.setdefault(bridge_id, {})
        own_call = self._calls.get(event.get("Linkedid", ""))
        for other_id, other_name in members.items():
            for call in self._calls_holding(other_id, own_call):
                call.links.append((other_id, uniqueid, at))
                if uniqueid not in call.channels:
                    call.foreign[uniqueid] = name
                if other_id not in call.channels:
                    call.foreign[other_id] = other_name
        members[uniqueid] = name
        return own_call

    def _calls_holding(self, uniqueid: str, own_call: _Call | None) -> list[_Call]:
        """Calls for which a link between `uniqueid` and the entering channel matters."""
        holders = [own_call] if own_call is not None else []
        holders += [c for c in self._calls.values() if c is not own_call and uniqueid in c.channels]
        return holders

    def _on_bridgeleave(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        members = self._bridges.get(event.get("BridgeUniqueid", ""))
        if members is not None:
            members.pop(event.get("Uniqueid", ""), None)
        return None

    def _on_bridgedestroy(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        self._bridges.pop(event.get("BridgeUniqueid", ""), None)
        return None

    def _on_hanguprequest(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call, channel = self._channel(event)
        if call is None or channel is not call.caller or call.caller.ended_at is not None:
            return call
        # HangupRequest (not SoftHangupRequest) on the caller comes from its own side: the caller hung up.
        legs = [c for c in call.others() if _is_person_tech(c.name) or _tech(c.name) == "Local"]
        if call.caller.application in QUEUE_APPS:
            call.queue_abandoned = True
        elif any(c.live and c.dial_status is None for c in legs):
            call.left_while_ringing = True
        elif not legs and call.caller.up_at is None:
            call.left_before_any_leg = True
        return call

    def _on_queueabandon(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call = self._calls.get(event.get("Linkedid", ""))
        if call is not None:
            call.queue_abandoned = True
        return call

    def _on_hangup(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call, channel = self._channel(event)
        if channel is None:
            return call
        assert call is not None
        channel.ended_at = self._time(event, received_at)
        channel.hangup_cause = _int(event.get("Cause"))
        if channel is call.caller:
            call.caller_ended_received = received_at
        return call

    def _on_rename(self, event: Mapping[str, str], received_at: float) -> _Call | None:
        call, channel = self._channel(event)
        if channel is not None:
            channel.name = event.get("Newname", channel.name)
        return call

    # ---- reconnect support ------------------------------------------------------------------------------------

    def _apply_snapshot(self, call: _Call, channel: _Channel, snapshot: Mapping[str, str], now: float) -> None:
        state = _int_state(snapshot)
        if state == STATE_UP and channel.up_at is None:
            channel.up_at = now
        if state == STATE_RINGING and channel.ringing_at is None:
            channel.ringing_at = now
        channel.state = state
        bridge_id = snapshot.get("BridgeId", "")
        if bridge_id:
            members = self._bridges.setdefault(bridge_id, {})
            for other_id in members:
                if other_id != channel.uniqueid:
                    call.links.append((other_id, channel.uniqueid, now))
            members[channel.uniqueid] = channel.name

    def _adopt(self, linkedid: str, snapshots: list[Mapping[str, str]], now: float) -> None:
        first = next((s for s in snapshots if s.get("Uniqueid") == linkedid), None)
        # Adopted in any state, so a call already answered when we connected is still recorded when it ends. It is
        # never fully observed (a person may have answered unseen): never texted on this evidence alone.
        if first is None:
            return
        name, context = first.get("Channel", ""), first.get("Context", "")
        if not self._matcher.could_be_inbound(name, context):
            return
        match = self._matcher.match(name, context, first.get("Exten", ""))
        caller = _Channel(name, linkedid, now - _duration_s(first.get("Duration", "")))
        caller.application = first.get("Application", "").lower()
        call = _Call(linkedid, match, caller, first.get("CallerIDNum", ""), first.get("CallerIDName", ""))
        call.observed_from_start = False
        call.channels[linkedid] = caller
        self._apply_snapshot(call, caller, first, now)  # its state and bridge: a desk in the bridge answered it
        for snapshot in snapshots:
            uid = snapshot.get("Uniqueid", "")
            if uid != linkedid:
                call.channels[uid] = _Channel(snapshot.get("Channel", ""), uid, now)
                self._apply_snapshot(call, call.channels[uid], snapshot, now)
        self._calls[linkedid] = call
        log.info("adopted a call already in progress when we connected (linkedid %s)", linkedid)  # pragma: no mutate

    # ---- judging a finished call ------------------------------------------------------------------------------

    def _finish(self, call: _Call) -> list[CallRecord]:
        """Forget the call; judge it if it reached a business number (otherwise it was never ours to report)."""
        del self._calls[call.linkedid]
        if call.match is None:
            return []
        return [self._judge(call, call.match)]

    def _judge(self, call: _Call, match: InboundMatch) -> CallRecord:
        person, answered_at = self._person_connected(call)
        outcome = Outcome.ANSWERED if person is not None else self._missed_outcome(call)
        legs = tuple(
            LegRecord(
                channel=c.name,
                endpoint=c.endpoint,
                dial_status=c.dial_status,
                hangup_cause=c.hangup_cause,
                answered=c.up_at is not None,
                started_at=c.created_at,
                ended_at=c.ended_at,
            )
            for c in sorted(call.others(), key=lambda c: c.created_at)
        )
        ring_times = [c.ringing_at for c in call.others() if c.ringing_at is not None]
        caller_number = None if call.withheld else to_e164(call.caller_number, match.region)
        ended_at = call.caller.ended_at if call.caller.ended_at is not None else call.caller.created_at
        return CallRecord(
            linkedid=call.linkedid,
            business=match.business,
            did=match.did,
            caller=caller_number,
            caller_raw=call.caller_number[:MAX_CALLER_NUMBER_CHARS],
            caller_name=None if is_withheld(call.caller_name) else call.caller_name[:MAX_CALLER_NAME_CHARS],
            outcome=outcome,
            answered_by=person,
            started_at=call.caller.created_at,
            ring_at=min(ring_times) if ring_times else None,
            answered_at=answered_at,
            ended_at=ended_at,
            hangup_cause=call.caller.hangup_cause,
            legs=legs,
            observed_from_start=call.observed_from_start and not call.awaiting_reconcile,
            from_cel=self._from_cel,
        )

    def _person_connected(self, call: _Call) -> tuple[str | None, float | None]:
        """Walk the connections from the caller (Dial answers, shared bridges, Local halves) to a person's device."""
        adjacency: dict[str, list[tuple[str, float]]] = {}
        for a, b, at in call.links:
            adjacency.setdefault(a, []).append((b, at))
            adjacency.setdefault(b, []).append((a, at))
        local_halves: dict[str, str] = {}
        for channel in call.channels.values():
            if _tech(channel.name) == "Local":
                local_halves[channel.name] = channel.uniqueid
        best: tuple[float, str] | None = None
        seen = {call.caller.uniqueid}
        frontier: list[tuple[str, float]] = [(call.caller.uniqueid, 0.0)]
        while frontier:
            uid, since = frontier.pop()
            neighbours = list(adjacency.get(uid, ()))
            name = self._name(call, uid)
            if name.startswith("Local/") and name[-2:] in (";1", ";2"):
                twin_name = name[:-1] + ("2" if name.endswith("1") else "1")
                twin = local_halves.get(twin_name)
                if twin is None and uid != call.caller.uniqueid:
                    # the other half was never seen (events filtered): it was answered, count it as a person
                    if best is None or since < best[0]:
                        best = (since, endpoint_of(name))
                elif twin is not None:
                    neighbours.append((twin, since))
            for other, at in neighbours:
                if other in seen:
                    continue
                seen.add(other)
                when = max(since, at)
                other_name = self._name(call, other)
                if other_name and _is_person_tech(other_name):
                    known = call.channels.get(other)
                    endpoint = known.endpoint if known is not None else endpoint_of(other_name)
                    if best is None or when < best[0]:
                        best = (when, endpoint)
                else:
                    frontier.append((other, when))
        if best is None:
            return None, None
        return best[1], best[0]

    @staticmethod
    def _name(call: _Call, uniqueid: str) -> str:
        channel = call.channels.get(uniqueid)
        return channel.name if channel is not None else call.foreign.get(uniqueid, "")

    @staticmethod
    def _missed_outcome(call: _Call) -> Outcome:
        if call.queue_abandoned:
            return Outcome.QUEUE_ABANDONED
        devices = [c for c in call.others() if _is_person_tech(c.name)]
        results = {r for r in (c.device_result() for c in devices) if r is not None}
        # Who hung up is told by the caller's HangupRequest, not by CANCEL statuses: a queue that times out
        # cancels its members' legs too, while the caller is still there.
        if call.left_while_ringing:
            return Outcome.ABANDONED
        if call.caller.up_at is not None:
            return Outcome.VOICEMAIL  # answered by an application, never by a person
        if call.left_before_any_leg:
            return Outcome.ABANDONED
        reached = results - {_UNAVAILABLE}
        if not reached:
            if not devices and call.caller.hangup_cause == _CAUSE_BUSY:
                return Outcome.BUSY
            return Outcome.UNAVAILABLE
        if reached == {_BUSY}:
            return Outcome.BUSY
        return Outcome.NO_ANSWER


def _duration_s(text: str) -> float:
    """CoreShowChannel's `Duration: HH:MM:SS` in seconds (0 when absent or odd)."""
    try:
        hours, minutes, seconds = (int(part) for part in text.split(":"))
    except ValueError:
        return 0.0
    return float(hours * 3600 + minutes * 60 + seconds)


def _int_state(event: Mapping[str, str]) -> int:
    value = _int(event.get("ChannelState"))
    return value if value is not None else -1
