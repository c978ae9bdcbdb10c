"""Which instance owns the Asterisk links: an advisory lock on a real PostgreSQL (tests/pg.py), two contenders.

Exactly one owner at a time; an owner whose lock connection is killed (or stops answering) stops its links at once
and stands by; the other takes over within 5 s, and only after the old owner's links are stopped."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.service import leadership
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.leadership import Leadership, Role, SharedLinks, SingleBox, lock_key, postgresql_connect
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.health import AmiHealth, HealthStatus
from tests.pg import Cluster
from tests.servers import free_port
from tests.test_router import bridged, originated
from tests.test_run_routing import AMI_SECRET, DID, routed_config
from tests.test_sim_ari import PASSWORD
from tests.test_textback_e2e import TRACES, salon_config
from tests.waiting import wait_until

TAKEOVER_LIMIT_S = 5.0


@dataclass
class Links:
    """A stand-in for the AMI observer and router: when each instance's links ran, and whether two ever overlapped."""

    running: set[str] = field(default_factory=set)
    overlaps: int = 0
    started: dict[str, list[float]] = field(default_factory=dict)
    stopped: dict[str, list[float]] = field(default_factory=dict)

    def lead(self, name: str) -> Any:
        async def run() -> None:
            if self.running:
                self.overlaps += 1
            self.running.add(name)
            self.started.setdefault(name, []).append(time.monotonic())
            try:
                await asyncio.Event().wait()  # until cancelled: the links run until the lock is lost
            finally:
                self.running.discard(name)
                self.stopped.setdefault(name, []).append(time.monotonic())

        return run


@contextlib.asynccontextmanager
async def contenders(url: str, key: int, links: Links, *names: str) -> AsyncIterator[dict[str, Leadership]]:
    elected = {name: Leadership(postgresql_connect(url, None), key, name=name) for name in names}
    tasks = [asyncio.create_task(e.run(links.lead(name))) for name, e in elected.items()]
    try:
        yield elected
    finally:
        for e in elected.values():
            await e.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def lock_holder(url: str, key: int) -> int | None:
    """The backend pid holding the advisory lock `key` (pg_locks splits a bigint key in two oids)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s::oid"
            " AND objid = %s::oid AND objsubid = 1",
            (unsigned >> 32, unsigned & 0xFFFF_FFFF),
        ).fetchone()
    return None if row is None else int(row[0])


def terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def fresh_key() -> int:
    return lock_key(f"test:{uuid.uuid4()}")


async def test_exactly_one_owner_and_a_takeover_within_5_s_when_its_connection_is_killed(pg_cluster: Cluster) -> None:
    url, key, links = pg_cluster.url("callbuddy_tests"), fresh_key(), Links()
    async with contenders(url, key, links, "a", "b") as elected:
        await wait_until(lambda: len(links.running) == 1, 10)
        (first,) = links.running
        second = "b" if first == "a" else "a"
        await asyncio.sleep(1.5)  # the standby keeps asking, and never gets it
        assert elected[first].role is Role.OWNER and elected[second].role is Role.STANDBY
        assert links.running == {first} and second not in links.started
        holder = lock_holder(url, key)
        assert holder is not None

        killed = time.monotonic()
        terminate(url, holder)
        await wait_until(lambda: first not in links.running, 3)
        # It says so as it stops (the role is set once its links' task has ended: one loop turn after).
        await wait_until(lambda: elected[first].role is Role.STANDBY, 1)
        assert elected[first].role is Role.STANDBY
        await wait_until(lambda: second in links.running, TAKEOVER_LIMIT_S)
        takeover = links.started[second][0] - killed
        print(f"takeover {takeover:.2f} s")
        assert takeover < TAKEOVER_LIMIT_S
        assert links.stopped[first][0] < links.started[second][0] and links.overlaps == 0

        await asyncio.sleep(2.0)  # the old owner stands by again, and does not take the lock back
        assert links.running == {second} and len(links.started[first]) == 1
        assert elected[first].role is Role.STANDBY and elected[second].role is Role.OWNER
        assert elected[second].owner_since is not None


async def test_the_new_owner_waits_out_the_grace_before_starting_its_links(pg_cluster: Cluster) -> None:
    """The server frees the lock when it ends the old session, which the old owner may not have noticed yet."""
    url, key, links = pg_cluster.url("callbuddy_tests"), fresh_key(), Links()
    async with contenders(url, key, links, "a"):
        began = time.monotonic()
        await wait_until(lambda: "a" in links.running, 10)
        assert links.started["a"][0] - began >= leadership.TAKEOVER_GRACE_S
    assert leadership.TAKEOVER_GRACE_S > leadership.CHECK_S + leadership.CHECK_TIMEOUT_S + leadership.LEAD_STOP_S


async def test_the_owner_stops_its_links_when_the_database_stops_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock connection that hangs (a network cut: no error, no answer) is a lost lock within the check's time;
    a new connection that hangs the same way is given up too, and tried again, until the database answers."""
    monkeypatch.setattr(leadership, "CONNECT_TIMEOUT_S", 0.2)

    class Hanging:
        def __init__(self) -> None:
            self.hang = False

        async def execute(self, query: Any, params: Any = None, /) -> Any:
            while self.hang:  # no answer, no error, for as long as the cut lasts
                await asyncio.sleep(0.01)
            return self

        async def fetchone(self) -> tuple[bool]:
            return (True,)

        async def close(self) -> None:
            return None

    conn = Hanging()
    connects = 0

    async def connect() -> Hanging:
        nonlocal connects
        connects += 1
        return conn

    links = Links()
    elected = Leadership(connect, 1, name="a", grace_s=0.1)
    task = asyncio.create_task(elected.run(links.lead("a")))
    try:
        await wait_until(lambda: "a" in links.running, 5)
        conn.hang, cut = True, time.monotonic()
        await wait_until(lambda: "a" not in links.running, 5)
        assert time.monotonic() - cut <= leadership.CHECK_S + leadership.CHECK_TIMEOUT_S + 0.3
        assert elected.role is Role.STANDBY and elected.problem == "lock connection: TimeoutError"
        await wait_until(lambda: connects >= 3, 5)  # it stands by: new connections, asking again
        conn.hang = False
        await wait_until(lambda: elected.problem is None, 5)  # the database answers again
    finally:
        await elected.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_links_that_end_on_stop_release_the_lock(pg_cluster: Cluster) -> None:
    url, key = pg_cluster.url("callbuddy_tests"), fresh_key()
    elected = Leadership(postgresql_connect(url, None), key, name="a", grace_s=0.0)
    ran = asyncio.Event()

    async def lead() -> None:
        ran.set()  # and return: the service was asked to stop

    await asyncio.wait_for(elected.run(lead), 10)
    assert ran.is_set() and elected.role is Role.STANDBY
    assert lock_holder(url, key) is None


