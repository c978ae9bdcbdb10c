"""Keeps the recovery marks (store/recovery.py) current: answered desk calls in, marks out.

The AMI hot path only queues an answered desk call (no I/O there); this task stores it and marks what it recovered.
Replies and link clicks reach the database by other paths, so every SWEEP_S the last week of missed calls is marked
from its signs; the first sweep, on start, also completes marks a crash or a refused write left undone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from callbuddy_pbx.asterisk.outbound import OutboundAnswer
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.phone import mask
from callbuddy_pbx.store.recovery import RecoveryStore

log = logging.getLogger(__name__)

SWEEP_S = 10.0


class RecoveryMarker:
    def __init__(self, store: RecoveryStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._answers: asyncio.Queue[OutboundAnswer] = asyncio.Queue()

    def answered(self, answers: Sequence[OutboundAnswer]) -> None:
        """From the AMI hot path: queue, never wait."""
        for answer in answers:
            self._answers.put_nowait(answer)

    async def wait_idle(self) -> None:
        """Return once every answered desk call queued so far is stored and marked (for tests and probes)."""
        await self._answers.join()

    async def flush(self) -> None:
        """On stop: store the answered desk calls still queued (the task that would have is stopped)."""
        batch = []
        while not self._answers.empty():
            batch.append(self._answers.get_nowait())
            self._answers.task_done()
        if batch:
            try:
                await self._store.record_outbound(batch, self._clock())
            except Exception:
                log.exception("%d answered desk calls not stored on stop", len(batch))

    async def calls_stored(self, records: Sequence[CallRecord]) -> None:
        """After the writer stored calls; a failure here is logged and left to the next sweep."""
        try:
            await self._store.mark_calls(records, self._clock())
        except Exception as exc:
            log.warning("recovery marks of %d calls deferred to the next sweep (%s)", len(records), exc)

    async def run(self) -> None:
        await self._store.sweep(self._clock())
        next_sweep = time.monotonic() + SWEEP_S
        while True:
            try:
                first = await asyncio.wait_for(self._answers.get(), max(0.0, next_sweep - time.monotonic()))
            except TimeoutError:
                await self._store.sweep(self._clock())
                next_sweep = time.monotonic() + SWEEP_S
                continue
            batch = [first]
            while not self._answers.empty():
                batch.append(self._answers.get_nowait())
            try:
                await self._store.record_outbound(batch, self._clock())
            except Exception:
                for answer in batch:  # kept for the restarted task: a refused write never drops a call back
                    self._answers.put_nowait(answer)
                raise
            finally:
                for _ in batch:
                    self._answers.task_done()
            for answer in batch:
                log.info("call back from %s to %s answered", answer.endpoint, mask(answer.number))
