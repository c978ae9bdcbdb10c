"""Wiring only: AMI client -> call tracker -> store (+ text-back). The logic lives in the pieces it connects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from callbuddy_pbx.asterisk.ami import AmiActionError, AmiClient, AmiError, AmiNotConnected
from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.asterisk.callbacks import CallBacks
from callbuddy_pbx.asterisk.cel_sqlite import CelSqlite
from callbuddy_pbx.asterisk.devices import DEVICE_EVENTS, DeviceRegistry
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.outbound import OutboundTracker
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.config import Config
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.phone import mask
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.serialize import call_to_dict
from callbuddy_pbx.service.cel_reconcile import CelReconciler
from callbuddy_pbx.service.forwards import TASK as FORWARDS_TASK
from callbuddy_pbx.service.forwards import ReplyForwarder
from callbuddy_pbx.service.leadership import LEAD_STOP_S, Ownership, SingleBox
from callbuddy_pbx.service.metrics import Metrics
from callbuddy_pbx.service.push_bindings import BindingKeeper
from callbuddy_pbx.service.recovery_marks import RecoveryMarker
from callbuddy_pbx.service.supervisor import Supervisor
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.recovery import RecoveryStore

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.25  # how often calls with a lost final Hangup are checked against the grace period
STOP_DRAIN_S = 5.0  # on stop, how long judged calls may take to reach the database
# Calls per transaction: thousands found at once in CEL are written in short transactions, so a live call judged
# meanwhile waits for one of them, not for all.
WRITE_BATCH_MAX = 200
WRITE_RETRY_MIN_S = 0.5  # the database takes no writes: first wait, doubled up to the next
WRITE_RETRY_MAX_S = 30.0
# After each login, what seeds the device registry (in this order: endpoints, then their contacts, then states).
DEVICE_ACTIONS = ("PJSIPShowEndpoints", "PJSIPShowContacts", "DeviceStateList")
# Registered by res_pjsip with the `system` class alone, which the rendered AMI user does not have (least privilege:
# `system` also allows GetConfig and Originate of System): refused, they are expected, not a problem.
SYSTEM_ONLY_ACTIONS = frozenset({"PJSIPShowEndpoints", "PJSIPShowContacts"})


class CallService:
    """Follows every call on one Asterisk and stores each finished inbound call as soon as it is judged."""

    def __init__(
        self,
        config: Config,
        store: CallStore,
        *,
        on_call: Callable[[CallRecord], None] | None = None,
        text_back: TextBackService | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._on_call = on_call
        self.text_back = text_back
        self.metrics = metrics
        matcher = InboundMatcher.from_config(config)
        self._config, self._matcher = config, matcher  # a new tracker after a lost ownership
        self.tracker = CallTracker(matcher)
        self.outbound = OutboundTracker.from_config(config)  # desks calling out: call backs mark recoveries
        self.recovery = RecoveryMarker(RecoveryStore(store))
        self.devices = DeviceRegistry.from_config(config)  # the phones: registered or not, ringing, in a call
        self.push_bindings = BindingKeeper(self.devices, store)  # a sleeping softphone's binding outlives a restart
        self.last_event_at: float | None = None  # when the last AMI event arrived (epoch seconds)
        self.ami = AmiClient(
            config.asterisk,
            on_event=self._on_event,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
        )
        self.call_backs = CallBacks(self.ami, config.pbx.phones)  # "Call back" from the dashboard: AMI Originate
        self._finished: asyncio.Queue[CallRecord] = asyncio.Queue()
        self._unstored: dict[str, int] = {}  # linkedid -> how many of its records wait in _finished
        # Asterisk's CEL records, read to judge what the AMI link did not see through (None: no CEL source set).
        self.cel: CelReconciler | None = None
        if config.cel.enabled:
            self.cel = CelReconciler(
                config.cel,
                CelSqlite(config.cel),
                matcher,
                store,
                submit=self._enqueue,
                followed=self._followed,
                link_up=lambda: self.ami.connected and self._caught_up,
            )
        self.supervisor = Supervisor()  # the service's long-running tasks (run.py adds its own)
        # Which instance runs the Asterisk links (AMI, CEL, `owned`): an election on PostgreSQL (run.py sets it);
        # a single box always does. Everything else (the writer, the outbox, the web side) runs on every instance.
        self.leadership: Ownership = SingleBox()
        self.owned: list[tuple[str, Callable[[], Awaitable[None]]]] = []  # run.py: the ARI router
        # Replies forwarded to the owners (by text, e-mail, webhook): only when a business has somewhere to send them.
        self.forwarder: ReplyForwarder | None = None
        if text_back is not None and ReplyForwarder.wanted(config):
            self.forwarder = ReplyForwarder(config, store, text_back)
            self.forwarder.on_trouble = partial(self.supervisor.report, FORWARDS_TASK)
        self._gateways_started = False
        self.calls_stored = 0
        self.ready = asyncio.Event()  # set once connected and reconciled with Asterisk's live channels
        self._caught_up = False  # this connection has read Asterisk's live channels (the tracker has every call)
        if metrics is not None:  # events, logins (reconnects) and the link's state are read when scraped
            metrics.watch_ami(self.ami)

    async def run(self) -> None:
        """Run until cancelled or `stop()`; the store writer drains what was judged before returning. The writer,
        the grace-period tick and the outbox are supervised: one that fails is logged, reported down in health
        and started again."""
        await self.push_bindings.restore()  # before Asterisk is asked about its phones
        self.supervisor.start("push-bindings", self.push_bindings.run)
        self.supervisor.start("call-writer", self._write_calls)
        self.supervisor.start("call-tick", self._tick)
        self.supervisor.start("recovery-marks", self.recovery.run)
        if self.text_back is not None:
            # Beside the AMI link, not before it: a gateway that is slow to bind must not make us miss calls
            # (their texts wait, durable, in the outbox).
            self.supervisor.start("text-back", self._send_texts)
        if self.forwarder is not None:
            self.supervisor.start(FORWARDS_TASK, self.forwarder.run)
        try:
            await self.leadership.run(self._own_links)
        finally:
            await self.supervisor.stop("call-tick", "text-back", "cel-reconcile", "recovery-marks", FORWARDS_TASK)
            if self.cel is not None:
                self.cel.close()  # calls it still held go to the writer, drained below
            try:
                await asyncio.wait_for(self._finished.join(), STOP_DRAIN_S)
            except TimeoutError:
                log.error("stopping with %d judged calls not stored (database unavailable)", self._finished.qsize())
            await self.supervisor.stop("call-writer")
            await self.recovery.flush()
            await self.supervisor.stop("push-bindings")
            with contextlib.suppress(Exception):  # the database away at the very end: they are learnt again
                await self.push_bindings.flush()
            if self.text_back is not None:
                await self.text_back.close()

    async def _send_texts(self) -> None:
        assert self.text_back is not None
        if not self._gateways_started:
            await self.text_back.start()
            self._gateways_started = True
        await self.text_back.outbox.run()

    async def stop(self) -> None:
        await self.leadership.close()
        await self.ami.close()

    async def _own_links(self) -> None:
        """The Asterisk links, while this instance owns them: until `stop()` (returns), or until the ownership is
        lost (cancelled): then the router stops first (two routers on one call is the worst case; its calls go back
        to the dialplan), then the AMI link and CEL, and the calls in progress are left to the next owner (it adopts
        the live ones from Asterisk's channel list and judges the ended ones from CEL)."""
        for name, run in self.owned:
            self.supervisor.start(name, run)
        if self.cel is not None:
            self.supervisor.start("cel-reconcile", self.cel.run)
        observing = asyncio.ensure_future(self.ami.run())
        try:
            await asyncio.wait([observing])  # a cancel lands here, not in the AMI client: the router goes first
            observing.result()
        except asyncio.CancelledError:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.supervisor.stop(*(name for name, _ in self.owned)), LEAD_STOP_S)
            observing.cancel()
            await asyncio.gather(observing, return_exceptions=True)
            await self.supervisor.stop("cel-reconcile")
            self._leave_calls()
            raise

    def _leave_calls(self) -> None:
        """Ownership lost: forget the calls in progress (judging them here too would judge them twice)."""
        if self.tracker.active_calls:
            log.info("%d calls in progress left to the next owner", self.tracker.active_calls)
        self.tracker = CallTracker(self._matcher)
        self.outbound = OutboundTracker.from_config(self._config)
        self._caught_up = False
        self.ready.clear()

    async def wait_stored(self) -> None:
        """Return once every call judged so far has been through the store writer (read-only: for tests, probes)."""
        await self._finished.join()

    def _enqueue(self, record: CallRecord) -> None:
        self._unstored[record.linkedid] = self._unstored.get(record.linkedid, 0) + 1
        self._finished.put_nowait(record)

    def _judged(self, records: list[CallRecord]) -> None:
        """Calls the tracker finished: to the writer, or (seen only in part, with CEL to complete them) to CEL."""
        for record in records:
            if self.cel is not None and not record.observed_from_start:
                self.cel.hold(record)
            else:
                self._enqueue(record)

    def _followed(self, linkedid: str) -> bool:
        """The AMI side still has this call: tracking it, or judged and waiting for the writer."""
        return self.tracker.follows(linkedid) or linkedid in self._unstored

    # The hot path: one call per AMI event, synchronous, no I/O.
    def _on_event(self, event: AmiMessage, received_at: float) -> None:
        self.last_event_at = received_at
        if finished := self.tracker.feed(event, received_at):
            self._judged(finished)
        if answered := self.outbound.feed(event, received_at):
            self.recovery.answered(answered)
        self.call_backs.feed(event)
        if event.get("Event") in DEVICE_EVENTS:  # after the tracker: calls never wait on (or fail with) devices
            self.devices.feed(event, received_at)

    async def _on_connected(self, client: AmiClient) -> None:
        asked = self.tracker.begin_snapshot()
        _, channels = await client.list_action("CoreShowChannels")
        self._judged(self.tracker.reconcile(channels, time.time(), asked=asked))
        self._caught_up = True
        if self.cel is not None:
            self.cel.connected()
        self.ready.set()
        log.info("connected to Asterisk; %d channels live, %d calls followed", len(channels), self.tracker.active_calls)
        await seed_devices(client, self.devices)

    def _on_disconnected(self, reason: str) -> None:
        self._caught_up = False
        self.tracker.disconnected()
        self.call_backs.disconnected()
        log.warning("lost the AMI connection (%s); %d calls in progress", reason, self.tracker.active_calls)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            self._judged(self.tracker.tick(time.time()))

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
            if stored:  # before task_done: a drain (wait_stored) sees the calls with their marks
                await self.recovery.calls_stored(stored)
            for record in waiting:  # back in the queue before the batch is done: a drain never sees it empty
                self._finished.put_nowait(record)
            waiting_ids = {record.linkedid for record in waiting}
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


