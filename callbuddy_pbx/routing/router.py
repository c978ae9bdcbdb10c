"""The ARI call router: each inbound call that enters the Stasis app rings the devices its ring plan names, the first
to answer is bridged with the caller, and when nobody answers the group's fallback runs.

Per call, as the recording app of traces 11, 12, 29-31 did (the REST sequence is the same, so the AMI side of a
routed call looks like those traces and the AMI observer judges it as it judges them):

1. StasisStart with args `["inbound", <DID>]`: find the ring group by DID (digits only: `+` or not) and decide the
   plan (plan.py) from the device registry, synchronously in the event callback.
2. Each step: `POST /channels?endpoint=PJSIP/100&app=<app>&appArgs=dialed,<caller id>&timeout=<step s>&callerId=
   "<name>" <number>&originator=<caller id>&channelId=<caller id>-cb-<token>-<n>` per device, the first before
   anything else; with the first step also `POST /channels/{caller}/ring` (ringback; the caller is not answered).
   `originator` gives the leg the caller's Linkedid (one call on AMI); the channel id is ours so events that
   overtake the REST answer (a busy phone's leg dies within ms: cause 17) still find their call, and so a rebuild
   can tell our legs from others. A 500 "Allocation failed" (no registered contact, trace 30; no channel, no event)
   skips the device. A step ends when all its legs are gone (busy 17, declined 21, Asterisk's originate timeout 19
   without a final Dial event) or, should those events be lost, STEP_GRACE_S after its time (legs then hung up).
3. The first leg to enter Stasis (StasisStart `["dialed", <caller id>]`) wins: answer the caller, create a mixing
   bridge, add both, then hang up every other leg with reason `answered_elsewhere` (phones show "call completed
   elsewhere", trace 29). When either side leaves, the other is hung up and the bridge destroyed (trace 12).
4. The caller leaving first (StasisEnd / ChannelDestroyed, trace 31) hangs up every leg at once.
5. Nobody answered, or nobody could be rung: the group's no-answer action (below).
6. A sleeping softphone in a step (plan.py; wake.py): while the step's other phones ring, one call push, then a wait
   for its new registration (ARI ContactStatusChange) of at most min(push_wait_s, step time / 2); registered, it is
   originated like any other leg for the rest of the step. Answered elsewhere, the caller gone or the step over: a
   cancel push to every pushed phone that did not answer. A push refused (service down, throttled, token dead) or a
   phone that never wakes leaves the call as if the phone were not there.

The router never judges a call and never texts: the AMI observer (app.CallService) stays the single judge, so one
outcome and one text per Linkedid holds by construction. Each call is one task; an exception in it is logged and the
call handed back to the dialplan (legs hung up, caller continued), never affecting other calls. Calls are bounded
(MAX_CALLS; beyond it calls are handed back) and so is each call's state (its plan's legs, one bridge).

Contract with the rendered dialplan (written by `render`; this module relies on it):

- A `routing: callbuddy` number runs `Stasis(<app>,inbound,${EXTEN})`.
- The priority right after Stasis() rings the fail-open ring group whatever STASISSTATUS says. Asterisk goes there
  when Stasis() fails (no app connected: STASISSTATUS=FAILED, trace 32) and when the router hands a call back with
  `POST /channels/{id}/continue` without a target (Asterisk then continues at the next priority): a number the
  service has no ring group for, too many calls at once, an internal error, or the service stopping before anyone
  answered.
- Context `callbuddy-fallback` (FALLBACK_CONTEXT), extension = the ring group's number without `+`, priority 1: the
  group's no-answer action: `VoiceMail(<extension>@default,...)` for `voicemail` (then Hangup()), the Dial through
  the trunk for `forward` (unanswered: Hangup(19), 480; Hangup(17), 486, when the mobile was busy). The router
  continues the caller there (context, extension, priority 1) when nobody answered and the action is `voicemail` or
  `forward`; a voicemail caller whose phones were all busy goes to label `busy` instead (the busy greeting,
  `VoiceMail(<extension>@default,b)`); for `hangup` it hangs the caller up itself: reason `no_answer` (cause
  19, as traces 11 and 30; the carrier hears 480), or `busy` (cause 17, 486) when every phone that could ring was
  busy (`plan.all_busy`). No channel variables are set: the extension alone says what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from callbuddy_pbx.asterisk.ari import AriClient, AriConflict, AriError, AriEvent, AriHttpError, AriNotFound
from callbuddy_pbx.asterisk.devices_model import Device
from callbuddy_pbx.config.pbx import Phone, RingGroup
from callbuddy_pbx.phone import mask
from callbuddy_pbx.push.binding import PushBinding
from callbuddy_pbx.push.sender import CallPush, CancelReason
from callbuddy_pbx.routing.plan import RingPlan, RingStep, all_busy, people_of, ring_plan
from callbuddy_pbx.routing.wake import CallWakes, PushWake, Wakeups, Woken, contact_came_up

log = logging.getLogger(__name__)

FALLBACK_CONTEXT = "callbuddy-fallback"
BUSY_LABEL = "busy"  # in a voicemail fallback: the busy greeting (asterisk/render_dialplan.py renders it)
BRIDGE_NAME = "callbuddy"
LEG_MARK = "-cb-"  # in every leg's channel id: <caller id>-cb-<router token>-<n>
FREED_S = 10.0  # how long a phone rung by a stray leg of ours is taken as free whatever the registry says
_OUR_RINGING = frozenset({"RINGING", "RINGINUSE"})
STEP_GRACE_S = 1.0  # a step's own deadline after Asterisk's originate timeout, in case the events are lost
MAX_CALLS = 500  # calls routed at once; a small business has a handful
SHUTDOWN_S = 3.0  # on stop, how long handing calls back to the dialplan may take
_CAUSES = {16: "hung up", 17: "busy", 19: "no answer", 21: "declined", 26: "answered elsewhere", 127: "cancelled"}

DeviceLookup = Callable[[str], Device | None]  # DeviceRegistry.get


@dataclass(frozen=True, slots=True)
class RouteTiming:
    """When one call's routing got going (epoch seconds, the router's clock), for benchmarks and metrics."""

    caller_id: str
    received_at: float  # the StasisStart arrived (AriClient's receive time)
    decided_at: float  # the ring plan was decided
    originate_at: float | None  # the first originate request was sent; None: nothing to ring


TimingHook = Callable[[RouteTiming], None]


@dataclass(slots=True)
class _Signal:
    answered: bool  # True: the channel entered Stasis as an answered leg; False: the channel is gone
    channel_id: str
    cause: int | None = None


@dataclass(slots=True)
class _Leg:
    id: str
    endpoint: str
    alive: bool = True
    created_at: float | None = None  # loop time the originate was answered (or given up on)
    cause: int | None = None


class Router:
    """Routes the inbound calls of one Stasis app. Feed it every ARI event (`on_event`, synchronous and cheap); await
    `rebuild()` after every (re)connect and `shutdown()` before the client closes."""

    def __init__(
        self,
        client: AriClient,
        groups: Iterable[RingGroup],
        phones: Sequence[Phone],
        devices: DeviceLookup,
        *,
        clock: Callable[[], float] = time.time,
        on_timing: TimingHook | None = None,
        max_calls: int = MAX_CALLS,
        wake: PushWake | None = None,
    ) -> None:
        self.client = client
        self.app = client.app
        self._groups = {_digits(group.number): group for group in groups}
        self._phones = tuple(phones)
        # Who a call to each group may ring, worked out once; the registry is asked about their devices per call.
        self._people = {group.number: people_of(group, phones) for group in self._groups.values()}
        self._group_devices = {
            number: tuple(name for person in people for name in person.devices)
            for number, people in self._people.items()
        }
        self._devices = devices
        self._clock = clock
        self._on_timing = on_timing
        self._max_calls = max_calls
        self._token = secrets.token_hex(3)  # legs of another router instance (before a restart) are strays
        self._calls: dict[str, _Call] = {}  # caller channel id -> call
        self._owners: dict[str, _Call] = {}  # caller and leg channel ids -> call
        self._activity: dict[str, float] = {}  # device -> when it last answered a routed call
        self._background: set[asyncio.Task[None]] = set()
        self._legs_made = 0
        self._stopping = False
        # Counters for health pages and tests
        self.routed = 0  # calls routed (a plan decided)
        self.answered = 0
        self.fallbacks = 0  # calls that went to the no-answer action
        self.handed_back = 0  # calls continued in the dialplan untouched (fail open)
        self.strays_hung_up = 0  # channels of ours nobody followed any more, found by a rebuild
        # Devices that were ringing only for our own stray legs (hung up by a rebuild): the registry may still say
        # RINGING for a moment, and they must not look busy to the call routed afresh. Device name -> until when.
        self._freed: dict[str, float] = {}
        self.wake = wake  # None: no push service configured, sleeping softphones are skipped
        self.wakeups = Wakeups()
        self.woken = 0  # phones that registered after a call's push and were rung

    @property
    def active(self) -> int:
        """Calls being routed or bridged now."""
        return len(self._calls)

    def routes(self) -> dict[str, str]:
        """caller channel id -> "ringing" | "bridged", for inspection."""
        return {caller: call.state for caller, call in self._calls.items()}

    # -- events (the hot path: synchronous, no I/O) -------------------------------------------------------------------

    def on_event(self, event: AriEvent, received_at: float) -> None:
        kind = event["type"]
        if kind == "StasisStart":
            self._stasis_start(event, received_at)
        elif kind == "StasisEnd" or kind == "ChannelDestroyed":
            channel = event.get("channel")
            channel_id = channel.get("id") if isinstance(channel, dict) else None
            call = self._owners.get(channel_id) if isinstance(channel_id, str) else None
            if call is not None and isinstance(channel_id, str):
                cause = event.get("cause")
                call.post(_Signal(False, channel_id, cause if isinstance(cause, int) else None))
        elif kind == "ContactStatusChange":
            endpoint = contact_came_up(event)
            if endpoint is not None:
                self.wakeups.registered(endpoint)

    def registered_meanwhile(self) -> int:
        """After a reconnect (the registry seeded again): a phone a call waits for that registered while no events
        came has had its ContactStatusChange lost with the socket; the endpoint list says it is online, so the
        calls waiting for it ring it now. Returns how many waiters that freed."""
        freed = 0
        for endpoint in self.wakeups.endpoints():
            device = self._devices(endpoint)
            if device is not None and device.registered is True:
                freed += self.wakeups.registered(endpoint)
        return freed

    def _stasis_start(self, event: AriEvent, received_at: float) -> None:
        channel = event.get("channel")
        args = event.get("args")
        if not isinstance(channel, dict) or not isinstance(channel.get("id"), str):
            return
        channel_id: str = channel["id"]
        args = [str(arg) for arg in args] if isinstance(args, list) else []
        kind = args[0] if args else ""
        call = self._owners.get(channel_id)
        if kind == "dialed":
            if call is not None:
                call.post(_Signal(True, channel_id))
            else:  # a leg of a call nobody follows any more (a restart, or the call ended as it answered)
                self._spawn(self._hang_up_stray(channel_id))
            return
        if call is not None:
            return  # already followed (a rebuild adopted it first)
        if kind != "inbound":
            log.warning("ARI: a channel entered app %r with args %r, not a call to route; handed back", self.app, args)
            self._hand_back(channel_id)
            return
        dialplan = channel.get("dialplan")
        did = args[1] if len(args) > 1 else str(dialplan.get("exten", "")) if isinstance(dialplan, dict) else ""
        self._start(channel, did, received_at)

    def _start(self, channel: dict[str, Any], did: str, received_at: float) -> None:
        channel_id: str = channel["id"]
        group = self._groups.get(_digits(did))
        if group is None or self._stopping:
            if group is None:
                log.warning("call %s to %s: no ring group with routing: callbuddy; handed back", channel_id, did)
            self._hand_back(channel_id)
            return
        if len(self._calls) >= self._max_calls:
            log.error("call %s: %d calls routed already; handed back to the dialplan", channel_id, len(self._calls))
            self._hand_back(channel_id)
            return
        lookup = self._devices
        known = {name: device for name in self._group_devices[group.number] if (device := lookup(name)) is not None}
        now = self._clock()
        for name, device in known.items():
            if device.state in _OUR_RINGING and self._freed.get(name, 0.0) > now:
                known[name] = replace(device, state="NOT_INUSE")  # ringing for our own old leg, now hung up
        wakeable = self._wakeable(known)
        people = self._people[group.number]
        plan = ring_plan(group, self._phones, known, self._activity, people=people, wakeable=wakeable)
        decided_at = self._clock()
        found = channel.get("caller")
        caller: dict[str, Any] = found if isinstance(found, dict) else {}
        call = _Call(self, channel_id, group, plan, _caller_id(caller), received_at=received_at, decided_at=decided_at)
        if plan.wake:
            call.push = CallPush(channel_id, str(caller.get("number", "")), str(caller.get("name", "")))
        self._calls[channel_id] = self._owners[channel_id] = call
        self.routed += 1
        call.push_first()  # a sleeping phone's push leaves before anything else of the burst this call came in
        call.start()

    def _wakeable(self, known: dict[str, Device]) -> tuple[str, ...]:
        """The sleeping devices a push can reach (a binding for a configured push service)."""
        if self.wake is None:
            return ()
        service = self.wake.service
        return tuple(
            name
            for name, device in known.items()
            if device.sleeping and device.push_binding is not None and service.can_push(device.push_binding)
        )

    # -- calls' bookkeeping -------------------------------------------------------------------------------------------

    def _new_leg_id(self, caller_id: str) -> str:
        self._legs_made += 1
        return f"{caller_id}{LEG_MARK}{self._token}-{self._legs_made}"

    def _own(self, channel_id: str, call: _Call) -> None:
        self._owners[channel_id] = call

    def _forget(self, call: _Call) -> None:
        if self._calls.get(call.caller_id) is call:
            del self._calls[call.caller_id]
        for channel_id in (call.caller_id, *call.legs):
            if self._owners.get(channel_id) is call:
                del self._owners[channel_id]

    def _answered_by(self, endpoint: str) -> None:
        self.answered += 1
        self._activity[endpoint] = self._clock()

    def _timing(self, call: _Call) -> None:
        if self._on_timing is None:
            return
        try:
            self._on_timing(RouteTiming(call.caller_id, call.received_at, call.decided_at, call.originate_at))
        except Exception:
            log.exception("routing timing hook failed")

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _hand_back(self, channel_id: str) -> None:
        self.handed_back += 1
        self._spawn(continue_in_dialplan(self.client, channel_id))

    async def _hang_up_stray(self, channel_id: str, reason: str | None = None) -> None:
        self.strays_hung_up += 1
        await hang_up(self.client, channel_id, reason)

    # -- after a (re)connect -------------------------------------------------------------------------------------------

    async def rebuild(self) -> None:
        """Reconcile with what Asterisk has now (`GET /ari/channels`, `GET /ari/bridges`); events missed while no
        socket was connected are never replayed.

        - Calls followed all along (the socket dropped, the process lived): a caller or leg that vanished meanwhile
          is treated as gone, so each call goes on where it stands (a step's timer kept running) or is torn down.
          Only channels known to exist before the GET was sent count as vanished.
        - A caller in our app that nobody follows (the service restarted): still ringing -> routed afresh from now
          (its caller still waits; our old legs are hung up first); answered -> adopted with its bridge partner so
          the bridge is torn down when either side leaves, or hung up when the partner is gone.
        - Any other channel of ours (a leg by its channel id or its Stasis args) is hung up, and an empty bridge of
          ours is destroyed: nothing of an old call may keep ringing or linger.
        """
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        listed = await self.client.get("channels")
        channels = [c for c in listed or () if isinstance(c, dict) and isinstance(c.get("id"), str)]
        live = {channel["id"] for channel in channels}
        for call in list(self._calls.values()):
            call.reconcile(live, asked_at)
        orphans = [channel for channel in channels if channel["id"] not in self._owners]
        callers = [channel for channel in orphans if _stasis_args(channel, self.app)[:1] == ["inbound"]]
        legs = {channel["id"]: channel for channel in orphans if _is_leg(channel, self.app)}
        freed_until = self._clock() + FREED_S
        for leg in legs.values():  # ringing legs of a previous run: hung up below, so their phones are free
            device = _device_of(leg)
            if leg.get("state") != "Up" and device:
                self._freed[device] = freed_until
        listed_bridges = await self.client.get("bridges")
        bridges = [b for b in listed_bridges or () if isinstance(b, dict) and b.get("name") == BRIDGE_NAME]
        for caller in callers:
            if caller["id"] in self._owners:
                continue  # its StasisStart arrived while we were asking
            if caller.get("state") != "Up":
                for leg_id in [leg_id for leg_id in legs if leg_id.startswith(caller["id"] + LEG_MARK)]:
                    await self._hang_up_stray(legs.pop(leg_id)["id"])
                args = _stasis_args(caller, self.app)
                self._start(caller, args[1] if len(args) > 1 else "", self._clock())
                continue
            bridge, partner = _partner(caller["id"], bridges, legs)
            if bridge is None or partner is None:
                await self._hang_up_stray(caller["id"])  # answered, but whoever answered is gone
                continue
            legs.pop(partner)
            self._adopt(caller["id"], partner, bridge)
        for leg_id in legs:
            await self._hang_up_stray(leg_id)
        owned = {call.bridge_id for call in self._calls.values()}
        if not any(call.connecting for call in self._calls.values()):  # else a bridge may be on its way
            for bridge in bridges:
                if bridge["id"] not in owned and not bridge.get("channels"):
                    with contextlib.suppress(AriError):
                        await self.client.destroy_bridge(bridge["id"])
        if callers or legs:
            log.info("ARI rebuild: %d calls of ours found unfollowed, %d stray legs hung up", len(callers), len(legs))

    def _adopt(self, caller_id: str, leg_id: str, bridge: dict[str, Any]) -> None:
        now = self._clock()
        call = _Call(self, caller_id, None, RingPlan(()), "", received_at=now, decided_at=now)
        call.adopt_bridged(leg_id, str(bridge["id"]))
        self._calls[caller_id] = self._owners[caller_id] = self._owners[leg_id] = call
        call.start()
        log.info("call %s: adopted, bridged with %s", caller_id, leg_id)

    # -- stopping ------------------------------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop routing: calls not answered yet are handed back to the dialplan (their legs hung up, the caller
        continued to the fail-open ring group) so nobody is left hearing ringback from a dead app; bridged calls
        are left to talk. Calls arriving from now on are handed back at once."""
        self._stopping = True
        calls = list(self._calls.values())
        for call in calls:
            call.cancel()
        await asyncio.gather(*(call.wait() for call in calls), return_exceptions=True)
        unanswered = [call for call in calls if call.winner is None and call.caller_alive]
        self.handed_back += len(unanswered)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_S):
                await asyncio.gather(*(call.hand_back() for call in unanswered), return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


class _Call:
    """One call from its StasisStart to its end, run as one task; events reach it through `post`."""

    def __init__(
        self,
        router: Router,
        caller_id: str,
        group: RingGroup | None,
        plan: RingPlan,
        caller_text: str,
        *,
        received_at: float,
        decided_at: float,
    ) -> None:
        self.router = router
        self.client = router.client
        self.caller_id = caller_id
        self.group = group
        self.plan = plan
        self.caller_text = caller_text  # callerId for the legs: '"Name" <number>' or the number (logged masked)
        self.received_at = received_at
        self.decided_at = decided_at
        self.originate_at: float | None = None
        self.created_at = asyncio.get_running_loop().time()
        self.legs: dict[str, _Leg] = {}
        self.winner: str | None = None
        self.bridge_id: str | None = None
        self.caller_alive = True
        self.connecting = False  # answering and bridging a winner right now
        self.state = "ringing"
        self.push: CallPush | None = None  # set when the plan wakes a phone: what its call push says
        self._wakes: CallWakes | None = None
        self._inbox: asyncio.Queue[_Signal | Woken] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ring_task: asyncio.Task[None] | None = None

    # -- driven by the router ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"route {self.caller_id}")

    def push_first(self) -> None:
        """Push the first step's sleeping phones now: waking takes seconds, so nothing may queue ahead of it (its
        step finds them pushed already)."""
        if self.plan.steps:
            waking, _ = self._sleeping(self.plan.steps[0])
            self._start_wakes(waking, self.plan.steps[0])

    def post(self, signal: _Signal | Woken) -> None:
        self._inbox.put_nowait(signal)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def adopt_bridged(self, leg_id: str, bridge_id: str) -> None:
        self.legs[leg_id] = _Leg(leg_id, "", created_at=self.created_at)
        self.winner, self.bridge_id, self.state = leg_id, bridge_id, "bridged"

    def reconcile(self, live: set[str], asked_at: float) -> None:
        """After a reconnect: what existed before the GET and is not listed now ended while we were deaf."""
        if self.caller_alive and self.created_at < asked_at and self.caller_id not in live:
            self.post(_Signal(False, self.caller_id))
        for leg in self.legs.values():
            if leg.alive and leg.created_at is not None and leg.created_at < asked_at and leg.id not in live:
                self.post(_Signal(False, leg.id))

    async def hand_back(self) -> None:
        """Fail open: hang up the legs still ringing and continue the caller at the dialplan's next priority."""
        self._end_wakes()
        await self._drop_legs()
        if self.winner is None and self.caller_alive:
            self.caller_alive = False
            await continue_in_dialplan(self.client, self.caller_id)

    # -- the call ------------------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            if self.state == "bridged":
                await self._talk()
            else:
                await self._route()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s: routing failed; handing it back to the dialplan", self.caller_id)
            if self.winner is None:
                self.router.handed_back += 1
                await self.hand_back()
        finally:
            if self._ring_task is not None and not self._ring_task.done():
                self._ring_task.cancel()
            if self._wakes is not None:
                self._wakes.stop()
            self.router._forget(self)

    async def _route(self) -> None:
        for number, step in enumerate(self.plan.steps, start=1):
            outcome = await self._ring_step(number, step)
            if outcome == "answered":
                await self._talk()
                return
            if outcome == "caller gone":
                log.info("call %s: the caller hung up while phones rang", self.caller_id)
                await self._drop_legs()
                return
        await self._fallback()

    async def _ring_caller(self) -> None:
        try:
            await self.client.ring(self.caller_id)
        except AriError as exc:  # gone already: its StasisEnd says so
            log.debug("call %s: ringback not started: %s", self.caller_id, exc)

    async def _ring_step(self, number: int, step: RingStep) -> str:
        try:
            outcome = await self._ring_step_legs(number, step)
        finally:
            self._end_wakes()
        return outcome

    async def _ring_step_legs(self, number: int, step: RingStep) -> str:
        waking, awake = self._sleeping(step)
        legs = [self._new_leg(endpoint) for endpoint in (*step.endpoints, *awake)]
        if not legs and not waking:
            return "no answer"
        # The first request starts inline, before this call yields: in a burst of calls every call's first phone is
        # asked for before anyone's second phone or ringback (a task per request would queue them behind all of
        # those; Python 3.11 has no eager tasks). The caller's ringback follows the first step's requests.
        others = [asyncio.create_task(self._originate(leg, step.ring_s)) for leg in legs[1:]]
        self._start_wakes(waking, step)
        if self._ring_task is None:
            self._ring_task = asyncio.create_task(self._ring_caller())
        if legs:
            await self._originate(legs[0], step.ring_s)
        await asyncio.gather(*others)
        if number == 1:
            self._log_plan()  # not before the first request: logging costs time the phones should be ringing
        deadline = asyncio.get_running_loop().time() + step.ring_s + STEP_GRACE_S
        while True:
            if self.winner is not None:
                return "answered"
            if not self.caller_alive:
                return "caller gone"
            if not any(leg.alive for leg in legs) and not (self._wakes is not None and self._wakes.waiting):
                return "no answer"
            try:
                async with asyncio.timeout_at(deadline):
                    signal = await self._inbox.get()
            except TimeoutError:
                log.warning(
                    "call %s: step %d outlived its %d s; hanging up its legs", self.caller_id, number, step.ring_s
                )
                await self._drop_legs("no_answer")
                return "no answer"
            if isinstance(signal, Woken):
                await self._woken(signal, legs, deadline)
            else:
                await self._handle(signal)

    # -- waking sleeping phones (wake.py) ------------------------------------------------------------------------------

    def _sleeping(self, step: RingStep) -> tuple[list[tuple[str, PushBinding]], list[str]]:
        """The step's phones to wake, as the registry knows them now: (still asleep: with their binding, awake
        meanwhile: rung at once). A phone whose binding ended since the plan was made is left out."""
        asleep: list[tuple[str, PushBinding]] = []
        awake: list[str] = []
        for endpoint in step.wake:
            device = self.router._devices(endpoint)
            if device is None:
                continue
            if device.registered is True:
                awake.append(endpoint)
            elif device.push_binding is not None:
                asleep.append((endpoint, device.push_binding))
        return asleep, awake

    def _start_wakes(self, waking: list[tuple[str, PushBinding]], step: RingStep) -> None:
        wake = self.router.wake
        if not waking or wake is None or self.push is None:
            return
        if self._wakes is None:
            self._wakes = CallWakes(wake, self.router.wakeups, self.push, self.post, self.router._spawn)
        for endpoint, binding in waking:
            self._wakes.start(endpoint, binding, wake.wait_for(step.ring_s))

    async def _woken(self, signal: Woken, legs: list[_Leg], deadline: float) -> None:
        """A phone woken for this step registered (ring it for the rest of the step), or will not ring."""
        if self._wakes is not None:
            self._wakes.settled(signal.endpoint)
        if not signal.woke:  # (the step loop only hands it over while the call still rings)
            return
        left = deadline - STEP_GRACE_S - asyncio.get_running_loop().time()
        log.info("call %s: %s woke; ringing it for %.1f s", self.caller_id, signal.endpoint, left)
        self.router.woken += 1
        leg = self._new_leg(signal.endpoint)
        legs.append(leg)
        await self._originate(leg, max(1, round(left)))

    def _end_wakes(self) -> None:
        """The step is over: stop waiting, and cancel the pushes of phones that did not answer."""
        if self._wakes is None:
            return
        self._wakes.stop()
        winner = self.legs.get(self.winner) if self.winner is not None else None
        if winner is not None:
            self._wakes.cancel_pushes(CancelReason.ANSWERED_ELSEWHERE, keep=winner.endpoint)
        else:
            self._wakes.cancel_pushes(CancelReason.CALLER_HUNG_UP)

    def _new_leg(self, endpoint: str) -> _Leg:
        leg = _Leg(self.router._new_leg_id(self.caller_id), endpoint)
        self.legs[leg.id] = leg
        self.router._own(leg.id, self)  # before the request: its events may overtake the answer
        return leg

    async def _originate(self, leg: _Leg, seconds: int) -> None:
        if self.originate_at is None:
            self.originate_at = self.router._clock()
            self.router._timing(self)
        try:
            await self.client.originate(
                leg.endpoint,
                app_args=("dialed", self.caller_id),
                timeout_s=seconds,
                caller_id=self.caller_text or None,
                originator=self.caller_id,
                channel_id=leg.id,
            )
        except AriHttpError as exc:
            # 500 "Allocation failed": no registered contact (trace 30). Any HTTP error means no channel was made.
            leg.alive = False
            log.info("call %s: %s not rung: %s %s", self.caller_id, leg.endpoint, exc.status, exc.message)
        except AriError as exc:  # no answer from Asterisk: the leg may exist; it is hung up with its step
            log.warning("call %s: originate to %s uncertain: %s", self.caller_id, leg.endpoint, exc)
        leg.created_at = asyncio.get_running_loop().time()

    async def _handle(self, signal: _Signal | Woken) -> None:
        if isinstance(signal, Woken):  # too late: the step it was for is over
            return
        leg = self.legs.get(signal.channel_id)
        if signal.answered:
            if leg is None:
                return
            if self.winner is None and self.caller_alive and leg.alive:
                await self._connect(leg)
            else:  # a second answer, or an answer after we gave up on it
                await self._hang_up(leg.id, "answered_elsewhere")
            return
        if signal.channel_id == self.caller_id:
            self.caller_alive = False
        elif leg is not None and leg.alive:
            leg.alive, leg.cause = False, signal.cause
            why = _CAUSES.get(signal.cause or 0, f"cause {signal.cause}")
            log.debug("call %s: %s ended (%s)", self.caller_id, leg.endpoint, why)

    async def _connect(self, leg: _Leg) -> None:
        """The first answer: answer the caller, bridge the two, then stop every other leg (trace 29's order)."""
        self.connecting = True
        try:
            try:
                await self.client.answer(self.caller_id)
            except (AriNotFound, AriConflict):  # the caller left this instant; its StasisEnd is on its way
                self.caller_alive = False
                return
            bridge = await self.client.create_bridge(BRIDGE_NAME)
            self.bridge_id = str(bridge["id"])
            try:
                await self.client.add_to_bridge(self.bridge_id, [self.caller_id, leg.id])
            except AriHttpError as exc:  # one of the two hung up in between: the others may still answer
                log.warning("call %s: could not bridge %s: %s", self.caller_id, leg.endpoint, exc)
                await self._hang_up(leg.id)
                with contextlib.suppress(AriError):
                    await self.client.destroy_bridge(self.bridge_id)
                self.bridge_id = None
                return
        finally:
            self.connecting = False
        self.winner, self.state = leg.id, "bridged"
        self.router._answered_by(leg.endpoint)
        log.info("call %s: answered by %s", self.caller_id, leg.endpoint)
        await self._drop_legs("answered_elsewhere")

    async def _talk(self) -> None:
        """Bridged: wait for either side to leave, then clear the other and the bridge (trace 12)."""
        assert self.winner is not None
        winner = self.legs[self.winner]
        while self.caller_alive and winner.alive:
            await self._handle(await self._inbox.get())
        if winner.alive:
            await self._hang_up(winner.id)
        if self.caller_alive:
            self.caller_alive = False
            await hang_up(self.client, self.caller_id)
        await self._drop_legs()
        if self.bridge_id is not None:
            with contextlib.suppress(AriError):
                await self.client.destroy_bridge(self.bridge_id)

    async def _fallback(self) -> None:
        if self.originate_at is None:
            self.router._timing(self)  # nothing was rung
            self._log_plan()
        await self._drop_legs("no_answer")
        if not self.caller_alive or self.group is None:
            return
        self.router.fallbacks += 1
        action = self.group.no_answer.action
        log.info("call %s: nobody answered; %s", self.caller_id, action)
        busy = all_busy(self.plan, (leg.cause for leg in self.legs.values()))
        if action in ("voicemail", "forward"):
            where: dict[str, str | int] = {"context": FALLBACK_CONTEXT, "extension": self.group.number.lstrip("+")}
            if action == "voicemail" and busy:
                where["label"] = BUSY_LABEL  # the mailbox's busy greeting
            else:
                where["priority"] = 1
            await continue_in_dialplan(self.client, self.caller_id, where)
        else:  # busy (486) when every phone that could ring was busy, else no answer (480)
            await hang_up(self.client, self.caller_id, "busy" if busy else "no_answer")
        self.caller_alive = False

    def _log_plan(self) -> None:
        group = self.group
        if group is None or not log.isEnabledFor(logging.INFO):
            return
        number = self.caller_text.rsplit("<", 1)[-1].rstrip(">")
        who = mask(number) if number else "a withheld number"
        if self.plan.steps:
            steps = " then ".join(_step_text(step) for step in self.plan.steps)
            log.info("call %s from %s to %s (%s): %s", self.caller_id, who, group.number, group.strategy, steps)
        else:
            log.info("call %s from %s to %s: no device can ring now", self.caller_id, who, group.number)
        for device, why in self.plan.skipped:
            log.info("call %s: %s skipped: %s", self.caller_id, device, why)

    async def _drop_legs(self, reason: str | None = None) -> None:
        """Hang up every leg still ringing (the winner excepted)."""
        alive = [leg.id for leg in self.legs.values() if leg.alive and leg.id != self.winner]
        await asyncio.gather(*(self._hang_up(leg_id, reason) for leg_id in alive))

    async def _hang_up(self, channel_id: str, reason: str | None = None) -> None:
        await hang_up(self.client, channel_id, reason)
        leg = self.legs.get(channel_id)
        if leg is not None:
            leg.alive = False


# -- REST helpers that never raise -------------------------------------------------------------------------------------


async def hang_up(client: AriClient, channel_id: str, reason: str | None = None) -> None:
    try:
        await client.hangup(channel_id, reason)
    except AriNotFound:
        pass  # ended by itself meanwhile
    except AriError as exc:
        log.warning("ARI: could not hang up %s: %s", channel_id, exc)


async def continue_in_dialplan(client: AriClient, channel_id: str, where: dict[str, str | int] | None = None) -> None:
    """`POST /channels/{id}/continue`: with `where` (context, extension, priority) there; without, at the priority
    after Stasis() (res/ari/resource_channels.c: no context, extension or priority -> the next priority)."""
    try:
        await client.post(f"channels/{channel_id}/continue", where)
    except (AriNotFound, AriConflict):
        pass  # hung up, or not in Stasis any more
    except AriError as exc:
        log.error("ARI: could not continue %s in the dialplan: %s", channel_id, exc)


# -- small pure helpers ------------------------------------------------------------------------------------------------


def _step_text(step: RingStep) -> str:
    """ "PJSIP/100+PJSIP/101 20 s", with "(waking PJSIP/102)" for the phones woken by push."""
    waking = f" (waking {'+'.join(step.wake)})" if step.wake else ""
    return f"{'+'.join(step.endpoints) or 'nothing at once'}{waking} {step.ring_s} s"


def _digits(number: str) -> str:
    return "".join(char for char in number if char.isdigit())


def _caller_id(caller: dict[str, Any]) -> str:
    """callerId for the legs: the caller's number, with its name when it has one (quotes and brackets dropped)."""
    number = str(caller.get("number", "")).strip()
    name = "".join(char for char in str(caller.get("name", "")) if char not in '"<>').strip()
    if not number:
        return ""
    return f'"{name}" <{number}>' if name else number


def _stasis_args(channel: dict[str, Any], app: str) -> list[str]:
    """The Stasis() arguments of a channel in `app` (from GET /channels' dialplan), else []."""
    dialplan = channel.get("dialplan")
    if not isinstance(dialplan, dict) or dialplan.get("app_name") != "Stasis":
        return []
    parts = str(dialplan.get("app_data", "")).split(",")
    return parts[1:] if parts[0] == app else []


def _device_of(channel: dict[str, Any]) -> str:
    """ "PJSIP/100" of a channel named "PJSIP/100-00000005" ("" when it has no such name)."""
    name = channel.get("name")
    if not isinstance(name, str) or "/" not in name:
        return ""
    return name.rsplit("-", 1)[0] if "-" in name.split("/", 1)[1] else name


def _is_leg(channel: dict[str, Any], app: str) -> bool:
    return LEG_MARK in channel["id"] or _stasis_args(channel, app)[:1] == ["dialed"]


def _partner(
    caller_id: str, bridges: list[dict[str, Any]], legs: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any] | None, str | None]:
    for bridge in bridges:
        members = [str(member) for member in bridge.get("channels") or ()]
        if caller_id in members:
            partner = next((member for member in members if member != caller_id and member in legs), None)
            return bridge, partner
    return None, None


__all__ = [
    "BRIDGE_NAME",
    "FALLBACK_CONTEXT",
    "LEG_MARK",
    "MAX_CALLS",
    "RouteTiming",
    "Router",
    "TimingHook",
    "continue_in_dialplan",
    "hang_up",
]
