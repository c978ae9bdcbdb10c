"""The demo's routed line: calls that enter the service's Stasis app on a simulated ARI, and phones that come and go,
so the router's choices are visible. Glue for `callbuddy-pbx demo` only.

The simulated ARI and the simulated AMI are separate fakes: a routed call is routed for real (over HTTP and the
WebSocket, by the RoutingService `run` uses) but does not appear in the AMI stream, so it is printed here rather than
stored as a call.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import datetime

from callbuddy_pbx.config.pbx import NoAnswer, Phone, RingGroup
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.ari_server import SimulatedAriServer

ROUTED_DID = "+15550001013"  # Glow Salon's booking line, routed by the service
ROUTED_RING_S = 6
PHONES = (
    Phone("100", "Front desk", "Glow Salon", person="Ana"),
    Phone("101", "Stylist's desk", "Glow Salon", person="Mia"),
    Phone("102", "Mia's softphone", "Glow Salon", person="Mia"),  # rings with 101 when it is online
)
ROUTED_GROUP = RingGroup(
    ROUTED_DID, ("100", "101"), "last_active_first", ROUTED_RING_S, 3 * ROUTED_RING_S, NoAnswer("hangup"),
    routing="callbuddy",
)  # fmt: skip

Say = Callable[[str], None]


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S")


async def phones_come_and_go(ami: SimulatedAmiServer, ari: SimulatedAriServer, every_s: float, say: Say) -> None:
    """Mia's softphone (102) comes online for a while, then leaves, on both simulated interfaces."""
    while True:
        await asyncio.sleep(every_s)
        await ami.register_phone("102", user_agent="Demo-Softphone")
        ari.register("102")
        say(f"{_now()}  phone 102 (Mia's softphone) registered: Mia's calls ring it too")
        await asyncio.sleep(every_s / 2)
        await ami.unregister_phone("102")
        ari.unregister("102")
        say(f"{_now()}  phone 102 (Mia's softphone) went offline: the router stops ringing it")


async def routed_calls(
    ari: SimulatedAriServer, every_s: float, seed: int, say: Say, group: RingGroup = ROUTED_GROUP
) -> None:
    """Every `every_s`, a caller dials the routed line; a random phone answers within its ring time, or nobody."""
    rng = random.Random(seed)
    while True:
        await asyncio.sleep(every_s)
        answering = rng.choice(("100", "101", "102", None))
        for desk in ("100", "101", "102"):
            ari.phone_never_answers(desk)
        if answering is not None:
            ari.phone_answers_after(answering, rng.uniform(0.2, 0.6) * group.ring_s)
        seen = len(ari.requests)
        caller = ari.inbound_call(group.number.lstrip("+"), caller_number=f"1555{rng.randrange(10**7):07d}")
        answered = await _outcome(ari, caller, group.total_s + 2)
        rang = [
            request.query.get("endpoint", "?")
            for request in list(ari.requests)[seen:]
            if request.method == "POST" and request.path == "/ari/channels" and request.status == 200
        ]
        verdict = f"answered on {answered}" if answered else "nobody answered: the AMI side would text the caller"
        say(f"{_now()}  routed call to {group.number}: rang {', '.join(rang) or 'no phone (none free)'}; {verdict}")
        if answered:
            ari.caller_hangs_up(caller)


async def _outcome(ari: SimulatedAriServer, caller: str, within_s: float) -> str | None:
    """The endpoint bridged with the caller, or None once the caller is gone (or the time is up)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        for bridge in ari.pbx.bridges.values():
            if caller in bridge.channel_ids and len(bridge.channel_ids) == 2:
                other = next(c for c in bridge.channel_ids if c != caller)
                channel = ari.pbx.channels.get(other)
                return f"PJSIP/{channel.endpoint.resource}" if channel is not None else other
        gone = ari.pbx.channels.get(caller)
        if gone is None or gone.gone:
            return None
        await asyncio.sleep(0.1)
    return None
