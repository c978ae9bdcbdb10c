"""The outbox worker: sends due texts through their gateway, retries transient failures with exponential backoff
and jitter, gives up after `max_retries`, and respects each sender's rate. State lives in SQLite (MessageStore),
so a restart resumes where the last process stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping

from callbuddy_pbx.phone import mask
from callbuddy_pbx.recovery.ratelimit import SenderLimits
from callbuddy_pbx.sms.gateway import OutgoingSms, SendResult, SendStatus, SmsGateway
from callbuddy_pbx.store.messages import FAILED, QUEUED, SENT, MessageStore, OutboxRow, SendUpdate

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0  # with nothing due, look again this often (new texts also wake the worker at once)
DUE_BATCH = 500


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
        self._clock = clock
        self._on_update = on_update
        self._wakeup = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._updates: asyncio.Queue[tuple[OutboxRow, SendUpdate]] = asyncio.Queue()
        self.stats: Counter[str] = Counter()  # sent, retried, failed, recovered_unknown

    def wake(self) -> None:
        """New texts were queued: look at once rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        recovered = await self._messages.recover_after_crash(self._clock())
        if recovered:
            self.stats["recovered_unknown"] += recovered
            log.warning("%d texts were being sent when the service stopped; marked unknown, not re-sent", recovered)
        writer = asyncio.create_task(self._write_updates(), name="outbox-writer")
        try:
            while True:
                self._wakeup.clear()
                wait = await self._dispatch_due()
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
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _dispatch_due(self) -> float:
        """Start sending what is due and allowed; return how long to sleep before looking again."""
        now = self._clock()
        wait = IDLE_POLL_S
        slots = self._max_in_flight - len(self._in_flight)
        if slots <= 0:
            return wait
        ready: list[OutboxRow] = []
        for row in await self._messages.due(now, DUE_BATCH):
            if len(ready) >= slots:
                break
            if row.gateway not in self._gateways:
                ready.append(row)  # fails at once below, with a clear error
            elif self._limits.try_take(row.gateway, row.sender, now):
                ready.append(row)
            else:
                wait = min(wait, self._limits.wait_s(row.gateway, row.sender, now))
        claimed = set(await self._messages.claim([row.id for row in ready], now)) if ready else set()
        for row in ready:
            if row.id in claimed:
                task = asyncio.create_task(self._send(row), name=f"send {row.key}")
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
        next_at = await self._messages.next_due_at()
        if next_at is not None:
            wait = min(wait, max(0.0, next_at - self._clock()))
        return max(wait, 0.001)

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
        if result.status is SendStatus.ACCEPTED:
            self.stats["sent"] += 1
            return SendUpdate(row.id, SENT, attempts, row.send_at, result.message_id, None, now)
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
                if self._on_update is not None:
                    try:
                        self._on_update(row, update)
                    except Exception:
                        log.exception("outbox listener failed")
                self._updates.task_done()
            self._wakeup.set()
