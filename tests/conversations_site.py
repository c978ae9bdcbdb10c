"""A running service's web side with text-back for the conversation tests: the real site (`service_site`), login,
SQLite, the outbox sending through a simulated gateway (with receipts), replies arriving through that gateway.

Glow Salon and Bright Smile Dental each have a caller; a third caller texts both businesses. Users: an admin,
`glow` (Glow's owner), `glow-desk` (Glow, numbers masked), `dental` (Dental's owner).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.config import Business, Config, WebUser
from callbuddy_pbx.config.texting import QuietHours
from callbuddy_pbx.config.web import ApiToken
from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.passwords import hash_password
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.site import service_site
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.conversations import Thread, list_threads
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore
from tests.test_dashboard_e2e import DENTAL, DENTAL_DID, GLOW, GLOW_DID, site_config

PASSWORD = "conversation-pass-1"
ALL_TOKEN, GLOW_TOKEN = "a" * 32, "g" * 32
GLOW_CALLER, DENTAL_CALLER, BOTH_CALLER = "+15557771111", "+15557772222", "+15557773333"
WAIT_S = 5.0

__all__ = ["ALL_TOKEN", "BOTH_CALLER", "DENTAL", "DENTAL_CALLER", "DENTAL_DID", "GLOW", "GLOW_CALLER", "GLOW_DID"]


def missed(linkedid: str, business: str, did: str, caller: str, *, name: str = "", ago: float = 60.0) -> CallRecord:
    ended = time.time() - ago
    return CallRecord(
        linkedid=linkedid,
        business=business,
        did=did,
        caller=caller,
        caller_raw=caller,
        caller_name=name,
        outcome=Outcome.NO_ANSWER,
        answered_by=None,
        started_at=ended - 20,
        ring_at=ended - 19,
        answered_at=None,
        ended_at=ended,
        hangup_cause=16,
        legs=(LegRecord("PJSIP/100-1", "PJSIP/100", "NOANSWER", 16, False, ended - 19, ended),),
    )


@dataclasses.dataclass
class Convo:
    client: TestClient[web.Request, web.Application]
    store: CallStore
    gateway: SimulatedGateway
    text_back: TextBackService
    config: Config

    async def call(self, record: CallRecord) -> None:
        await self.text_back.record_calls([record])

    async def reply(self, caller: str, did: str, text: str) -> None:
        await self.gateway.receive(caller, did, text)

    async def thread(self, number: str, business: str) -> Thread:
        found = [t for t in await list_threads(self.store, None) if t.number == number and t.business == business]
        assert len(found) == 1, found
        return found[0]

    async def log_in(self, name: str) -> None:
        await log_in(self.client, name)

    async def csrf(self, path: str = "/conversations") -> str:
        html = await (await self.client.get(path)).text()
        match = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert match is not None
        return match.group(1)


async def log_in(client: TestClient[web.Request, web.Application], name: str) -> None:
    client.session.cookie_jar.clear()
    page = await client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert match is not None
    response = await client.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf_token": match.group(1), "next": "/"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()


def form_values(html: str) -> dict[str, str]:
    """The answer form's hidden fields (csrf_token, token)."""
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


async def until(check: Callable[[], Any], timeout: float = WAIT_S) -> None:
    """Wait until `check()` (sync or async) is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


def quiet_now(business: Business) -> Business:
    """The business with quiet hours from an hour ago to two hours from now, on its own clock."""
    local = datetime.now(ZoneInfo(business.timezone))
    quiet = QuietHours((local - timedelta(hours=1)).time(), (local + timedelta(hours=2)).time())
    return dataclasses.replace(business, text_back=dataclasses.replace(business.text_back, quiet_hours=quiet))


async def open_site(tmp_path: Path, *, quiet_glow: bool = False) -> AsyncIterator[Convo]:
    config = site_config(tmp_path, 1)  # nothing listens on port 1: AMI stays down, the web side does not mind
    tokens = (ApiToken("all", ALL_TOKEN), ApiToken("glow", GLOW_TOKEN, (GLOW,)))
    businesses = tuple(quiet_now(b) if quiet_glow and b.name == GLOW else b for b in config.businesses)
    config = dataclasses.replace(config, businesses=businesses, web=dataclasses.replace(config.web, api_tokens=tokens))
    store = await CallStore.open(config.storage.path)
    gateway = SimulatedGateway("sms", receipt_delay_s=0.05)
    gateways: dict[str, SmsGateway] = {"sms": gateway}
    text_back = TextBackService(config, store, gateways)
    await text_back.start()
    outbox = asyncio.create_task(text_back.outbox.run())
    users = (
        WebUser("admin", hash_password(PASSWORD), role="admin"),
        WebUser("glow", hash_password(PASSWORD), role="business", businesses=(GLOW,)),
        WebUser("glow-desk", hash_password(PASSWORD), role="business", businesses=(GLOW,), show_numbers=False),
        WebUser("dental", hash_password(PASSWORD), role="business", businesses=(DENTAL,)),
    )
    service = CallService(config, store, text_back=text_back)
    app = service_site(config, store, service, gateways, None, users=lambda: users, live_poll_s=0.05)
    try:
        async with TestClient(TestServer(app)) as client:
            yield Convo(client, store, gateway, text_back, config)
    finally:
        outbox.cancel()
        await asyncio.gather(outbox, return_exceptions=True)
        await text_back.close()
        await store.close()


@pytest.fixture(name="convo")
async def convo_fixture(tmp_path: Path) -> AsyncIterator[Convo]:
    async for site in open_site(tmp_path):
        yield site


async def two_businesses(site: Convo) -> None:
    """A missed call and a reply at each business, and one caller who called and wrote to both."""
    await site.call(missed("1000.1", GLOW, GLOW_DID, GLOW_CALLER, name="Ann"))
    await site.call(missed("2000.1", DENTAL, DENTAL_DID, DENTAL_CALLER))
    await site.call(missed("3000.1", GLOW, GLOW_DID, BOTH_CALLER))
    await site.call(missed("3000.2", DENTAL, DENTAL_DID, BOTH_CALLER))
    await until(lambda: len(site.gateway.sent) == 4)
    await until(lambda: _all_delivered(site))  # receipts first: a thread read twice must not change in between
    await site.reply(GLOW_CALLER, GLOW_DID, "Can I come at 3?")
    await site.reply(DENTAL_CALLER, DENTAL_DID, "Dental secret question")
    await site.reply(BOTH_CALLER, GLOW_DID, "Glow: a haircut please")
    await site.reply(BOTH_CALLER, DENTAL_DID, "Dental: a cleaning please")


async def _all_delivered(site: Convo) -> bool:
    return all(row.state == "delivered" for row in await MessageStore(site.store).list_messages())
