"""One Asterisk server the service follows: its AMI link, the tracker of its calls, its phones, its call backs and its
CEL, run while this instance owns the link (service/leadership). `CallService` holds one per configured server and
the parts they share (the store writer, texting).

Inside a node everything speaks Asterisk's own Linkedids; a judged call leaves it under its key (`model.node_key`:
`<linkedid>@<node>` when there are several servers), so two servers' identical Linkedids never meet in the store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from callbuddy_pbx.asterisk.ami import AmiActionError, AmiClient
from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.asterisk.callbacks import CallBack, CallBacks
from callbuddy_pbx.asterisk.cel_source import open_cel_source
from callbuddy_pbx.asterisk.devices import DEVICE_EVENTS, DeviceRegistry
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.outbound import OutboundAnswer, OutboundTracker
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.config import AsteriskNode, Business, Config
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.model import CallRecord, node_key
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.service.cel_reconcile import CelReconciler
from callbuddy_pbx.service.devices_seed import seed_devices
from callbuddy_pbx.service.leadership import LEAD_STOP_S, Ownership, SingleBox
from callbuddy_pbx.service.supervisor import Supervisor
from callbuddy_pbx.store.db import CallStore

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.25  # how often calls with a lost final Hangup are checked against the grace period


class CallSink(Protocol):
    """What a node hands its judged calls to (CallService): the store writer's queue and the recovery marks."""

    def enqueue(self, record: CallRecord) -> None: ...

    def waiting(self, key: str) -> bool: ...

    def answered(self, answers: Sequence[OutboundAnswer]) -> None: ...


class NodeCalls:
    """The store as one node's CEL reconciliation sees it: Linkedids of this node in, keys out, and its own CEL
    progress (two servers' CEL sources may have the same name, such as /var/log/asterisk/master.db)."""

    def __init__(self, store: CallStore, node: str) -> None:
        self._store, self._node = store, node

    async def known_calls(self, linkedids: Sequence[str]) -> set[str]:
        keys = {node_key(linkedid, self._node): linkedid for linkedid in linkedids}
        return {keys[key] for key in await self._store.known_calls(list(keys))}

    async def cel_progress(self, source: str) -> int | None:
        return await self._store.cel_progress(node_key(source, self._node))

    async def set_cel_progress(self, source: str, last_id: int, at: float) -> None:
        await self._store.set_cel_progress(node_key(source, self._node), last_id, at)


