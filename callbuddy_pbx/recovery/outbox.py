"""The outbox worker: sends due texts through their gateway and records what became of each, in SQLite
(MessageStore), so a restart resumes where the last process stopped.

Trouble with the gateway defers, never drops: a gateway that cannot take texts (link down, throttled, queue full,
429, 5xx) costs a text no try; the text waits for it, paced to what the gateway takes (pacing.GatewayPace), until
`max_age_s` after it was queued, and is then `expired` with the reason. Only an answer about the text itself ends
it: accepted, rejected (failed), or a temporary error repeated `max_retries` times (failed). A send that left and
got no answer is `unknown`: a receipt may still settle it; it is never sent again blindly (unless
`resend_unknown_after_s` is set). Each sender's own rate is kept too.

Several instances may share one PostgreSQL database: each claims the due texts no other is claiming
(MessageStore.claim_due) with a lease it renews while the send is in flight, and settles `unknown` the texts of an
instance that died mid-send once their lease ran out (store/claims). Whichever instance is free sends; none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial

from callbuddy_pbx.phone import mask
from callbuddy_pbx.recovery.pacing import GatewayPace
from callbuddy_pbx.recovery.ratelimit import SenderLimits
from callbuddy_pbx.sms.gateway import OutgoingSms, SendResult, SendStatus, SmsGateway
from callbuddy_pbx.store.claims import LEASE_S
from callbuddy_pbx.store.messages import EXPIRED, FAILED, QUEUED, SENT, UNKNOWN, MessageStore, OutboxRow, SendUpdate

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0  # with nothing due, look again this often (new texts also wake the worker at once)
DUE_BATCH = 500
MAX_AGE_S = 24 * 3600.0  # a text the gateway could not take for this long is expired, not sent a day late


class Outbox:
    def __init__(
        self,
        messages: MessageStore,
        gateways: Mapping[str, SmsGateway],
        *,
        rates: dict[str, float] | None = None,
        max_retries: int = 3,
        backoff_s: float = 2.0,
        max_backoff_s: float = 600.0,
        max_in_flight: int = 200,
        max_age_s: float = MAX_AGE_S,
        resend_unknown_after_s: float | None = None,
        lease_s: float = LEASE_S,
        clock: Callable[[], float] = time.time,
        on_update: Callable[[OutboxRow, SendUpdate], None] | None = None,
    ) -> None:
        self._messages = messages
        self._gateways = gateways
        self._limits = SenderLimits(dict(rates or {}))
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_in_flight = max_in_flight
        self._max_age_s = max_age_s
        self._resend_unknown_after_s = resend_unknown_after_s
        self._lease_s = lease_s
        self._claimed: set[int] = set()  # ids this instance claimed whose result is not recorded yet: leases to renew
        self._paces: dict[str, GatewayPace] = {name: GatewayPace() for name in gateways}
        self._unknown_checked_at = float("-inf")
        self._clock = clock
        self._on_update = on_update
        self._wakeup = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._busy: Counter[str] = Counter()  # gateway -> texts handed to it and not yet answered
        self._updates: asyncio.Queue[tuple[OutboxRow, SendUpdate]] = asyncio.Queue()
        self.stats: Counter[str] = Counter()  # sent, deferred, retried, failed, expired, unknown, recovered_unknown
        self.passes = 0  # looks at the due texts so far: a probe's "it has looked since" (read-only)

    def wake(self) -> None:
        """New texts were queued: look at once rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        recovered = await self._messages.recover_after_crash(self._clock())
        if recovered:
            self.stats["recovered_unknown"] += recovered
            log.warning("%d texts were being sent when the service stopped; marked unknown, not re-sent", recovered)
        writer = asyncio.create_task(self._write_updates(), name="outbox-writer")
        leases = asyncio.create_task(self._keep_leases(), name="outbox-leases")
        try:
            while True:
                self._wakeup.clear()
                wait = await self._dispatch_due()
                self.passes += 1
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that arrives just as
                # the event is set, and this loop would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wakeup.wait()
        finally:
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            await self._updates.join()
            # What is still claimed stays `sending` until its lease runs out: the gateway may have it (a cancelled
            # send), so this instance's next start or another instance settles it `unknown`, never sends it again.
            for task in (writer, leases):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _keep_leases(self) -> None:
        """Every third of a lease: renew this instance's claims, and settle the expired claims of instances that
        died mid-send (on SQLite there are none: store/claims)."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            now = self._clock()
            try:
                if self._claimed:
                    await self._messages.renew_claims(sorted(self._claimed), now + self._lease_s)
                settled = await self._messages.settle_expired_claims(now)
            except Exception:
                log.exception("could not renew or check the outbox's claims; trying again")
                continue
            if settled:
                self.stats["recovered_unknown"] += settled
                log.warning("%d texts were being sent by an instance that stopped; marked unknown, not resent", settled)

    async def _dispatch_due(self) -> float:
        """Start sending what is due and allowed; return how long to sleep before looking again."""
        now = self._clock()
        wait = IDLE_POLL_S
        slots = self._max_in_flight - len(self._in_flight)
        if slots <= 0:
            return wait
        if self._resend_unknown_after_s is not None and now - self._unknown_checked_at >= IDLE_POLL_S:
            self._unknown_checked_at = now  # a write: once per poll at most, not on every pass
            resent = await self._messages.requeue_unknown(now - self._resend_unknown_after_s, now)
            if resent:
                log.warning("%d texts with no answer and no receipt are sent again (resend_unknown_after)", resent)
        ready: list[OutboxRow] = []

        def choose(due: list[OutboxRow]) -> list[int]:
            """Which due texts to send now (runs inside the claim's transaction: no I/O)."""
            nonlocal wait
            ready.clear()
            taken: Counter[str] = Counter()
            for row in due:
                if len(ready) >= slots:
                    break
                gateway = self._gateways.get(row.gateway)
                # A text is claimed (`sending`) only when its gateway can write it out at once: one that waited
                # inside the process would be taken for one the SMSC may have (`unknown`) if the service died.
                if gateway is not None and self._busy[row.gateway] + taken[row.gateway] >= gateway.in_flight_limit:
                    continue
                pace = self._paces.get(row.gateway)
                if pace is None:
                    ready.append(row)  # fails at once below, with a clear error
                elif (pace_wait := pace.wait_s(now)) > 0:
                    wait = min(wait, pace_wait)
                elif self._limits.try_take(row.gateway, row.sender, now):
                    pace.take(now)  # free now (wait 0): takes the slot, or makes this text the down gateway's probe
                    ready.append(row)
                    taken[row.gateway] += 1
                else:
                    wait = min(wait, self._limits.wait_s(row.gateway, row.sender, now))
            return [row.id for row in ready]

        claimed = set(await self._messages.claim_due(now, DUE_BATCH, choose, self._lease_s))
        self._claimed.update(claimed)
        for row in ready:
            if row.id in claimed:
                task = asyncio.create_task(self._send(row), name=f"send {row.key}")
                self._in_flight.add(task)
                self._busy[row.gateway] += 1
                task.add_done_callback(partial(self._sent, row.gateway))
        next_at = await self._messages.next_due_at()
        if next_at is not None:
            wait = min(wait, max(0.0, next_at - self._clock()))
        return max(wait, 0.001)

    def _sent(self, gateway: str, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._busy[gateway] -= 1

    async def _send(self, row: OutboxRow) -> None:
        gateway = self._gateways.get(row.gateway)
        if gateway is None:
            result = SendResult(SendStatus.REJECTED, error=f"gateway {row.gateway!r} is not configured")
        else:
            try:
                result = await gateway.send(OutgoingSms(row.key, row.to, row.sender, row.body))
            except Exception as exc:  # a gateway bug must not lose the text: treat it as transient
                log.exception("gateway %s raised while sending %s", row.gateway, row.key)
                result = SendResult(SendStatus.RETRY, error=f"gateway error: {exc!r}"[:200])
        self._updates.put_nowait((row, self._next_state(row, result)))

    def _next_state(self, row: OutboxRow, result: SendResult) -> SendUpdate:
        now = self._clock()
        attempts = row.attempts + 1
        to = mask(row.to)
        pace = self._paces.get(row.gateway)
        if result.status is SendStatus.ACCEPTED:
            self.stats["sent"] += 1
            if pace is not None:
                pace.accepted(now)
            return SendUpdate(row.id, SENT, attempts, row.send_at, result.message_id, None, now)
        if result.status is SendStatus.DEFERRED:
            return self._deferred(row, result, pace, now)
        if pace is not None:
            pace.answered()
        if result.status is SendStatus.UNKNOWN:
            self.stats["unknown"] += 1
            log.error("text %s to %s: sent, but no answer came (%s); not sent again", row.key, to, result.error)
            error = f"sent, no answer from the gateway ({result.error}); not sent again"
            return SendUpdate(row.id, UNKNOWN, attempts, row.send_at, None, error, now)
        if result.status is SendStatus.RETRY and attempts <= self._max_retries:
            self.stats["retried"] += 1
            delay = result.retry_after_s
            if delay is None:
                delay = min(self._max_backoff_s, self._backoff_s * 2 ** (attempts - 1)) * random.uniform(0.5, 1.5)
            log.warning("text %s to %s: %s; retry %d in %.1f s", row.key, to, result.error, attempts, delay)
            return SendUpdate(row.id, QUEUED, attempts, now + delay, None, result.error, now)
        self.stats["failed"] += 1
        why = "rejected" if result.status is SendStatus.REJECTED else f"gave up after {attempts} attempts"
        log.error("text %s to %s failed (%s): %s", row.key, to, why, result.error)
        return SendUpdate(row.id, FAILED, attempts, row.send_at, None, result.error, now)

    def _deferred(self, row: OutboxRow, result: SendResult, pace: GatewayPace | None, now: float) -> SendUpdate:
        """The gateway could not take it: no try used; the text waits for the gateway, or expires of age."""
        if now - row.created_at >= self._max_age_s:
            self.stats["expired"] += 1
            hours = self._max_age_s / 3600
            log.error("text %s to %s expired: not sent within %g h (%s)", row.key, mask(row.to), hours, result.error)
            error = f"not sent within {hours:g} h: {result.error}"
            return SendUpdate(row.id, EXPIRED, row.attempts, row.send_at, None, error, now)
        self.stats["deferred"] += 1
        if pace is None:
            send_at = now + (result.retry_after_s or IDLE_POLL_S)
        elif result.throttled:
            pace.throttled(now, result.retry_after_s)
            send_at = now + pace.wait_s(now)
        else:
            send_at = pace.unavailable(now, result.retry_after_s)
        log.debug("text %s to %s waits for gateway %s: %s", row.key, mask(row.to), row.gateway, result.error)
        return SendUpdate(row.id, QUEUED, row.attempts, send_at, None, result.error, now)

    async def _write_updates(self) -> None:
        """Results of concurrent sends go to the database together: one transaction per burst."""
        while True:
            batch = [await self._updates.get()]
            while not self._updates.empty():
                batch.append(self._updates.get_nowait())
            try:
                await self._messages.apply_send_results([update for _, update in batch])
            except Exception:
                log.exception("could not record %d send results; retrying", len(batch))
                for item in batch:
                    self._updates.put_nowait(item)
                    self._updates.task_done()
                await asyncio.sleep(1.0)
                continue
            for row, update in batch:
                self._claimed.discard(row.id)  # recorded: no lease to keep
                if self._on_update is not None:
                    try:
                        self._on_update(row, update)
                    except Exception:
                        log.exception("outbox listener failed")
                self._updates.task_done()
            self._wakeup.set()
