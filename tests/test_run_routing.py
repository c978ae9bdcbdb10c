"""`callbuddy-pbx run` with a number routed by the service: the routing service starts beside the AMI observer, routes
a call that enters Stasis to the phones that are free, shows its ARI link in /healthz, and hands a ringing call back
to the dialplan when the service is stopped."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path

import aiohttp

from callbuddy_pbx.commands.run import serve
from callbuddy_pbx.config import ApiToken, AsteriskNode, Business, Config, default_config
from callbuddy_pbx.config.pbx import NoAnswer, PbxConfig, Phone, RingGroup
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from tests.servers import free_port
from tests.test_router import bridged, originated
from tests.test_sim_ari import PASSWORD, config_for, wait_until
from tests.waiting import wait_until_async

AMI_SECRET = "run-routing-secret"
DID = "15550001013"
API_TOKEN = "run-routing-api-token-0123456789"  # for /api/v1/devices: what the service's device registry knows


def routed_config(tmp_path: Path, ami: SimulatedAmiServer, ari: SimulatedAriServer, web_port: int) -> Config:
    base = default_config(tmp_path)
    phones = (Phone("100", "Front desk", "Glow Salon"), Phone("101", "Back office", "Glow Salon"))
    group = RingGroup("+" + DID, ("100", "101"), ring_s=5, no_answer=NoAnswer("hangup"), routing="callbuddy")
    return dataclasses.replace(
        base,
        asterisk=dataclasses.replace(base.asterisk, port=ami.port, secret=AMI_SECRET, reconnect_max_s=1.0),
        businesses=(Business("Glow Salon", ("+" + DID,), "America/New_York"),),
        pbx=PbxConfig(phones=phones, ring_groups=(group,)),
        ari=config_for(ari),
        web=dataclasses.replace(base.web, port=web_port, api_tokens=(ApiToken("test", API_TOKEN),)),
    )


async def health(port: int) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
        body: dict[str, object] = await response.json()
        return body


async def device(port: int, name: str) -> dict[str, object]:
    """The service's own view of one phone (its device registry, as GET /api/v1/devices shows it)."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/api/v1/devices", headers=headers) as response,
    ):
        body = await response.json()
    found: dict[str, object] = next(d for d in body["devices"] if d["name"] == name)
    return found


async def wait_for_health(port: int, predicate: object) -> dict[str, object]:
    status: dict[str, object] = {}
    for _ in range(100):
        status = await health(port)
        if predicate(status):  # type: ignore[operator]
            break
        await asyncio.sleep(0.05)
    return status


async def test_run_routes_a_call_and_hands_ringing_calls_back_when_stopped(tmp_path: Path) -> None:
    async with SimulatedAmiServer(secret=AMI_SECRET) as ami, SimulatedAriServer(password=PASSWORD) as ari:
        port = free_port()
        service = asyncio.create_task(serve(routed_config(tmp_path, ami, ari, port)))
        try:
            await wait_until(lambda: ari.open_websockets == 1 and ami.clients == 1, 10)
            status = await wait_for_health(port, lambda s: s.get("ari") == {"connected": True, "last_error": None})
            assert status["ari"] == {"connected": True, "last_error": None}

            ari.phone_answers_after("101", 0.1)
            caller = ari.inbound_call(DID)
            await wait_until(lambda: bool(bridged(ari)))
            assert caller in bridged(ari)[0]
            assert {endpoint for endpoint, _, _ in originated(ari)} == {"PJSIP/100", "PJSIP/101"}

            # 100 stopped ringing for the first call ("answered elsewhere"); once its device state has reached the
            # service (it saw 100 ring, then free), it is free again.
            await wait_until(lambda: not any(c.endpoint == "PJSIP/100" for c in ari.pbx.channels.values()))

            async def free_again() -> bool:
                phone = await device(port, "PJSIP/100")
                return phone["state"] == "NOT_INUSE" and phone["last_call_at"] is not None

            await wait_until_async(free_again)
            ari.phone_never_answers("100")
            ringing = ari.inbound_call(DID, caller_number="15553334444")
            await wait_until(lambda: len(originated(ari)) == 3)
            assert originated(ari)[-1][0] == "PJSIP/100"  # 101 is in the first call: only the free phone rings
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # what systemd does: the service stops cleanly
            await asyncio.wait_for(service, 15)
        assert ari.continued == [(ringing, {})]  # back to the dialplan, which rings the group itself
        assert ari.open_websockets == 0