class NodeLink:
    """Follows every call on one Asterisk server and hands each finished inbound call to the sink once judged."""

    def __init__(
        self, config: Config, node: AsteriskNode, store: CallStore, sink: CallSink, supervisor: Supervisor
    ) -> None:
        self.node = node
        self.name = node.name
        self._sink = sink
        self._config = config
        self._matcher = InboundMatcher.from_config(config, node.name)
        self.tracker = CallTracker(self._matcher)
        self.outbound = OutboundTracker.from_config(config)  # desks calling out: call backs mark recoveries
        self.devices = DeviceRegistry.from_config(config)  # the phones: registered or not, ringing, in a call
        self.last_event_at: float | None = None  # when the last AMI event arrived (epoch seconds)
        self.ami = AmiClient(
            node.ami,
            on_event=self._on_event,
            on_connected=self._on_connected,
            on_disconnected=self._on_disconnected,
        )
        self.call_backs = CallBacks(self.ami, config.pbx.phones)  # "Call back" from the dashboard: AMI Originate
        self.supervisor = supervisor  # the service's: one place keeps every task alive and reports the ones down
        # Asterisk's CEL records, read to judge what the AMI link did not see through (None: no CEL source set).
        self.cel: CelReconciler | None = None
        if node.cel.enabled:
            self.cel = CelReconciler(
                node.cel,
                open_cel_source(node.cel, config.storage.url),
                self._matcher,
                NodeCalls(store, node.name),
                submit=self._submit,
                followed=self._followed,
                link_up=lambda: self.ami.connected and self._caught_up,
            )
        # Which instance runs this link: an election on PostgreSQL (run.py sets it); a single box always does.
        self.leadership: Ownership = SingleBox()
        self.owned: list[tuple[str, Callable[[], Awaitable[None]]]] = []  # run.py: the ARI router, the alerts
        # Owned tasks that go on while holding (the database away, service/leadership): run.py's alerts, which tell
        # the installer so; nobody else can own the link meanwhile, so they do not run twice.
        self.hold_through: set[str] = set()
        self.routing: RoutingService | None = None  # its own ARI router (attach_routing), for a server after the first
        self.ready = asyncio.Event()  # set once connected and reconciled with Asterisk's live channels
        # Why this link's events are not followed: the server is not the one configured (its systemname differs).
        self.problem: str | None = None
        self._caught_up = False  # this connection has read Asterisk's live channels (the tracker has every call)

    def task(self, name: str) -> str:
        """A supervised task's name: `call-tick`, or `call-tick@site-b` for one of several servers."""
        return node_key(name, self.name)

    async def run(self) -> None:
        """Until `stop()`: elected (or always, on one box), follow the server; the tick runs throughout."""
        self.supervisor.start(self.task("call-tick"), self._tick)
        try:
            await self.leadership.run(self._own_link, hold=self._hold, resume=self._resume)
        finally:
            await self.supervisor.stop(self.task("call-tick"), self.task("cel-reconcile"))
            if self.cel is not None:
                self.cel.close()  # calls it still held go to the writer

    async def stop(self) -> None:
        await self.leadership.close()
        await self.ami.close()

    async def _own_link(self) -> None:
        """The link, while this instance owns it: until `stop()` (returns), or until the ownership is lost
        (cancelled): then the router stops first (two routers on one call is the worst case; its calls go back to
        the dialplan), then the AMI link and CEL, and the calls in progress are left to the next owner (it adopts
        the live ones from Asterisk's channel list and judges the ended ones from CEL)."""
        await self._resume()
        observing = asyncio.ensure_future(self.ami.run())
        try:
            await asyncio.wait([observing])  # a cancel lands here, not in the AMI client: the router goes first
            observing.result()
        except asyncio.CancelledError:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.supervisor.stop(*(name for name, _ in self.owned)), LEAD_STOP_S)
            observing.cancel()
            await asyncio.gather(observing, return_exceptions=True)
            await self.supervisor.stop(self.task("cel-reconcile"))
            self._leave_calls()
            raise

    async def _resume(self) -> None:
        """What runs beside the AMI observer while this instance surely owns the link: the router, the alerts, CEL."""
        for name, run in self.owned:
            if not self.supervisor.running(name):  # one held through an outage runs on
                self.supervisor.start(name, run)
        if self.cel is not None:
            self.supervisor.start(self.task("cel-reconcile"), self.cel.run)

    async def _hold(self) -> None:
        """The database is unreachable (the lock's connection failed): stop the router first (two routers on one
        call is the worst case; its calls go back to the dialplan) and CEL (it needs the database); the AMI observer
        and `hold_through` (the alerts) go on, and the calls it judges wait for the database in the store writer."""
        with contextlib.suppress(TimeoutError):
            held = [name for name, _ in self.owned if name not in self.hold_through]
            await asyncio.wait_for(self.supervisor.stop(*held), LEAD_STOP_S)
        await self.supervisor.stop(self.task("cel-reconcile"))

    def _leave_calls(self) -> None:
        """Ownership lost: forget the calls in progress (judging them here too would judge them twice)."""
        if self.tracker.active_calls:
            log.info("%d calls in progress on %s left to the next owner", self.tracker.active_calls, self.node.shown)
        self.tracker = CallTracker(self._matcher)
        self.outbound = OutboundTracker.from_config(self._config)
        self._caught_up = False
        self.ready.clear()

    def _submit(self, record: CallRecord) -> None:
        """A judged call leaves the node under its key."""
        if self.name:
            record = dataclasses.replace(record, linkedid=node_key(record.linkedid, self.name), node=self.name)
        self._sink.enqueue(record)

    def _judged(self, records: list[CallRecord]) -> None:
        """Calls the tracker finished: to the writer, or (seen only in part, with CEL to complete them) to CEL."""
        for record in records:
            if self.cel is not None and not record.observed_from_start:
                self.cel.hold(record)
            else:
                self._submit(record)

    def _followed(self, linkedid: str) -> bool:
        """The AMI side still has this call: tracking it, or judged and waiting for the writer."""
        return self.tracker.follows(linkedid) or self._sink.waiting(node_key(linkedid, self.name))

    # The hot path: one call per AMI event, synchronous, no I/O.
    def _on_event(self, event: AmiMessage, received_at: float) -> None:
        self.last_event_at = received_at
        if self.problem is not None:  # another server's calls must not be keyed (and texted) as this one's
            return
        if finished := self.tracker.feed(event, received_at):
            self._judged(finished)
        if answered := self.outbound.feed(event, received_at):
            if self.name:
                answered = [dataclasses.replace(a, linkedid=node_key(a.linkedid, self.name)) for a in answered]
            self._sink.answered(answered)
        self.call_backs.feed(event)
        if event.get("Event") in DEVICE_EVENTS:  # after the tracker: calls never wait on (or fail with) devices
            self.devices.feed(event, received_at)

    async def _on_connected(self, client: AmiClient) -> None:
        if self.node.systemname is not None:
            self.problem = await wrong_server(client, self.node)
            if self.problem is not None:
                log.error("%s", self.problem)
                self._leave_calls()
                return
        asked = self.tracker.begin_snapshot()
        _, channels = await client.list_action("CoreShowChannels")
        self._judged(self.tracker.reconcile(channels, time.time(), asked=asked))
        self._caught_up = True
        if self.cel is not None:
            self.cel.connected()
        self.ready.set()
        log.info(
            "connected to %s; %d channels live, %d calls followed",
            self.node.shown,
            len(channels),
            self.tracker.active_calls,
        )
        await seed_devices(client, self.devices)

    def _on_disconnected(self, reason: str) -> None:
        self._caught_up = False
        self.tracker.disconnected()
        self.call_backs.disconnected()
        shown, active = self.node.shown, self.tracker.active_calls
        log.warning("lost the AMI connection to %s (%s); %d calls in progress", shown, reason, active)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            self._judged(self.tracker.tick(time.time()))


