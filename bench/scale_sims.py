"""The simulators' process of bench/scale.py: N simulated Asterisk servers (one AMI port each) and one simulated
SMSC, in one asyncio loop, in one process of their own (the service instances and PostgreSQL run in others).

Every node places missed calls (the generated scenarios of sim/scenario_factory: ring-all with nobody answering,
busy, caller hanging up while it rings, voicemail, no phone registered, queue abandoned, hunt line with nobody
answering) at `rate / nodes` calls/s, the nodes interleaved so the total is `rate` calls/s, evenly spaced. Each call
has a caller number of its own across the whole run. Each node is an Asterisk of its own: it hands out Uniqueids and
channel names from its own counters, started alike (as freshly booted servers), so call k of every node has the same
Linkedid: the keying by (node, Linkedid) must tell them apart.

A call's events are written as Asterisk writes them: the events of one moment in one write, with their Timestamp
set to the moment they are written. The hang-up time of a call is when the write holding the caller's Hangup
(Uniqueid == Linkedid) went out; a text's arrival is when the SMSC took its submit_sm (`SubmitRecord.at`, after the
simulator's front door and smpp34 handed it over). Both are read off this process's wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer, SimulatedPjsip
from callbuddy_pbx.sim.scenario_factory import ScenarioFactory
from callbuddy_pbx.sim.scenario_model import (
    HUNT_DID,
    MAIN_DID,
    QUEUE_DID,
    VOICEMAIL_DID,
    Scenario,
)
from callbuddy_pbx.sim.smsc import SimulatedSmsc

AMI_USER, AMI_SECRET = "callbuddy", "scale-secret"
SMSC_USER, SMSC_PASSWORD = "callbuddy", "smpp-pw"
BUSINESS_NUMBERS = (MAIN_DID, VOICEMAIL_DID, HUNT_DID, QUEUE_DID)  # every number the scenarios below dial
AREA_CODES = ("212", "312", "415", "617", "202", "718", "305", "512")
SAME_MOMENT_S = 0.002  # events of one call closer than this go out in one write
SETTLE_S = 2.0  # after the last owed text: time for a wrong second one
READY_TIMEOUT_S = 120.0


def caller(n: int) -> str:
    """The n-th caller's number: a valid US number (FIXED_LINE_OR_MOBILE), distinct for every n < 64 million."""
    area, rest = AREA_CODES[n % len(AREA_CODES)], n // len(AREA_CODES)
    return f"1{area}{200 + rest // 10_000}{rest % 10_000:04d}"


@dataclass(frozen=True)
class SimPlan:
    nodes: int
    rate: float  # missed calls per second, all nodes together
    calls: int  # in all
    first_caller: int  # callers are numbered from here (distinct across the setups of a run)
    instances: int  # SMPP binds to wait for before the first call
    drain_s: float  # after the last call: how long owed texts may take
    seed: int = 1


@dataclass
class SimResult:
    placed: int = 0
    hung_up: dict[str, float] = field(default_factory=dict)  # caller (E.164) -> wall time of its Hangup's write
    node_of: dict[str, str] = field(default_factory=dict)  # caller -> node name
    texts: list[tuple[str, float]] = field(default_factory=list)  # (destination, arrival) per accepted text
    shared_linkedids: int = 0  # Linkedids placed by more than one node
    first_start: float = 0.0  # wall time the first call started
    last_start: float = 0.0
    late_ms: list[float] = field(default_factory=list)  # how late the simulator started each call
    cpu_s: float = 0.0  # this process's CPU time during the calls and the drain
    drained_at: float = 0.0  # wall time the drain ended: every owed text had arrived, or drain_s ran out


def node_name(index: int) -> str:
    return f"site-{index + 1:02d}"


def _missed(factory: ScenarioFactory, rng: random.Random, number: str, start: float) -> Scenario:
    kind = rng.randrange(7)
    if kind == 0:
        return factory.ring_all_no_answer(number, timeout=rng.choice((2, 3)), start=start)
    if kind == 1:
        return factory.busy(number, start=start)
    if kind == 2:
        return factory.caller_hangs_up_while_ringing(number, after=rng.uniform(1.0, 3.0), start=start)
    if kind == 3:
        return factory.voicemail(number, timeout=2, message_s=rng.uniform(1.0, 3.0), start=start)
    if kind == 4:
        return factory.no_device_registered(number, start=start)
    if kind == 5:
        return factory.queue_abandoned(number, after=rng.uniform(1.0, 3.0), start=start)
    return factory.in_order_nobody_answers(number, step_timeout=1, start=start)


@dataclass(frozen=True)
class PlannedCall:
    at: float  # seconds after the first call
    node: int
    scenario: Scenario