async def test_a_single_box_always_owns_and_runs_its_links() -> None:
    box, ran = SingleBox(), asyncio.Event()

    async def lead() -> None:
        ran.set()

    await box.run(lead)
    assert ran.is_set() and box.role is Role.OWNER and not box.elected


@pytest.mark.parametrize("role", ["standby", "owner"])
def test_a_standby_is_healthy_without_asterisk_links_and_an_owner_is_not(role: str) -> None:
    down = AmiHealth(False, "not connected yet")
    status = HealthStatus(down, ari=down, role=role, owner_since=None if role == "standby" else 1.0e9)
    assert status.ok is (role == "standby")
    assert status.to_json()["leadership"] == {"role": role, "owner_since": status.owner_since, "problem": None}
    # A standby that cannot reach the database could not take over: with every instance so, nobody follows Asterisk.
    cut_off = dataclasses.replace(status, leadership_problem="lock connection: OperationalError: refused")
    assert not cut_off.ok and cut_off.to_json()["leadership"]["problem"] == cut_off.leadership_problem
    assert "leadership" not in HealthStatus(AmiHealth(True)).to_json()  # a single box: as before


def test_the_lock_key_is_stable_and_per_link() -> None:
    assert lock_key("asterisk:pbx1:5038") == lock_key("asterisk:pbx1:5038")
    assert lock_key("asterisk:pbx1:5038") != lock_key("asterisk:pbx2:5038")
    assert -(2**63) <= lock_key("asterisk:pbx1:5038") < 2**63


# ---- the service's links follow the lock ----------------------------------------------------------------------------


@dataclass
class Router:
    """A stand-in for the ARI router: whether the AMI link was still up when it stopped (the router goes first)."""

    service: CallService | None = None
    runs: int = 0
    stopped_with_ami_up: list[bool] = field(default_factory=list)

    async def run(self) -> None:
        self.runs += 1
        try:
            await asyncio.Event().wait()
        finally:
            assert self.service is not None
            self.stopped_with_ami_up.append(self.service.ami.connected)


