"""The web side with several Asterisk servers: a call shows the site it rang at, /system each server's link, and
"Call back" goes out through the server the caller's business rings on."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.config import AsteriskConfig, AsteriskNode, Config, WebUser, default_config
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.passwords import hash_password
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.site import service_site
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.originate import NO_ANSWER, OriginatePlan
from callbuddy_pbx.sim.scenario_factory import ScenarioFactory
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from tests.conversations_site import PASSWORD, log_in, until
from tests.test_dashboard_e2e import DENTAL, DENTAL_DID, GLOW, SECRET, site_config


@dataclasses.dataclass
class Sites:
    client: TestClient[web.Request, web.Application]
    servers: dict[str, SimulatedAmiServer]
    service: CallService
    store: CallStore

    def originates(self, node: str) -> list[str]:
        return [action["Channel"] for action in self.servers[node].actions if action.get("Action") == "Originate"]


def two_site_config(tmp_path: Path, ports: dict[str, int]) -> Config:
    base = site_config(tmp_path, 1)
    nodes = tuple(
        AsteriskNode(name, dataclasses.replace(base.asterisk, port=port, secret=SECRET, reconnect_max_s=1.0))
        for name, port in ports.items()
    )
    glow, dental = base.businesses
    phones = (Phone("100", "Front desk", GLOW), Phone("200", "Reception", DENTAL))
    return dataclasses.replace(
        base,
        asterisk=nodes[0].ami,
        nodes=nodes,
        businesses=(dataclasses.replace(glow, node="north"), dataclasses.replace(dental, node="south")),
        pbx=dataclasses.replace(base.pbx, phones=phones),
    )


@pytest.fixture(name="sites")
async def sites_fixture(tmp_path: Path) -> AsyncIterator[Sites]:
    servers = {name: SimulatedAmiServer(secret=SECRET) for name in ("north", "south")}
    for server in servers.values():
        await server.start()
    config = two_site_config(tmp_path, {name: server.port for name, server in servers.items()})
    assert config.storage == default_config(tmp_path).storage and isinstance(config.asterisk, AsteriskConfig)
    store = await CallStore.open(config.storage.path)
    gateways = {"sms": SimulatedGateway("sms")}
    service = CallService(config, store, text_back=TextBackService(config, store, gateways))
    users = (
        WebUser("admin", hash_password(PASSWORD), role="admin"),
        WebUser("dental", hash_password(PASSWORD), role="business", businesses=(DENTAL,)),
    )
    app = service_site(config, store, service, gateways, None, users=lambda: users, live_poll_s=0.05)
    task = asyncio.create_task(service.run())
    try:
        for node in service.nodes:
            await asyncio.wait_for(node.ready.wait(), 10)
        async with TestClient(TestServer(app)) as client:
            yield Sites(client, servers, service, store)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await store.close()
        for server in servers.values():
            await server.stop()


async def missed_at_south(sites: Sites) -> str:
    scenario = ScenarioFactory(seed=11).ring_all_no_answer(did=DENTAL_DID.lstrip("+"))
    await sites.servers["south"].broadcast([event.message for event in scenario.events])
    await until(lambda: sites.service.calls_stored == 1)
    (call,) = await sites.store.list_calls()
    assert call.linkedid.endswith("@south") and call.node == "south"
    return call.linkedid


async def test_a_call_shows_the_site_it_rang_at(sites: Sites) -> None:
    key = await missed_at_south(sites)
    await log_in(sites.client, "admin")
    feed = await (await sites.client.get("/calls")).text()
    assert re.search(r'<small class="site">at south</small>', feed)
    page = await (await sites.client.get(f"/calls/{quote(key)}")).text()
    assert "<dt>Site</dt><dd>south</dd>" in page


async def test_system_shows_each_servers_link(sites: Sites) -> None:
    await log_in(sites.client, "admin")
    await sites.servers["south"].stop()
    south = next(node for node in sites.service.nodes if node.name == "south")
    await until(lambda: not south.ami.connected)
    page = await (await sites.client.get("/system")).text()
    north_row = page[page.index('data-node="north"') :].split("</tr>")[0]
    south_row = page[page.index('data-node="south"') :].split("</tr>")[0]
    assert 'data-value="connected"' in north_row
    assert 'data-value="down"' in south_row


async def test_call_back_goes_out_through_the_business_server(sites: Sites) -> None:
    key = await missed_at_south(sites)
    for server in sites.servers.values():
        server.originate_plan = OriginatePlan(desk=NO_ANSWER)
    await log_in(sites.client, "dental")
    path = f"/calls/{quote(key)}"
    html = await (await sites.client.get(path)).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    form = {"csrf_token": match.group(1), "phone": "200"}
    response = await sites.client.post(f"{path}/call-back", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    assert sites.originates("south") == ["PJSIP/200"]
    assert sites.originates("north") == []
