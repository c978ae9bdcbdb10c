"""How fast the router wakes sleeping softphones: --calls concurrent inbound calls, each for a mobile softphone that
is asleep, routed by the real RoutingService (AriClient, device registry, PushSenders with the real APNs client over
HTTP/2 and TLS) against the simulated ARI and the simulated APNs (trustme certificates, provider tokens checked).

The simulated ARI and APNs run in a process each, as Asterisk and Apple would; small control servers beside them (bench
only) places the calls, puts the phones back to sleep and reports what they saw. The calls arrive in one burst (every
StasisStart in the same few milliseconds: the worst case for the push side). Each mobile registers again (from a
new port) after its VoIP push: mobile n after --wake-s + n/calls x --wake-spread-s, so the registrations come
spread over --wake-spread-s as phones in pockets do (--wake-spread-s 0: all in the same millisecond, the worst case
for the originate side); each answers --answer-s after it rings.

Per call: (a) from the StasisStart arriving at the service (AriClient's receive time) to the push request arriving
at the simulated APNs (read off its socket, before its own handling; so TLS, HTTP/2 and the network are in it);
(b) from the woken phone's new registration (the simulator sending ContactStatusChange) to the originate request
for it arriving at the simulated ARI. A first burst after start-up is left out (connections and the provider token
are made then). Clocks: (a) compares the two processes' wall clocks (one machine); (b) is measured in the
simulator's process alone. Target: p99 < 10 ms each.

    python bench/push.py [--calls 50] [--rounds 5] [--wake-s 0.5] [--wake-spread-s 0.5] [--answer-s 0.05]

Prints one line: `push send_p99_ms=X originate_after_register_p99_ms=X`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import trustme
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.asterisk import AriConfig
from callbuddy_pbx.config.pbx import NoAnswer, PbxConfig, Phone, RingGroup
from callbuddy_pbx.config.push import ApnsConfig, PushConfig
from callbuddy_pbx.push.senders import PushSenders
from callbuddy_pbx.routing.router import RouteTiming
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.sim.apns_server import ApnsServer, ReceivedPush
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from callbuddy_pbx.sim.mobile_phones import MobileSoftphone

PASSWORD = "bench-secret"
DELIVERY_S = 0.01  # the simulated APNs hands pushes on to the phones this often
TEAM_ID, KEY_ID, BUNDLE_ID = "TEAM123456", "KEY7890ABC", "com.example.bench"


def did(n: int) -> str:
    return f"1555000{3000 + n:04d}"


def mobile(n: int) -> str:
    return str(300 + n)


def token(n: int) -> str:
    return f"{n + 1:064x}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- the simulators' process -------------------------------------------------------------------------------------


def simulator_process(calls: int, wake_s: float, spread_s: float, answer_s: float, setup: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve_ari(calls, wake_s, spread_s, answer_s, setup))


def apns_process(calls: int, ari_control_port: int, setup: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve_apns(calls, ari_control_port, setup))


async def serve_apns(calls: int, ari_control_port: int, setup: Any) -> None:
    """Apple: the simulated APNs, in a process of its own (as Apple's servers are not Asterisk's), which hands each
    push to the phones (in the ARI simulator's process) as Apple's delivery does, and says when each arrived."""
    ca = trustme.CA()
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    key = ec.generate_private_key(ec.SECP256R1())
    apns = ApnsServer(server_tls, TEAM_ID, KEY_ID, key.public_key(), BUNDLE_ID)
    apns.known_tokens.update(token(n) for n in range(calls))
    await apns.start()
    pushed_at: dict[str, float] = {}  # call id -> wall time the call push reached APNs
    deliveries: set[asyncio.Task[None]] = set()
    done = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        pending: list[dict[str, str]] = []

        async def deliver() -> None:
            batch = pending[:]
            pending.clear()
            async with http.post(f"http://127.0.0.1:{ari_control_port}/pushed", json=batch) as response:
                response.raise_for_status()

        def on_push(push: ReceivedPush) -> None:
            if push.payload.get("type") == "call":
                pushed_at.setdefault(str(push.payload.get("call_id")), push.received_at)
            # Handed on to the phones in batches every DELIVERY_S (Apple's own delivery takes longer than that):
            # one request per push would keep this process from reading the next pushes as they arrive.
            if not pending:
                asyncio.get_running_loop().call_later(DELIVERY_S, spawn_delivery)
            pending.append({"token": push.device_token, "push_type": push.headers.get("apns-push-type", "")})

        def spawn_delivery() -> None:
            task = asyncio.ensure_future(deliver())
            deliveries.add(task)
            task.add_done_callback(deliveries.discard)

        apns.on_push = on_push

        async def seen(request: web.Request) -> web.Response:
            return web.json_response({"pushed_at": pushed_at})

        async def clear(request: web.Request) -> web.Response:
            pushed_at.clear()
            return web.json_response(None)

        async def stop(request: web.Request) -> web.Response:
            done.set()
            return web.json_response(None)

        runner, control_port = await control_server(
            [web.get("/seen", seen), web.post("/clear", clear), web.post("/stop", stop)]
        )
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        setup.put((apns.url, control_port, ca.cert_pem.bytes().decode(), private))
        await done.wait()
        await runner.cleanup()
        await apns.close()


async def control_server(routes: list[web.RouteDef]) -> tuple[web.AppRunner, int]:
    """The bench's own control endpoints beside a simulator, on a free loopback port."""
    control = web.Application()
    control.add_routes(routes)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, next(a[1] for a in runner.addresses if isinstance(a, tuple))


async def serve_ari(calls: int, wake_s: float, spread_s: float, answer_s: float, setup: Any) -> None:
    """Asterisk: the simulated ARI with the mobiles, which wake when APNs delivers them a push (`/pushed`)."""
    sim = SimulatedAriServer(password=PASSWORD)
    await sim.start()
    phones: list[MobileSoftphone] = []
    done = asyncio.Event()

    async def add(request: web.Request) -> web.Response:
        """The mobiles register (with their push parameters) once the service listens: it learns their bindings."""
        for n in range(calls):
            wake_after_s = wake_s + spread_s * n / calls
            phones.append(
                sim.mobile_softphone(mobile(n), token(n), f"{TEAM_ID}.{BUNDLE_ID}.voip", wake_after_s=wake_after_s)
            )
            sim.phone_answers_after(mobile(n), answer_s)
        return web.json_response(None)

    async def sleep(request: web.Request) -> web.Response:
        for phone in phones:
            sim.mobile_sleeps(phone)
        return web.json_response(None)

    async def pushed(request: web.Request) -> web.Response:
        for push in await request.json():
            sim.pbx.mobiles.push_received(str(push["token"]), str(push["push_type"]))
        return web.json_response(None)

    async def burst(request: web.Request) -> web.Response:
        sim.requests.clear()
        for phone in phones:
            phone.woke_at = None
        return web.json_response([sim.inbound_call(did(n), f"1555{4000000 + n:07d}") for n in range(calls)])

    async def hang_up(request: web.Request) -> web.Response:
        for caller in await request.json():
            if sim.channel(caller) is not None:
                sim.caller_hangs_up(caller)
        return web.json_response(None)

    async def state(request: web.Request) -> web.Response:
        bridged = sum(len(bridge.channel_ids) == 2 for bridge in sim.pbx.bridges.values())
        return web.json_response({"channels": len(sim.pbx.channels), "bridged": bridged})

    async def seen(request: web.Request) -> web.Response:
        """Per call: its phone's registration -> its originate (ms)."""
        originated = {
            r.query["endpoint"]: r.at
            for r in reversed(sim.requests)
            if r.method == "POST" and r.path == "/ari/channels" and "endpoint" in r.query
        }
        after = [
            (originated[f"PJSIP/{phone.resource}"] - phone.woke_at) * 1000
            for phone in phones
            if phone.woke_at is not None and f"PJSIP/{phone.resource}" in originated
        ]
        return web.json_response({"originate_after_register_ms": after})

    async def stop(request: web.Request) -> web.Response:
        done.set()
        return web.json_response(None)

    runner, control_port = await control_server(
        [
            web.post("/add", add),
            web.post("/sleep", sleep),
            web.post("/pushed", pushed),
            web.post("/burst", burst),
            web.post("/hangup", hang_up),
            web.get("/state", state),
            web.get("/seen", seen),
            web.post("/stop", stop),
        ]
    )
    setup.put((sim.port, control_port))
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


async def main(calls: int, rounds: int, ari: tuple[int, int], apns: tuple[str, int, str, str]) -> None:
    sim_port, control_port = ari
    apns_url, apns_control_port, ca, key = apns
    phones = [Phone(mobile(n), f"Mobile {mobile(n)}", "Bench", push=True) for n in range(calls)]
    groups = [
        RingGroup("+" + did(n), (mobile(n),), "ring_all", 20, 60, NoAnswer("hangup"), routing="callbuddy")
        for n in range(calls)
    ]
    config = Config(
        pbx=PbxConfig(phones=tuple(phones), ring_groups=tuple(groups)),
        ari=AriConfig(url=f"http://127.0.0.1:{sim_port}", password=PASSWORD, reconnect_min_s=0.05),
        push=PushConfig(apns=ApnsConfig(KEY_ID, TEAM_ID, BUNDLE_ID, key)),
    )
    client_tls = ssl.create_default_context(cadata=ca)

    def senders(settings: PushConfig) -> PushSenders:
        return PushSenders.from_config(settings, verify=client_tls, apns_url=apns_url)

    timings: dict[str, RouteTiming] = {}
    registry = DeviceRegistry.from_config(config)

    def timed(timing: RouteTiming) -> None:
        timings.setdefault(timing.caller_id, timing)

    service = RoutingService(config, registry, push_factory=senders, on_timing=timed)
    runner = asyncio.create_task(service.run())
    control = f"http://127.0.0.1:{control_port}"
    apple = f"http://127.0.0.1:{apns_control_port}"
    send_ms: list[float] = []
    after_register_ms: list[float] = []
    async with aiohttp.ClientSession() as http:

        async def ask(method: str, path: str, body: Any = None, *, at: str = control) -> Any:
            async with http.request(method, at + path, json=body) as response:
                return await response.json()

        async def ready() -> bool:
            return service.ready

        async def all_asleep() -> bool:
            return all(getattr(registry.get(f"PJSIP/{mobile(n)}"), "sleeping", False) for n in range(calls))

        async def all_bridged() -> bool:
            return bool((await ask("GET", "/state"))["bridged"] == calls)

        async def all_gone() -> bool:
            return service.routes_active == 0 and (await ask("GET", "/state"))["channels"] == 0

        await wait_until(ready)
        await ask("POST", "/add")
        gc.freeze()  # as `run` does: the start-up heap out of full collections
        for round_number in range(rounds + 1):
            await ask("POST", "/sleep")
            await wait_until(all_asleep)
            timings.clear()
            await ask("POST", "/clear", at=apple)
            callers = await ask("POST", "/burst")
            await wait_until(all_bridged)
            seen = await ask("GET", "/seen")
            pushed_at = (await ask("GET", "/seen", at=apple))["pushed_at"]
            if round_number > 0:  # the first burst makes the connections and the provider token
                send_ms += [(at - timings[call].received_at) * 1000 for call, at in pushed_at.items()]
                after_register_ms += seen["originate_after_register_ms"]
            await ask("POST", "/hangup", callers)
            await wait_until(all_gone)
        await service.stop()
        await runner
        await ask("POST", "/stop")
        await ask("POST", "/stop", at=apple)
    assert len(send_ms) == len(after_register_ms) == calls * rounds, "a call was not woken"
    send_p99, after_p99 = percentile(send_ms, 99), percentile(after_register_ms, 99)
    print(f"push send_p99_ms={send_p99:.2f} originate_after_register_p99_ms={after_p99:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wake-s", type=float, default=0.5)
    parser.add_argument("--wake-spread-s", type=float, default=0.5)
    parser.add_argument("--answer-s", type=float, default=0.05)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    context = multiprocessing.get_context("spawn")
    setup = context.Queue()
    asterisk = context.Process(
        target=simulator_process,
        args=(args.calls, args.wake_s, args.wake_spread_s, args.answer_s, setup),
        daemon=True,
    )
    asterisk.start()
    ari = setup.get(timeout=30)
    apple = context.Process(target=apns_process, args=(args.calls, ari[1], setup), daemon=True)
    apple.start()
    try:
        asyncio.run(main(args.calls, args.rounds, ari, setup.get(timeout=30)))
    finally:
        for process in (asterisk, apple):
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
