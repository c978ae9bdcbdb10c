"""How fast the router gets phones ringing: --calls concurrent inbound calls into the simulated ARI, routed by the real
RoutingService (AriClient over HTTP + WebSocket, device registry, ring plans).

The simulator runs in its own process, as Asterisk would: its work (channels, events, JSON) does not share the
service's event loop. A small control server beside it (bench-only) places the calls and reports what it saw.

Per call, from the StasisStart arriving (AriClient's receive time) to (a) the ring plan decided and (b) the first
originate request handed to the HTTP client (the router's timing hook), and, for reference, (c) to the simulator
answering that originate (the request went out, was handled and is recorded there; includes the simulator's own work
under the burst). Each round: --calls callers ring at once, each to its own number whose two desks ring together
(ring_all); one desk answers after --answer-s and the call is bridged; then every caller hangs up. A first burst
right after start-up is reported on its own: the HTTP client then opens a connection per request (the pool holds one
from start-up), and setting up 100 connections at once delays the later calls by a few ms; the final line is the
--rounds bursts after it. Target: p99 of (a) and (b) under 10 ms.

Once the service is up, the long-lived start-up heap is frozen (`gc.freeze()`, as `callbuddy-pbx run` should do
before serving): without it a full (generation 2) collection, which walks that heap (phonenumbers' metadata, aiohttp,
the configuration) and took 15-25 ms here, now and then lands in a burst and alone decides the p99. `--no-gc-freeze`
shows that; the longest collection pause seen in this process is printed either way.

    python bench/routing.py [--calls 50] [--rounds 10] [--answer-s 0.1] [--no-gc-freeze]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import statistics
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.asterisk import AriConfig
from callbuddy_pbx.config.pbx import NoAnswer, PbxConfig, Phone, RingGroup
from callbuddy_pbx.routing.router import RouteTiming
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.sim.ari_server import SimulatedAriServer

PASSWORD = "bench-secret"


def did(n: int) -> str:
    return f"1555000{2000 + n:04d}"


def desks(n: int) -> tuple[str, str]:
    return str(200 + 2 * n), str(201 + 2 * n)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- the simulator's process -------------------------------------------------------------------------------------


def simulator_process(calls: int, answer_s: float, ports: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve_simulator(calls, answer_s, ports))


async def serve_simulator(calls: int, answer_s: float, ports: Any) -> None:
    sim = SimulatedAriServer(password=PASSWORD)
    await sim.start()
    for n in range(calls):
        for desk in desks(n):
            sim.pbx.add_endpoint(desk)
            sim.register(desk)
        sim.phone_answers_after(desks(n)[1], answer_s)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    async def burst(request: web.Request) -> web.Response:
        sim.requests.clear()
        callers = [sim.inbound_call(did(n), f"1555{3000000 + n:07d}") for n in range(calls)]
        return web.json_response(callers)

    async def hang_up(request: web.Request) -> web.Response:
        for caller in await request.json():
            if sim.channel(caller) is not None:
                sim.caller_hangs_up(caller)
        return web.json_response(None)

    async def state(request: web.Request) -> web.Response:
        bridged = sum(len(bridge.channel_ids) == 2 for bridge in sim.pbx.bridges.values())
        return web.json_response(
            {"channels": len(sim.pbx.channels), "bridges": len(sim.pbx.bridges), "bridged": bridged}
        )

    async def originates(request: web.Request) -> web.Response:
        wall = time.time() - loop.time()
        seen = [
            (r.query["originator"], r.at + wall)
            for r in sim.requests
            if r.method == "POST" and r.path == "/ari/channels" and "originator" in r.query
        ]
        return web.json_response(seen)

    async def stop(request: web.Request) -> web.Response:
        done.set()
        return web.json_response(None)

    control = web.Application()
    control.add_routes(
        [
            web.post("/burst", burst),
            web.post("/hangup", hang_up),
            web.get("/state", state),
            web.get("/originates", originates),
            web.post("/stop", stop),
        ]
    )
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    control_port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    ports.put((sim.port, control_port))
    await done.wait()
    await runner.cleanup()
    await sim.stop()


# -- the service's side ------------------------------------------------------------------------------------------


async def wait_until(check: Callable[[], Any], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark stalled")
        await asyncio.sleep(0.01)


class GcPauses:
    """The longest garbage collection pause per generation, from gc.callbacks."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._observe)

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.longest[generation] = max(self.longest[generation], (time.perf_counter() - self._started) * 1000)