async def wrong_server(client: AmiClient, node: AsteriskNode) -> str | None:
    """Why the server reached is not `node` (its `systemname` differs), None when it is or cannot say: two nodes'
    addresses swapped would key each server's calls (and match its numbers) as the other's."""
    try:
        settings = await client.action("CoreSettings")
    except AmiActionError as exc:  # an AMI user without `system` or `reporting`: nothing to compare
        log.warning("%s: cannot read Asterisk's systemname (%s); not checked", node.shown, exc)
        return None
    found = settings.get("SystemName", "")
    if found == node.systemname:
        return None
    said = f"says it is {found!r}" if found else "has no systemname"
    return (
        f"{node.shown}: the Asterisk at {node.ami.host}:{node.ami.port} {said}, not {node.systemname!r}: "
        "its calls are not followed until asterisk.nodes points at the right server"
    )


def attach_routing(config: Config, nodes: Sequence[NodeLink]) -> list[RoutingService]:
    """An ARI router for each server after the first that has an `ari:` of its own (the first server's is run.py's,
    on `ari:`), run like the first's only while this instance owns that server's link. They are returned for the
    caller to stop (handing unanswered calls back to the dialplan)."""
    attached: list[RoutingService] = []
    if not RoutingService.wanted(config):
        return attached
    for node in nodes[1:]:
        if node.node.ari is None:
            continue
        node.routing = RoutingService(dataclasses.replace(config, ari=node.node.ari), node.devices)
        node.owned.append((node.task("routing"), node.routing.run))
        attached.append(node.routing)
    return attached


class CallBacksBySite:
    """ "Call back" with several Asterisk servers: sent through the server the caller's business rings on (its
    desks are there); a business on every server uses the first. What the pages need (web.callback.CallingBack)."""

    def __init__(self, nodes: Sequence[NodeLink], businesses: Sequence[Business]) -> None:
        self._nodes = tuple(nodes)
        by_name = {node.name: node for node in nodes}
        self._by_business = {b.name: by_name.get(b.node or "", nodes[0]) for b in businesses}

    def _node_of(self, business: str) -> NodeLink:
        return self._by_business.get(business, self._nodes[0])

    def phones_of(self, business: str) -> list[Phone]:
        return self._node_of(business).call_backs.phones_of(business)

    async def start(self, business: str, number: str, extension: str, user: str) -> tuple[CallBack, bool]:
        return await self._node_of(business).call_backs.start(business, number, extension, user)

    def get(self, call_back_id: str) -> CallBack | None:
        for node in self._nodes:
            if (found := node.call_backs.get(call_back_id)) is not None:
                return found
        return None