def plan_calls(plan: SimPlan, wall_start: float) -> list[PlannedCall]:
    """Every call of the run, in start order. Node i's k-th call is the run's call k * nodes + i."""
    per_node = -(-plan.calls // plan.nodes)
    factories = [ScenarioFactory(start_time=wall_start, seed=plan.seed) for _ in range(plan.nodes)]
    kinds = [random.Random(plan.seed) for _ in range(plan.nodes)]  # every node draws the same kinds and timings
    calls: list[PlannedCall] = []
    for k in range(per_node):
        for node in range(plan.nodes):
            n = k * plan.nodes + node
            if n >= plan.calls:
                break
            # Each Asterisk's own clock (Uniqueids start with its seconds): call k of every node starts at the same
            # time, from the same counters, so it has the same Linkedid.
            start = wall_start + k * plan.nodes / plan.rate
            scenario = _missed(factories[node], kinds[node], caller(plan.first_caller + n), start)
            calls.append(PlannedCall(n / plan.rate, node, scenario))
    return calls


def _moments(scenario: Scenario) -> list[tuple[float, list[AmiMessage]]]:
    """The call's events grouped into writes: (offset from the call's start, events)."""
    groups: list[tuple[float, list[AmiMessage]]] = []
    for event in scenario.events:
        if groups and event.at - groups[-1][0] < SAME_MOMENT_S:
            groups[-1][1].append(event.message)
        else:
            groups.append((event.at, [event.message]))
    return groups


async def _play(ami: SimulatedAmiServer, scenario: Scenario, began: float, hung_up: Callable[[float], None]) -> None:
    loop = asyncio.get_running_loop()
    for offset, messages in _moments(scenario):
        delay = began + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.time()
        batch = [{**m, "Timestamp": f"{now:.6f}"} if "Timestamp" in m else m for m in messages]
        if any(m.get("Event") == "Hangup" and m.get("Uniqueid") == scenario.linkedid for m in messages):
            hung_up(now)
        await ami.broadcast(batch)


async def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"scale simulators: timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def simulate(plan: SimPlan, setup: Any, go: Any, stop: Any, results: Any) -> None:
    """Start the servers, say their ports on `setup`, place the calls once `go` is set and the service is logged in
    to every node and bound to the SMSC, wait for the texts and put what was seen on `results` (an exception's text
    on failure); then hold the servers until `stop` is set (the bench stops the service first)."""
    servers = [SimulatedAmiServer(username=AMI_USER, secret=AMI_SECRET) for _ in range(plan.nodes)]
    smsc = SimulatedSmsc(system_id=SMSC_USER, password=SMSC_PASSWORD, receipt_delay_s=0.05)
    for server in servers:
        server.pjsip = SimulatedPjsip()  # res_pjsip loaded, no phones: the service asks, finds none, goes on
        await server.start()
    await smsc.start()
    try:
        setup.put(([server.port for server in servers], smsc.port))
        results.put(await _run(plan, servers, smsc, go))
    except Exception as exc:  # reported to the bench, which says so and fails
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(TimeoutError):
            await _wait(lambda: bool(stop.is_set()), 60.0, "the bench to stop the service")
        await smsc.stop()
        for server in servers:
            await server.stop()


async def _run(plan: SimPlan, servers: list[SimulatedAmiServer], smsc: SimulatedSmsc, go: Any) -> SimResult:
    result = SimResult()
    calls = plan_calls(plan, time.time())
    by_linkedid: dict[str, set[int]] = {}
    for call in calls:
        by_linkedid.setdefault(call.scenario.linkedid, set()).add(call.node)
    result.shared_linkedids = sum(len(nodes) > 1 for nodes in by_linkedid.values())

    def ready() -> bool:
        logged_in = all(server.clients >= 1 for server in servers)
        return bool(go.is_set()) and logged_in and smsc.bound_sessions >= plan.instances

    await _wait(ready, READY_TIMEOUT_S, "the service to log in to every node and bind to the SMSC")
    cpu_before = time.process_time()
    await _place(servers, calls, result)
    owed = set(result.node_of)  # every caller placed

    def texts() -> list[tuple[str, float]]:  # a long text counts once, by its first part
        return [(r.destination, r.at) for r in smsc.accepted if r.part is None or r.part[2] == 1]

    with contextlib.suppress(TimeoutError):
        await _wait(lambda: owed <= {number for number, _ in texts()}, plan.drain_s, "the texts")
    result.drained_at = time.time()
    await asyncio.sleep(SETTLE_S)
    result.cpu_s = time.process_time() - cpu_before
    result.texts = texts()
    return result


async def _place(servers: list[SimulatedAmiServer], calls: list[PlannedCall], result: SimResult) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time() + 0.2
    tasks: set[asyncio.Task[None]] = set()
    for call in calls:
        delay = began + call.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        result.late_ms.append(max(0.0, -delay) * 1000)
        now = time.time()
        result.first_start = result.first_start or now
        result.last_start = now
        number = "+" + str(call.scenario.caller)
        result.node_of[number] = node_name(call.node)

        def hung_up(at: float, number: str = number) -> None:
            result.hung_up[number] = at

        task = asyncio.create_task(_play(servers[call.node], call.scenario, loop.time(), hung_up))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        result.placed += 1
    while tasks:
        await asyncio.gather(*list(tasks))


def simulator_process(plan: SimPlan, setup: Any, go: Any, stop: Any, results: Any) -> None:
    """The process's entry point (multiprocessing, spawn)."""
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(simulate(plan, setup, go, stop, results))
