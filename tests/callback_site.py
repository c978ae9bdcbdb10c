"""The running service with a simulated Asterisk that answers Originate, and its web side, for the call back tests.

Glow Salon has desks 100 ("Front desk") and 101 ("Back room"), Bright Smile Dental desk 200 ("Reception"). The
conversations' users and threads are those of tests/conversations_site.py (`two_businesses`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.config import WebUser
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.config.web import ApiToken
from callbuddy_pbx.passwords import hash_password
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.site import service_site
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from tests.conversations_site import ALL_TOKEN, GLOW_TOKEN, PASSWORD, Convo
from tests.test_dashboard_e2e import DENTAL, GLOW, SECRET, site_config

PHONES = (Phone("100", "Front desk", GLOW), Phone("101", "Back room", GLOW), Phone("200", "Reception", DENTAL))


@dataclasses.dataclass
class CallBackSite:
    convo: Convo
    ami: SimulatedAmiServer
    service: CallService

    def originates(self) -> list[AmiMessage]:
        return [action for action in self.ami.actions if action.get("Action") == "Originate"]

    async def csrf(self, path: str) -> str:
        html = await (await self.convo.client.get(path)).text()
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match is not None
        return match.group(1)


async def open_call_back_site(tmp_path: Path) -> AsyncIterator[CallBackSite]:
    ami = SimulatedAmiServer(secret=SECRET)
    await ami.start()
    config = site_config(tmp_path, ami.port)
    tokens = (ApiToken("all", ALL_TOKEN), ApiToken("glow", GLOW_TOKEN, (GLOW,)))
    config = dataclasses.replace(
        config,
        pbx=dataclasses.replace(config.pbx, phones=PHONES),
        web=dataclasses.replace(config.web, api_tokens=tokens),
    )
    store = await CallStore.open(config.storage.path)
    gateway = SimulatedGateway("sms", receipt_delay_s=0.05)
    gateways: dict[str, SmsGateway] = {"sms": gateway}
    text_back = TextBackService(config, store, gateways)
    service = CallService(config, store, text_back=text_back)
    users = (
        WebUser("admin", hash_password(PASSWORD), role="admin"),
        WebUser("glow", hash_password(PASSWORD), role="business", businesses=(GLOW,)),
        WebUser("glow-desk", hash_password(PASSWORD), role="business", businesses=(GLOW,), show_numbers=False),
        WebUser("dental", hash_password(PASSWORD), role="business", businesses=(DENTAL,)),
    )
    app: web.Application = service_site(config, store, service, gateways, None, users=lambda: users, live_poll_s=0.05)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        async with TestClient(TestServer(app)) as client:
            yield CallBackSite(Convo(client, store, gateway, text_back, config), ami, service)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await store.close()
        await ami.stop()


@pytest.fixture(name="site")
async def call_back_site_fixture(tmp_path: Path) -> AsyncIterator[CallBackSite]:
    async for site in open_call_back_site(tmp_path):
        yield site
