"""Call backs in progress (the I/O side of asterisk/callback.py): a user's "Call back" becomes an AMI Originate.

State is in memory only: a call back lasts minutes, and what it leaves behind (an answered desk call to the caller,
the recovery mark) is stored by the outbound tracker from the same events (asterisk/outbound.py). The AMI hot path
calls `feed` for every event; it costs a set lookup unless a call back is on its way.

Rules: a user calls back only with a phone of the business whose caller it is (the web side checks the user may
see that business); one call back per user and caller at a time (a double click returns the one on its way);
Asterisk refusing the Originate for want of the `originate` class is an installer's problem, said once in the log.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from callbuddy_pbx.asterisk.ami import AmiActionError, AmiError, AmiNotConnected
from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.asterisk.callback import DESK_RING_S, CallBackError, Progress, Stage, is_e164, originate_fields
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.phone import mask

log = logging.getLogger(__name__)

ORIGINATE_TIMEOUT_S = 10.0  # the queued answer is immediate; this bounds a PBX that does not answer at all
# Nothing final after this long: the call back is LOST (an event missed during a reconnect, say). A connected call
# may last: it is only forgotten with the others below.
SETTLE_S = DESK_RING_S + 120.0
KEEP_S = 4 * 3600.0  # finished call backs are kept this long for their status page, at most MAX_KEPT of them
MAX_KEPT = 2000
MAX_EARLY = 64  # OriginateResponses read before their action's answer was handled (same TCP read)
INSTALLER_FIX = (
    "the AMI user may not Originate (no `originate` in manager.conf's write classes): run `callbuddy-pbx render` "
    "again, install the new manager.conf and run `manager reload` in Asterisk"
)


class Originator(Protocol):
    """What a call back needs of the AMI client (asterisk/ami.AmiClient)."""

    @property
    def connected(self) -> bool: ...

    async def action(
        self,
        name: str,
        fields: Mapping[str, str | int | None] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (AmiClient.action's own, per action)
    ) -> AmiMessage: ...


class CallBackRefused(Exception):
    """A call back that is not started: `reason` is one of NO_PHONE, NO_NUMBER."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


NO_PHONE, NO_NUMBER = "no_phone", "no_number"


@dataclass(slots=True)
class CallBack:
    id: str  # names its status page: random, so one user cannot guess another's
    business: str
    number: str
    phone: Phone
    user: str
    started_at: float  # monotonic
    progress: Progress
    action_id: str = ""

    @property
    def stage(self) -> Stage:
        return self.progress.stage