Samples = dict[str, list[float]]  # metric -> milliseconds, one per call
METRICS = {
    "decide": "StasisStart -> plan decided",
    "originate": "StasisStart -> first originate sent",
    "handled": "StasisStart -> first originate handled by the simulator",
}


async def main(
    calls: int, rounds: int, answer_s: float, sim_port: int, control_port: int, *, freeze: bool = True
) -> None:
    phones = [Phone(desk, f"Desk {desk}", "Bench") for n in range(calls) for desk in desks(n)]
    groups = [
        RingGroup("+" + did(n), desks(n), "ring_all", 20, 60, NoAnswer("hangup"), routing="callbuddy")
        for n in range(calls)
    ]
    config = Config(
        pbx=PbxConfig(phones=tuple(phones), ring_groups=tuple(groups)),
        ari=AriConfig(url=f"http://127.0.0.1:{sim_port}", password=PASSWORD, reconnect_min_s=0.05),
    )
    timings: list[RouteTiming] = []
    service = RoutingService(config, DeviceRegistry.from_config(config), on_timing=timings.append)
    runner = asyncio.create_task(service.run())
    control = f"http://127.0.0.1:{control_port}"
    cold: Samples = {metric: [] for metric in METRICS}
    warm: Samples = {metric: [] for metric in METRICS}
    async with aiohttp.ClientSession() as http:

        async def ask(method: str, path: str, body: Any = None) -> Any:
            async with http.request(method, control + path, json=body) as response:
                return await response.json()

        async def ready() -> bool:
            return service.ready

        async def all_bridged() -> bool:
            return len(timings) == calls and (await ask("GET", "/state"))["bridged"] == calls

        async def all_gone() -> bool:
            return service.routes_active == 0 and (await ask("GET", "/state"))["channels"] == 0

        await wait_until(ready)
        if freeze:
            gc.freeze()
        pauses = GcPauses()
        for round_number in range(rounds + 1):
            timings.clear()
            callers = await ask("POST", "/burst")
            await wait_until(all_bridged)
            first_seen: dict[str, float] = {}
            for originator, at in await ask("GET", "/originates"):
                first_seen.setdefault(originator, at)
            samples = cold if round_number == 0 else warm
            for timing in timings:
                assert timing.originate_at is not None
                samples["decide"].append((timing.decided_at - timing.received_at) * 1000)
                samples["originate"].append((timing.originate_at - timing.received_at) * 1000)
                samples["handled"].append((first_seen[timing.caller_id] - timing.received_at) * 1000)
            await ask("POST", "/hangup", callers)
            await wait_until(all_gone)
        await service.stop()
        await runner
        await ask("POST", "/stop")

    print(f"{calls} concurrent inbound calls per burst, 2 desks each (ring_all), every call answered and bridged")
    frozen = "after gc.freeze()" if freeze else "no gc.freeze()"
    print(f"  longest GC pause in the service's process ({frozen}): {max(pauses.longest):.1f} ms")
    cold_title = "first burst after start-up (every HTTP connection new)"
    for title, samples in ((cold_title, cold), (f"the {rounds} bursts after it", warm)):
        print(f"{title}:")
        for metric, label in METRICS.items():
            values = samples[metric]
            p50, p99 = statistics.median(values), percentile(values, 99)
            print(f"  {label}: p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {max(values):.2f} ms")
    decide_p99, originate_p99 = percentile(warm["decide"], 99), percentile(warm["originate"], 99)
    print(f"routing decide_p99_ms={decide_p99:.2f} originate_p99_ms={originate_p99:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--answer-s", type=float, default=0.1)
    parser.add_argument("--no-gc-freeze", action="store_true", help="leave the start-up heap to full collections")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    simulator = context.Process(target=simulator_process, args=(args.calls, args.answer_s, ports), daemon=True)
    simulator.start()
    try:
        sim_port, control_port = ports.get(timeout=30)
        setup = (args.calls, args.rounds, args.answer_s, sim_port, control_port)
        asyncio.run(main(*setup, freeze=not args.no_gc_freeze))
    finally:
        simulator.join(timeout=5)
        if simulator.is_alive():
            simulator.terminate()
