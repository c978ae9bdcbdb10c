"""Push wake-up for the router: what it needs of the push services, and who waits for which phone to register.

A call that should ring a sleeping softphone (a push binding, no live contact) sends it one call push and waits for
its new registration (an ARI ContactStatusChange for its endpoint) for at most `PushWake.wait_for` of its ring
step; the phone is then rung like any other device. Everything else in the call rings meanwhile: a push never
delays the other phones. The router owns one `Wakeups`; each call registers a waiter per phone it pushed before the
push goes out (a phone that wakes fast may register before the push request has even been answered). What came of
each push is recorded (wake_report): the time from push to registration, or why the phone did not ring.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from callbuddy_pbx.asterisk.devices_model import WakeFailure
from callbuddy_pbx.config.push import DEFAULT_PUSH_WAIT_S
from callbuddy_pbx.push.binding import PushBinding
from callbuddy_pbx.push.sender import CallPush, CancelReason, PushOutcome, PushResult
from callbuddy_pbx.routing.wake_report import PushCredentials, WakeReport, failure_of

log = logging.getLogger(__name__)

# Statuses of a contact that can take an INVITE now (ast_sip_get_contact_status_label; Created: with qualify, before
# its first OPTIONS answer). Unreachable, Removed and Unknown do not wake a call.
LIVE_CONTACT = frozenset({"created", "nonqualified", "reachable", "updated"})


class PushService(Protocol):
    """The configured push services (push.senders.PushSenders): never raises for what a service answers."""

    def can_push(self, binding: PushBinding) -> bool: ...

    def start_call(self, binding: PushBinding, call: CallPush) -> asyncio.Future[PushResult]: ...

    async def send_cancel(self, binding: PushBinding, call: CallPush, reason: CancelReason) -> PushResult: ...


BindingEnded = Callable[[str, PushBinding], object]  # DeviceRegistry.end_binding: the token is dead


@dataclass(frozen=True, slots=True)
class PushWake:
    """How the router wakes phones: the services, how long a call waits, who is told a token is dead, and where
    wake-ups (per device) and refused credentials (per service) are recorded."""

    service: PushService
    wait_s: float = DEFAULT_PUSH_WAIT_S
    binding_ended: BindingEnded | None = None
    report: WakeReport | None = None
    credentials: PushCredentials | None = None
    clock: Callable[[], float] = time.time  # the wall clock the records are stamped with

    def wait_for(self, ring_s: float) -> float:
        """How long one ring step waits for a woken phone: never more than half of its ring time, so a phone that
        wakes at the last moment still rings for a while."""
        return max(0.0, min(self.wait_s, ring_s / 2))


class Wakeups:
    """Waiters for phones' registrations: endpoint ("PJSIP/100") -> the events of the calls waiting for it."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}

    def expect(self, endpoint: str) -> asyncio.Event:
        """A waiter for the endpoint's next live registration; `forget` it when done."""
        event = asyncio.Event()
        self._waiting.setdefault(endpoint, set()).add(event)
        return event

    def forget(self, endpoint: str, event: asyncio.Event) -> None:
        waiters = self._waiting.get(endpoint)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiting[endpoint]

    def registered(self, endpoint: str) -> int:
        """The endpoint has a live contact now: every call waiting for it may ring it. Returns how many waited."""
        waiters = self._waiting.pop(endpoint, set())
        for event in waiters:
            event.set()
        return len(waiters)

    def endpoints(self) -> list[str]:
        """The endpoints some call waits for now."""
        return list(self._waiting)

    def __len__(self) -> int:
        return sum(len(waiters) for waiters in self._waiting.values())


def contact_came_up(event: dict[str, Any]) -> str | None:
    """The endpoint ("PJSIP/100") an ARI ContactStatusChange says has a live contact now, else None."""
    endpoint, info = event.get("endpoint"), event.get("contact_info")
    if not isinstance(endpoint, dict) or not isinstance(info, dict):
        return None
    if str(info.get("contact_status", "")).lower() not in LIVE_CONTACT:
        return None
    technology, resource = endpoint.get("technology"), endpoint.get("resource")
    if not isinstance(technology, str) or not isinstance(resource, str) or not resource:
        return None
    return f"{technology}/{resource}"


@dataclass(frozen=True, slots=True)
class Woken:
    """What came of waking one phone for one call, posted to the call's inbox: it registered (ring it now), or it
    will not ring this call (the push failed, or it did not register in time)."""

    endpoint: str
    woke: bool