async def test_health_fails_while_the_ari_link_is_down(tmp_path: Path) -> None:
    async with SimulatedAmiServer(secret=AMI_SECRET) as ami, SimulatedAriServer(password=PASSWORD) as ari:
        port = free_port()
        service = asyncio.create_task(serve(routed_config(tmp_path, ami, ari, port)))
        try:
            await wait_until(lambda: ari.open_websockets == 1, 10)
            await wait_for_health(port, lambda s: s.get("ok") is True)
            ari.restart(down_s=5)  # Asterisk restarts: the socket drops, nothing listens for a while
            status = await wait_for_health(port, lambda s: s.get("ok") is False)
            assert status["ok"] is False  # calls ring through the fail-open dialplan meanwhile; health says so
            assert status["ari"]["connected"] is False and status["ari"]["last_error"]  # type: ignore[index]
            assert status["ami"] == {"connected": True, "last_error": None}
        finally:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(service, 15)


async def test_each_server_with_its_own_ari_routes_its_own_calls(tmp_path: Path) -> None:
    """Two Asterisk servers (asterisk.nodes), the second with an `ari:` of its own: a call into the second's Stasis
    app rings the second's phones through the second's ARI, and /healthz shows each server's router."""
    south_did = "15550002000"
    async with (
        SimulatedAmiServer(secret=AMI_SECRET) as north_ami,
        SimulatedAmiServer(secret=AMI_SECRET) as south_ami,
        SimulatedAriServer(password=PASSWORD) as north_ari,
        SimulatedAriServer(password=PASSWORD) as south_ari,
    ):
        port = free_port()
        base = routed_config(tmp_path, north_ami, north_ari, port)
        nodes = (
            AsteriskNode("north", base.asterisk),
            AsteriskNode("south", dataclasses.replace(base.asterisk, port=south_ami.port), ari=config_for(south_ari)),
        )
        glow = dataclasses.replace(base.businesses[0], node="north")
        spa = Business("South Spa", ("+" + south_did,), "America/Chicago", node="south")
        # Its desk is extension 101 on its own PBX (each server numbers its phones on its own).
        spa_group = RingGroup("+" + south_did, ("101",), ring_s=5, no_answer=NoAnswer("hangup"), routing="callbuddy")
        pbx = dataclasses.replace(base.pbx, ring_groups=(*base.pbx.ring_groups, spa_group))
        config = dataclasses.replace(base, nodes=nodes, businesses=(glow, spa), pbx=pbx)
        service = asyncio.create_task(serve(config))
        try:
            await wait_until(lambda: north_ari.open_websockets == 1 and south_ari.open_websockets == 1, 10)
            status = await wait_for_health(port, lambda s: s.get("ok") is True)
            assert status["nodes"]["south"]["ari"] == {"connected": True, "last_error": None}  # type: ignore[index]
            south_ari.phone_answers_after("101", 0.1)
            caller = south_ari.inbound_call(south_did)
            await wait_until(lambda: bool(bridged(south_ari)))
            assert caller in bridged(south_ari)[0]
            assert [endpoint for endpoint, _, _ in originated(south_ari)] == ["PJSIP/101"]
            assert originated(north_ari) == []
            south_ari.restart(down_s=5)  # the second server's Asterisk restarts: its router's link is down
            status = await wait_for_health(port, lambda s: s.get("ok") is False)
            assert status["nodes"]["south"]["ok"] is False  # type: ignore[index]
            assert status["nodes"]["north"]["ok"] is True  # type: ignore[index]
        finally:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(service, 15)
        assert north_ari.open_websockets == 0 and south_ari.open_websockets == 0  # both routers stopped