async def seed_devices(client: AmiClient, registry: DeviceRegistry) -> list[str]:
    """Fill `registry` from the PBX's lists (DEVICE_ACTIONS); return what could not be asked, one line per action.

    Each action may fail on its own (an Asterisk without res_pjsip, an AMI user without the `system` or `reporting`
    class, a timeout): that is one warning, and the others still count. A lost connection raises AmiNotConnected.
    A SYSTEM_ONLY_ACTIONS action refused for want of `system` (as with the AMI user `render` writes) is logged at
    info: the phones' states then come from DeviceStateList and the DeviceStateChange and ContactStatus events."""
    failed: list[str] = []
    for action in DEVICE_ACTIONS:
        try:
            _, items = await client.list_action(action)
        except AmiNotConnected:
            raise
        except AmiError as exc:
            failed.append(f"{action}: {exc}")
            if action in SYSTEM_ONLY_ACTIONS and isinstance(exc, AmiActionError) and exc.permission_denied:
                log.info(
                    "devices: %s not allowed (the AMI user has no `system` write class, as rendered); phone states "
                    "come from device state and contact events",
                    action,
                )
            else:
                log.warning("devices: %s not answered (%s); phone states may be incomplete", action, exc)
            continue
        now = time.time()
        if action == "PJSIPShowEndpoints":
            registry.seed_endpoints(items, now)
        elif action == "PJSIPShowContacts":
            registry.seed_contacts(items)
        else:
            registry.seed_states(items, now)
    log.info("devices: %d phones known", len(registry))
    return failed