async def test_the_service_runs_its_links_only_while_it_holds_the_lock(pg_cluster: Cluster, tmp_path: Path) -> None:
    """Two CallServices on one database and one Asterisk: only the owner logs in to AMI and runs its router; the
    owner whose lock connection is killed stops its router, then its AMI link, and stands by; the other logs in."""
    url, key = pg_cluster.fresh_url(), fresh_key()
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    config = salon_config(server.port, tmp_path / "unused.sqlite3")
    config = dataclasses.replace(
        config, asterisk=dataclasses.replace(config.asterisk, reconnect_min_s=0.05, reconnect_max_s=0.1)
    )
    stores = [await CallStore.open_url(url) for _ in range(2)]
    services, routers, tasks = [], [], []
    most_clients = 0

    async def count_clients() -> None:
        nonlocal most_clients
        while True:
            most_clients = max(most_clients, server.clients)
            await asyncio.sleep(0.005)

    counting = asyncio.create_task(count_clients())
    try:
        for index, store in enumerate(stores):
            service = CallService(config, store)
            service.leadership = Leadership(postgresql_connect(url, None), key, name=f"svc{index}")
            router = Router(service)
            service.owned.append(("routing", router.run))
            services.append(service)
            routers.append(router)
            tasks.append(asyncio.create_task(service.run()))
        await wait_until(lambda: server.logins == 1 and any(s.ami.connected for s in services), 10)
        owner = next(i for i, s in enumerate(services) if s.ami.connected)
        other = 1 - owner
        await asyncio.sleep(1.0)
        assert routers[owner].runs == 1 and routers[other].runs == 0 and server.clients == 1
        trace = next(t for t in TRACES if t.name.startswith("01-"))
        await server.replay_raw(trace.raw[: len(trace.raw) // 2])  # a call rings, followed by the owner
        await wait_until(lambda: services[owner].tracker.active_calls == 1, 3)

        holder = lock_holder(url, key)
        assert holder is not None
        terminate(url, holder)
        await wait_until(lambda: not services[owner].ami.connected, 3)
        assert routers[owner].stopped_with_ami_up == [True]  # the router stopped first
        assert services[owner].tracker.active_calls == 0  # its calls are the next owner's to judge, not its own
        assert services[owner].leadership.role is Role.STANDBY
        await wait_until(lambda: services[other].ami.connected, TAKEOVER_LIMIT_S)
        assert server.logins == 2 and routers[other].runs == 1

        # And back: the first one's (re-used) AMI client and router run again when it owns again.
        holder = lock_holder(url, key)
        assert holder is not None
        terminate(url, holder)
        await wait_until(lambda: services[owner].ami.connected, 2 * TAKEOVER_LIMIT_S)
        assert routers[owner].runs == 2 and server.logins == 3 and most_clients == 1
    finally:
        counting.cancel()
        for service in services:
            await service.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for store in stores:
            await store.close()
        await server.stop()


async def test_the_ari_router_runs_only_on_the_owner_and_hands_its_calls_back_when_it_loses(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    """The routed number's calls: only the owner has an ARI WebSocket; the owner that loses the lock hands the call it
    was ringing back to the dialplan (fail-open) before it lets go, and the next owner routes the next call."""
    url, key = pg_cluster.fresh_url(), fresh_key()
    async with SimulatedAmiServer(secret=AMI_SECRET) as ami, SimulatedAriServer(password=PASSWORD) as ari:
        config = routed_config(tmp_path, ami, ari, free_port())
        stores = [await CallStore.open_url(url) for _ in range(2)]
        services, tasks = [], []
        try:
            for index, store in enumerate(stores):
                service = CallService(config, store)
                service.leadership = Leadership(postgresql_connect(url, None), key, name=f"svc{index}")
                routing = RoutingService(config, service.devices)
                service.owned.append(("routing", routing.run))
                services.append((service, routing))
                tasks.append(asyncio.create_task(service.run()))
            await wait_until(lambda: any(routing.ready for _, routing in services), 10)
            owner = next(i for i, (_, routing) in enumerate(services) if routing.ready)
            other = 1 - owner
            await asyncio.sleep(1.0)
            assert ari.open_websockets == 1 and ami.clients == 1 and not services[other][1].connected

            ari.phone_never_answers("100")
            ari.phone_never_answers("101")
            ringing = ari.inbound_call(DID)
            await wait_until(lambda: len(originated(ari)) == 2, 5)
            holder = lock_holder(url, key)
            assert holder is not None
            terminate(url, holder)
            await wait_until(lambda: ari.continued == [(ringing, {})], 3)  # back to the dialplan, which rings
            await wait_until(lambda: services[other][1].ready, TAKEOVER_LIMIT_S)
            assert ari.open_websockets == 1 and not services[owner][1].connected

            ari.phone_answers_after("101", 0.1)
            caller = ari.inbound_call(DID, caller_number="15553334444")
            await wait_until(lambda: any(caller in bridge for bridge in bridged(ari)), 5)  # the new owner routes
        finally:
            for service, routing in services:
                await service.stop()
                await routing.stop()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            for store in stores:
                await store.close()


# ---- holding on while the database is away ---------------------------------------------------------------------


@dataclass
class Routed(Links):
    """Links whose router (what must never run twice) stops on `hold` and starts again on `resume`."""

    routers: set[str] = field(default_factory=set)
    router_overlaps: int = 0
    holds: int = 0
    resumes: int = 0

    def route(self, name: str) -> None:
        if self.routers - {name}:
            self.router_overlaps += 1
        self.routers.add(name)

    def lead(self, name: str) -> Any:
        observe = super().lead(name)

        async def run() -> None:
            self.route(name)
            try:
                await observe()
            finally:
                self.routers.discard(name)

        return run

    def hooks(self, name: str) -> dict[str, Any]:
        async def hold() -> None:
            self.holds += 1
            self.routers.discard(name)

        async def resume() -> None:
            self.resumes += 1
            self.route(name)

        return {"hold": hold, "resume": resume}


def cuttable(url: str) -> tuple[Any, list[bool]]:
    """A lock connection maker that cannot reach the database while `cut[0]` is True."""
    cut = [False]
    real = postgresql_connect(url, None)

    async def connect() -> Any:
        if cut[0]:
            raise OSError("connection refused (the database is away)")
        return await real()

    return connect, cut


async def test_an_owner_cut_off_from_the_database_follows_on_without_its_router_until_it_is_back(
    pg_cluster: Cluster,
) -> None:
    """Nobody else can take the lock while the database is away: the owner keeps observing (its calls wait for the
    database), only its router stops; once the database answers it takes the lock back and routes again."""
    url, key, links = pg_cluster.url("callbuddy_tests"), fresh_key(), Routed()
    connect, cut = cuttable(url)
    elected = Leadership(connect, key, name="a", grace_s=0.5)
    task = asyncio.create_task(elected.run(links.lead("a"), **links.hooks("a")))
    try:
        await wait_until(lambda: links.routers == {"a"}, 10)
        cut[0] = True
        holder = lock_holder(url, key)
        assert holder is not None
        terminate(url, holder)  # the session dies with the outage
        await wait_until(lambda: elected.role is Role.HOLDING, 5)
        assert links.running == {"a"} and links.routers == set() and links.holds == 1
        await wait_until(lambda: "database is away" in (elected.problem or ""), 5)  # trying again, and saying why
        assert elected.role is Role.HOLDING
        await asyncio.sleep(1.5)
        assert links.running == {"a"} and len(links.started["a"]) == 1  # observing all along
        cut[0] = False
        await wait_until(lambda: links.routers == {"a"} and elected.role is Role.OWNER, 10)
        assert links.resumes == 1 and len(links.started["a"]) == 1 and "a" not in links.stopped
        assert lock_holder(url, key) is not None and elected.problem is None
    finally:
        await elected.close()
        task.cancel()  # as the service's stop ends its links (here: a stand-in that runs until cancelled)
        await asyncio.gather(task, return_exceptions=True)
    assert "a" not in links.running


async def test_an_owner_cut_off_while_another_takes_over_stops_once_it_sees_the_lock_taken(
    pg_cluster: Cluster,
) -> None:
    """A network cut between one owner and the database: the other instance takes over (after its grace, with the
    cut owner's router already stopped); the cut owner observes on meanwhile (its calls are stored once: keys), and
    stops as soon as it reaches the database and finds the lock taken. Two routers never run at once."""
    url, key, links = pg_cluster.url("callbuddy_tests"), fresh_key(), Routed()
    connect_a, cut_a = cuttable(url)
    a = Leadership(connect_a, key, name="a")
    a_task = asyncio.create_task(a.run(links.lead("a"), **links.hooks("a")))
    await wait_until(lambda: links.routers == {"a"}, 10)
    b = Leadership(postgresql_connect(url, None), key, name="b")
    b_task = asyncio.create_task(b.run(links.lead("b"), **links.hooks("b")))
    try:
        await asyncio.sleep(1.0)
        assert b.role is Role.STANDBY and "b" not in links.started
        cut_a[0] = True
        holder = lock_holder(url, key)
        assert holder is not None
        terminate(url, holder)
        await wait_until(lambda: links.routers == {"b"}, TAKEOVER_LIMIT_S + 1)
        assert a.role is Role.HOLDING and links.running == {"a", "b"}  # both observe: harmless, keys are unique
        cut_a[0] = False
        await wait_until(lambda: "a" not in links.running, 5)
        assert a.role is Role.STANDBY and b.role is Role.OWNER and links.routers == {"b"}
        assert links.router_overlaps == 0 and len(links.started["a"]) == 1
        await asyncio.sleep(1.5)
        assert links.running == {"b"} and links.routers == {"b"}  # a stands by, and does not take it back
    finally:
        for elected in (a, b):
            await elected.close()
        for task in (a_task, b_task):
            task.cancel()
        await asyncio.gather(a_task, b_task, return_exceptions=True)


async def test_a_service_cut_off_from_its_database_keeps_its_ami_link_and_calls_and_stops_only_its_router(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    """The owner's database goes away: the router stops at once (its calls go back to the dialplan), the AMI link
    stays logged in and the call ringing meanwhile is followed to its end; once the database answers, the same
    instance owns again and its router runs again, without a second AMI login."""
    url, key = pg_cluster.fresh_url(), fresh_key()
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    config = salon_config(server.port, tmp_path / "unused.sqlite3")
    store = await CallStore.open_url(url)
    connect, cut = cuttable(url)
    calls: list[Any] = []
    service = CallService(config, store, on_call=calls.append)
    service.leadership = Leadership(connect, key, name="svc")
    router = Router(service)
    service.owned.append(("routing", router.run))
    alerts_started: list[float] = []

    async def alerts() -> None:  # a stand-in for the alert monitor, which goes on to say the database is away
        alerts_started.append(time.monotonic())
        await asyncio.Event().wait()

    service.owned.append(("alerts", alerts))
    service.first.hold_through.add("alerts")
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.ami.connected and router.runs == 1, 10)
        trace = next(t for t in TRACES if t.name.startswith("01-"))
        half = len(trace.raw) // 2
        await server.replay_raw(trace.raw[:half])
        await wait_until(lambda: service.tracker.active_calls == 1, 3)
        cut[0] = True
        holder = lock_holder(url, key)
        assert holder is not None
        terminate(url, holder)
        await wait_until(lambda: service.leadership.role is Role.HOLDING, 3)
        assert router.stopped_with_ami_up == [True] and service.ami.connected
        assert service.supervisor.running("alerts") and len(alerts_started) == 1
        await server.replay_raw(trace.raw[half:])  # the call ends while the database is away
        await wait_until(lambda: service.tracker.active_calls == 0, 3)
        cut[0] = False
        await wait_until(lambda: router.runs == 2 and service.leadership.role is Role.OWNER, 10)
        await wait_until(lambda: len(calls) == 1, 5)
        assert server.logins == 1 and calls[0].observed_from_start  # followed whole, on one login
        assert len(alerts_started) == 1  # ran on through the outage, not started a second time
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await store.close()
        await server.stop()


async def test_instances_started_together_share_the_servers_links(pg_cluster: Cluster) -> None:
    """Six Asterisk servers, two instances started 0.3 s apart: each ends up owning some of the links (each its own
    writer), rather than the first taking all six; every link has exactly one owner."""
    url, links = pg_cluster.url("callbuddy_tests"), Links()
    keys = [fresh_key() for _ in range(6)]
    elected: dict[str, list[Leadership]] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        for instance in ("a", "b"):
            shared = SharedLinks()
            elected[instance] = [
                Leadership(postgresql_connect(url, None), key, name=f"{instance}{n}", grace_s=0.1, shared=shared)
                for n, key in enumerate(keys)
            ]
            tasks += [asyncio.create_task(e.run(links.lead(f"{instance}{n}"))) for n, e in enumerate(elected[instance])]
            await asyncio.sleep(0.3)
        await wait_until(lambda: len(links.running) == 6, 15)
        owned = {instance: sum(e.role is Role.OWNER for e in found) for instance, found in elected.items()}
        assert min(owned.values()) >= 2, owned
        assert all(lock_holder(url, key) is not None for key in keys)
        assert {name[1:] for name in links.running} == {str(n) for n in range(6)}  # one owner per link
    finally:
        for found in elected.values():
            for e in found:
                await e.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
