"""Wiring only: the Asterisk servers' links (service/node_link) -> store (+ text-back). The logic lives in the pieces
it connects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from callbuddy_pbx.asterisk.ami import AmiClient
from callbuddy_pbx.asterisk.callbacks import CallBacks
from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.asterisk.outbound import OutboundAnswer
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.config import Config
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.phone import mask
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.serialize import call_to_dict
from callbuddy_pbx.service.cel_reconcile import CelReconciler
from callbuddy_pbx.service.forwards import TASK as FORWARDS_TASK
from callbuddy_pbx.service.forwards import ReplyForwarder
from callbuddy_pbx.service.leadership import Ownership
from callbuddy_pbx.service.metrics import Metrics
from callbuddy_pbx.service.node_link import NodeLink
from callbuddy_pbx.service.push_bindings import BindingKeeper
from callbuddy_pbx.service.recovery_marks import RecoveryMarker
from callbuddy_pbx.service.supervisor import Supervisor
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.recovery import RecoveryStore
from callbuddy_pbx.store.spool import CallSpool

log = logging.getLogger(__name__)

STOP_DRAIN_S = 5.0  # on stop, how long judged calls may take to reach the database
# Calls per transaction: thousands found at once in CEL are written in short transactions, so a live call judged
# meanwhile waits for one of them, not for all.
WRITE_BATCH_MAX = 200
WRITE_RETRY_MIN_S = 0.5  # the database takes no writes: first wait, doubled up to the next
WRITE_RETRY_MAX_S = 30.0


class CallService:
    """Follows every call on the configured Asterisk servers (one `NodeLink` each) and stores each finished inbound
    call as soon as it is judged; texts, forwards and recovery marks are shared by all of them."""

    def __init__(
        self,
        config: Config,
        store: CallStore,
        *,
        on_call: Callable[[CallRecord], None] | None = None,
        text_back: TextBackService | None = None,
        metrics: Metrics | None = None,
        spool: CallSpool | None = None,
    ) -> None:
        self._store = store
        self.spool = spool  # calls waiting for the database, kept on disk (PostgreSQL: run.py gives one)
        self._on_call = on_call
        self.text_back = text_back
        self.metrics = metrics
        self.recovery = RecoveryMarker(RecoveryStore(store))
        self.supervisor = Supervisor()  # the service's long-running tasks (run.py adds its own), the nodes' too
        self.nodes = tuple(NodeLink(config, node, store, self, self.supervisor) for node in config.asterisk_nodes)
        # The first (or only) server: its phones are the ones the ARI router rings and push bindings are kept for.
        self.first = self.nodes[0]
        # A sleeping softphone's binding outlives a restart.
        self.push_bindings = BindingKeeper(self.first.devices, store)
        self._finished: asyncio.Queue[CallRecord] = asyncio.Queue()
        self._unstored: dict[str, int] = {}  # call key -> how many of its records wait in _finished
        # Replies forwarded to the owners (by text, e-mail, webhook): only when a business has somewhere to send them.
        self.forwarder: ReplyForwarder | None = None
        if text_back is not None and ReplyForwarder.wanted(config):
            self.forwarder = ReplyForwarder(config, store, text_back)
            self.forwarder.on_trouble = partial(self.supervisor.report, FORWARDS_TASK)
        self._gateways_started = False
        self.calls_stored = 0
        if metrics is not None:  # events, logins (reconnects) and the link's state are read when scraped
            for node in self.nodes:
                metrics.watch_ami(node.ami)

    # The first server's parts, under the names a config with one Asterisk has always used.
    @property
    def ami(self) -> AmiClient:
        return self.first.ami

    @property
    def tracker(self) -> CallTracker:
        return self.first.tracker

    @property
    def devices(self) -> DeviceRegistry:
        return self.first.devices

    @property
    def call_backs(self) -> CallBacks:
        return self.first.call_backs

    @property
    def cel(self) -> CelReconciler | None:
        return self.first.cel

    @property
    def ready(self) -> asyncio.Event:
        return self.first.ready

    @property
    def last_event_at(self) -> float | None:
        return self.first.last_event_at

    @property
    def owned(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """What runs only while this instance owns the first server's link (run.py: the ARI router, the alerts)."""
        return self.first.owned

    @property
    def leadership(self) -> Ownership:
        return self.first.leadership

    @leadership.setter
    def leadership(self, ownership: Ownership) -> None:
        self.first.leadership = ownership

    async def run(self) -> None:
        """Run until cancelled or `stop()`; the store writer drains what was judged before returning. The writer,
        the grace-period ticks and the outbox are supervised: one that fails is logged, reported down in health
        and started again."""
        if self.spool is not None:  # calls a previous run judged and could not store: first in line
            for record in self.spool.open():
                self.enqueue(record)
        await self.push_bindings.restore()  # before Asterisk is asked about its phones
        self.supervisor.start("push-bindings", self.push_bindings.run)
        self.supervisor.start("call-writer", self._write_calls)
        self.supervisor.start("recovery-marks", self.recovery.run)
        if self.text_back is not None:
            # Beside the AMI links, not before them: a gateway that is slow to bind must not make us miss calls
            # (their texts wait, durable, in the outbox).
            self.supervisor.start("text-back", self._send_texts)
        if self.forwarder is not None:
            self.supervisor.start(FORWARDS_TASK, self.forwarder.run)
        try:
            await asyncio.gather(*(node.run() for node in self.nodes))
        finally:
            await self.supervisor.stop("text-back", "recovery-marks", FORWARDS_TASK)
            try:
                await asyncio.wait_for(self._finished.join(), STOP_DRAIN_S)
            except TimeoutError:
                kept = "kept in the spool for the next start" if self.spool is not None else "lost"
                log.error(
                    "stopping with %d judged calls not stored (database unavailable): %s", self._finished.qsize(), kept
                )
            await self.supervisor.stop("call-writer")
            await self.recovery.flush()
            await self.supervisor.stop("push-bindings")
            with contextlib.suppress(Exception):  # the database away at the very end: they are learnt again
                await self.push_bindings.flush()
            if self.text_back is not None:
                await self.text_back.close()
            if self.spool is not None:
                self.spool.close()

    async def _send_texts(self) -> None:
        assert self.text_back is not None
        if not self._gateways_started:
            await self.text_back.start()
            self._gateways_started = True
        await self.text_back.outbox.run()

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))

    async def wait_stored(self) -> None:
        """Return once every call judged so far has been through the store writer (read-only: for tests, probes)."""
        await self._finished.join()

    # ---- CallSink: what the nodes hand over ------------------------------------------------------------------------

    def enqueue(self, record: CallRecord) -> None:
        self._unstored[record.linkedid] = self._unstored.get(record.linkedid, 0) + 1
        self._finished.put_nowait(record)

    def waiting(self, key: str) -> bool:
        return key in self._unstored

    def answered(self, answers: Sequence[OutboundAnswer]) -> None:
        self.recovery.answered(answers)

    async def _write_calls(self) -> None:
        """Write each finished call at once; under load, everything waiting goes in one transaction.

        A batch the database refuses is written call by call: a call refused while the database takes writes is
        set aside with its error (one bad call never stops the others); while the database takes no writes at
        all, the calls wait and are tried again with back-off (an outage defers, it never drops)."""
        pause = WRITE_RETRY_MIN_S
        while True:
            batch = [await self._finished.get()]
            while not self._finished.empty() and len(batch) < WRITE_BATCH_MAX:
                batch.append(self._finished.get_nowait())
            stored, waiting = await self._store_batch(batch)
            waiting_ids = {record.linkedid for record in waiting}
            if self.spool is not None:  # on disk before waiting: a crash during the outage loses none of them
                self.spool.keep(waiting, time.time())
                self.spool.drop(record.linkedid for record in batch if record.linkedid not in waiting_ids)
            if stored:  # before task_done: a drain (wait_stored) sees the calls with their marks
                await self.recovery.calls_stored(stored)
            for record in waiting:  # back in the queue before the batch is done: a drain never sees it empty
                self._finished.put_nowait(record)
            for record in batch:
                if record.linkedid not in waiting_ids:
                    self._forget_unstored(record.linkedid)
                self._finished.task_done()
            for record in stored:
                self._finished_stored(record)
            if waiting:
                log.error("the database takes no writes; %d calls wait, next try in %.0f s", len(waiting), pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, WRITE_RETRY_MAX_S)
            else:
                pause = WRITE_RETRY_MIN_S

    def _forget_unstored(self, linkedid: str) -> None:
        count = self._unstored.pop(linkedid, 0) - 1
        if count > 0:
            self._unstored[linkedid] = count

    async def _save(self, records: list[CallRecord]) -> None:
        if self.text_back is not None:
            self.calls_stored += await self.text_back.record_calls(records)
        else:
            self.calls_stored += await self._store.save_calls(records)

    async def _store_batch(self, batch: list[CallRecord]) -> tuple[list[CallRecord], list[CallRecord]]:
        """(calls stored, calls to try again); calls set aside are in neither."""
        try:
            await self._save(batch)
            return batch, []
        except Exception as exc:
            if await self._outage(exc):
                return [], batch
        stored: list[CallRecord] = []
        for index, record in enumerate(batch):
            try:
                await self._save([record])
            except Exception as exc:
                if await self._outage(exc):
                    return stored, batch[index:]
                await self._set_aside(record, exc)
            else:
                stored.append(record)
        return stored, []

    async def _outage(self, error: Exception) -> bool:
        """The database is unavailable (rather than refusing this data): wait, never set aside."""
        if self._store.is_outage(error) or not await self._store.writable():
            log.warning("the database refused a write: %s: %s", type(error).__name__, error)
            return True
        return False

    async def _set_aside(self, record: CallRecord, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        log.error("call %s could not be stored and is set aside (%s)", record.linkedid, reason)
        try:
            await self._store.set_aside(
                record.linkedid, json.dumps(call_to_dict(record), default=str), reason, time.time()
            )
        except Exception:
            log.exception("call %s could not be set aside either; it is only in this log", record.linkedid)
        if self.metrics is not None:
            self.metrics.call_set_aside()

    def _finished_stored(self, record: CallRecord) -> None:
        log.info(
            "call %s from %s to %s: %s%s",
            record.linkedid,
            mask(record.caller) if record.caller else "withheld",
            record.business or record.did,
            record.outcome.value,
            f" by {record.answered_by}" if record.answered_by else "",
        )
        if self.metrics is not None:
            self.metrics.call_finished(record)
        if self._on_call is not None:
            try:
                self._on_call(record)
            except Exception:
                log.exception("call listener failed")