class CallWakes:
    """The phones one call is waking: a task per phone (push, then wait), and the pushes to cancel afterwards."""

    def __init__(
        self,
        wake: PushWake,
        wakeups: Wakeups,
        push: CallPush,
        post: Callable[[Woken], None],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._wake = wake
        self._wakeups = wakeups
        self._push = push
        self._post = post
        self._spawn = spawn
        self._tasks: dict[str, asyncio.Task[None]] = {}  # endpoint -> its push-and-wait, while it runs
        # endpoint -> (binding, its call push request): kept running when the call stops waiting, so a push already
        # on its way is followed by its cancel rather than overtaken by it
        self._sends: dict[str, tuple[PushBinding, asyncio.Future[PushResult]]] = {}
        self._cancelled: set[str] = set()

    @property
    def waiting(self) -> bool:
        """Some phone may still wake for this step (its task has not posted its Woken yet)."""
        return bool(self._tasks)

    def start(self, endpoint: str, binding: PushBinding, wait_s: float) -> None:
        """Push the phone now (the request is on its way when this returns) and wait for it in a task."""
        if endpoint in self._tasks:
            return
        # The waiter exists before the push goes out: a phone may register before the push request is answered.
        waiter = self._wakeups.expect(endpoint)
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        try:
            send = self._wake.service.start_call(binding, self._push)
        except Exception as exc:  # a bug in a push client: recorded by _answered, the phone left out by _run
            send = loop.create_future()
            send.set_exception(exc)
        # The answer is recorded even when the call stops waiting first (answered elsewhere, the caller gone).
        send.add_done_callback(lambda done: self._answered(endpoint, binding, done))
        self._sends[endpoint] = (binding, send)
        task = loop.create_task(self._run(endpoint, send, sent_at, wait_s, waiter))
        self._tasks[endpoint] = task

    def settled(self, endpoint: str) -> None:
        """The call took the endpoint's Woken."""
        self._tasks.pop(endpoint, None)

    def stop(self) -> None:
        """The step is over: stop waiting for phones that have not woken (their pushes are cancelled by
        `cancel_pushes`)."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    def cancel_pushes(self, reason: CancelReason, *, keep: str | None = None) -> None:
        """A cancel push to every phone that was sent a call push and did not answer (`keep`): it stops showing a
        ringing call. Sent once per phone, in the background (the call goes on at once), after the call push's own
        answer: only a push the service took is cancelled."""
        for endpoint, (binding, send) in self._sends.items():
            if endpoint != keep and endpoint not in self._cancelled:
                self._cancelled.add(endpoint)
                self._spawn(self._cancel(endpoint, binding, send, reason))

    async def _run(
        self,
        endpoint: str,
        send: asyncio.Future[PushResult],
        sent_at: float,
        wait_s: float,
        waiter: asyncio.Event,
    ) -> None:
        woke = False
        loop = asyncio.get_running_loop()
        try:
            # One budget for sending and waiting: a push service that hangs must not hold the call either.
            async with asyncio.timeout(wait_s):
                if (await asyncio.shield(send)).sent:
                    await waiter.wait()
                    woke = True
                    self._record(endpoint, woke_ms=(loop.time() - sent_at) * 1000)
        except TimeoutError:
            log.info("call %s: %s did not wake within %.1f s", self._push.call_id, endpoint, wait_s)
            # A push still on its way is the service's fault; one it took and no registration, the phone's.
            self._record(endpoint, failure=WakeFailure.DID_NOT_WAKE if send.done() else WakeFailure.SERVICE_BUSY)
        except Exception:  # a bug in a push client (logged by _answered): this phone is left out, the call goes on
            log.debug("call %s: %s left out after its push failed", self._push.call_id, endpoint)
        finally:
            self._wakeups.forget(endpoint, waiter)
        self._post(Woken(endpoint, woke))

    def _answered(self, endpoint: str, binding: PushBinding, send: asyncio.Future[PushResult]) -> None:
        """The call push's answer (or its client's bug): credentials noted, a refusal logged and recorded."""
        if send.cancelled():
            return
        error = send.exception()
        if error is not None:
            log.error("call %s: push to %s failed", self._push.call_id, endpoint, exc_info=error)
            self._record(endpoint, failure=WakeFailure.REFUSED)
            return
        result = send.result()
        self._note(binding, result)
        if not result.sent:
            self._refused(endpoint, binding, result)

    def _note(self, binding: PushBinding, result: PushResult) -> None:
        """Every answer of a push service says whether it takes our credentials (call and cancel pushes alike)."""
        if self._wake.credentials is not None:
            self._wake.credentials.note(binding.provider, result)

    def _record(self, endpoint: str, *, woke_ms: float | None = None, failure: WakeFailure | None = None) -> None:
        report = self._wake.report
        if report is None:
            return
        if woke_ms is not None:
            report.push_woke(endpoint, woke_ms, self._wake.clock())
        elif failure is not None:
            report.push_failed(endpoint, failure, self._wake.clock())

    def _refused(self, endpoint: str, binding: PushBinding, result: PushResult) -> None:
        log.warning(
            "call %s: %s not woken: push to %s %s %s",
            self._push.call_id,
            endpoint,
            binding.masked_token,
            result.outcome.value,
            result.reason,
        )
        self._record(endpoint, failure=failure_of(result.outcome))
        if result.outcome is PushOutcome.UNREGISTERED and self._wake.binding_ended is not None:
            self._wake.binding_ended(endpoint, binding)

    async def _cancel(
        self, endpoint: str, binding: PushBinding, send: asyncio.Future[PushResult], reason: CancelReason
    ) -> None:
        try:
            if not (await send).sent:
                return
            result = await self._wake.service.send_cancel(binding, self._push, reason)
        except Exception:
            log.exception("call %s: cancel push to %s failed", self._push.call_id, endpoint)
            return
        self._note(binding, result)
        if result.outcome is PushOutcome.UNREGISTERED and self._wake.binding_ended is not None:
            self._wake.binding_ended(endpoint, binding)