class CallBacks:
    def __init__(
        self,
        ami: Originator,
        phones: Sequence[Phone],
        *,
        clock: Callable[[], float] = time.monotonic,
        ring_s: int = DESK_RING_S,
    ) -> None:
        self._ami = ami
        self._phones = tuple(phones)
        self._clock = clock
        self._ring_s = ring_s
        self._all: OrderedDict[str, CallBack] = OrderedDict()  # by id, oldest first
        self._by_channel: dict[str, CallBack] = {}  # in progress, by the desk channel's Uniqueid
        self._by_action: dict[str, CallBack] = {}  # waiting for their OriginateResponse, by ActionID
        self._early: OrderedDict[str, AmiMessage] = OrderedDict()
        self.problem: str | None = None  # installer-facing: why Asterisk refuses call backs (None: it does not)

    def phones_of(self, business: str) -> list[Phone]:
        return [phone for phone in self._phones if phone.business == business]

    def get(self, call_back_id: str) -> CallBack | None:
        self._expire()
        return self._all.get(call_back_id)

    async def start(self, business: str, number: str, extension: str, user: str) -> tuple[CallBack, bool]:
        """Ring `extension` (a phone of `business`), then call `number`. Returns (the call back, started now);
        a call back of this user to this caller still on its way is returned instead of a second one."""
        self._expire()
        phone = next((p for p in self.phones_of(business) if p.extension == extension), None)
        if phone is None:
            raise CallBackRefused(NO_PHONE)
        if not is_e164(number):
            raise CallBackRefused(NO_NUMBER)
        for existing in self._all.values():
            if existing.progress.in_progress and (existing.user, existing.business, existing.number) == (
                user,
                business,
                number,
            ):
                return existing, False
        channel_id = f"callback-{secrets.token_hex(8)}"
        try:
            fields = originate_fields(extension, number, channel_id, ring_s=self._ring_s)
        except CallBackError:
            raise CallBackRefused(NO_PHONE) from None
        now = self._clock()
        call_back = CallBack(secrets.token_hex(8), business, number, phone, user, now, Progress(channel_id))
        self._all[call_back.id] = call_back
        self._by_channel[channel_id] = call_back  # before sending: the desk's first events may beat the answer
        log.info("call back %s: %s rings %s for %s", call_back.id, user, phone.extension, mask(number))
        await self._originate(call_back, fields)
        return call_back, True

    async def _originate(self, call_back: CallBack, fields: Mapping[str, str]) -> None:
        if not self._ami.connected:
            self._end(call_back, Stage.UNAVAILABLE)
            return
        try:
            response = await self._ami.action("Originate", fields, timeout=ORIGINATE_TIMEOUT_S)
        except AmiActionError as exc:
            if exc.permission_denied:
                if self.problem is None:
                    log.error("call back refused by Asterisk: %s", INSTALLER_FIX)
                self.problem = INSTALLER_FIX
                self._end(call_back, Stage.REFUSED)
            else:
                log.warning("call back %s: Asterisk refused the Originate (%s)", call_back.id, exc.message)
                self._end(call_back, Stage.UNAVAILABLE)
            return
        except AmiNotConnected:
            self._end(call_back, Stage.UNAVAILABLE)
            return
        except AmiError as exc:
            log.warning("call back %s: no answer to the Originate (%s)", call_back.id, exc)
            self._end(call_back, Stage.LOST)
            return
        self.problem = None
        self._changed(call_back, call_back.progress.queued())
        action_id = response.get("ActionID", "")
        early = self._early.pop(action_id, None)
        if early is not None:
            self._changed(call_back, call_back.progress.feed(early))
        elif action_id and call_back.progress.in_progress:
            call_back.action_id = action_id
            self._by_action[action_id] = call_back

    # The hot path: every AMI event, synchronous, no I/O.
    def feed(self, event: AmiMessage) -> None:
        if not self._by_channel:
            return
        name = event.get("Event")
        if name == "OriginateResponse":
            self._originate_response(event)
            return
        if name not in _CHANNEL_EVENTS:
            return
        call_back = self._by_channel.get(event.get("Uniqueid", ""))
        if call_back is not None:
            self._changed(call_back, call_back.progress.feed(event))

    def _originate_response(self, event: AmiMessage) -> None:
        action_id = event.get("ActionID", "")
        call_back = self._by_action.pop(action_id, None) or self._by_channel.get(event.get("Uniqueid", ""))
        if call_back is None:
            # Read in the same TCP read as the action's answer, before `start` saw that answer: kept for it.
            self._early[action_id] = event
            while len(self._early) > MAX_EARLY:
                self._early.popitem(last=False)
            return
        self._changed(call_back, call_back.progress.feed(event))

    def disconnected(self) -> None:
        """The AMI link dropped: the events of the call backs on their way are lost with it."""
        for call_back in list(self._by_channel.values()):
            self._end(call_back, Stage.UNAVAILABLE)

    def _changed(self, call_back: CallBack, changed: bool) -> None:
        if not changed:
            return
        stage = call_back.stage
        if not call_back.progress.in_progress:
            self._by_channel.pop(call_back.progress.channel_id, None)
            self._by_action.pop(call_back.action_id, None)
        log.info("call back %s: %s", call_back.id, stage.value)

    def _end(self, call_back: CallBack, stage: Stage) -> None:
        self._changed(call_back, call_back.progress.refused(stage))

    def _expire(self) -> None:
        now = self._clock()
        for call_back in list(self._by_channel.values()):
            if call_back.stage is not Stage.CONNECTED and now - call_back.started_at > SETTLE_S:
                self._end(call_back, Stage.LOST)
        while self._all:
            oldest = next(iter(self._all.values()))
            if len(self._all) <= MAX_KEPT and now - oldest.started_at <= KEEP_S:
                break
            if oldest.progress.in_progress and len(self._all) <= MAX_KEPT:
                break
            self._all.popitem(last=False)
            self._by_channel.pop(oldest.progress.channel_id, None)
            self._by_action.pop(oldest.action_id, None)


_CHANNEL_EVENTS = frozenset({"Newstate", "DialBegin", "DialEnd", "Hangup"})
