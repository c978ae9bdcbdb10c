"""The dashboard of the real service (simulated Asterisk over AMI, the tracker, text-back, SQLite, the login) driven
in Chromium the way an owner uses it: log in, watch a missed call arrive live and get its text, open its detail,
filter, export CSV, log out; a business user cannot open another business's call.

Screenshots of the main pages go to tmp_path, or to docs/screenshots/ with SAVE_SCREENSHOTS=1 (README shows them).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, Page, expect

from callbuddy_pbx.config import Business, Config, GatewayConfig, TextBack, WebUser, default_config
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.passwords import hash_password
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.site import service_site
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer, recorded_pjsip
from callbuddy_pbx.sim.scenarios import ScenarioFactory
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.server import bound_port, start_web

# The fixture is named after its function: the parameters that use it shadow this import (F811 below).
from tests.browser import browser_context  # noqa: F401

GLOW, DENTAL = "Glow Salon", "Bright Smile Dental"
GLOW_DID, DENTAL_DID = "+15550001000", "+15550003000"
ADMIN_PASSWORD, OWNER_PASSWORD = "admin-password-1", "owner-password-1"
SECRET = "e2e-ami-secret"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


@dataclasses.dataclass
class Site:
    url: str
    ami: SimulatedAmiServer
    store: CallStore
    gateway: SimulatedGateway
    factory: ScenarioFactory

    async def call(self, kind: str, **options: object) -> str:
        """Play one scripted call on the simulated PBX, all at once, timed (by its events' Timestamps) to have
        ended just now; its linkedid."""
        script = getattr(self.factory, kind)
        length = max(event.at for event in script(**options, start=0.0).events)
        scenario = script(**options, start=time.time() - length)
        await self.ami.broadcast([event.message for event in scenario.events])
        return str(scenario.linkedid)


def site_config(data_dir: Path, ami_port: int) -> Config:
    base = default_config(data_dir)
    text_back = TextBack(gateway="sms", window_s=60.0)
    return dataclasses.replace(
        base,
        asterisk=dataclasses.replace(base.asterisk, port=ami_port, secret=SECRET, reconnect_max_s=1.0),
        businesses=(
            Business(
                GLOW, (GLOW_DID,), "America/New_York", booking_url="https://glow.example/book", text_back=text_back
            ),
            Business(DENTAL, (DENTAL_DID,), "America/Chicago", text_back=text_back),
        ),
        gateways=(GatewayConfig("sms", "simulated", rate_per_s=0),),
        # The simulated desks 100 and 101, by the names an owner knows them.
        pbx=dataclasses.replace(
            base.pbx, phones=(Phone("100", "Front desk", GLOW, person="Mia"), Phone("101", "Back room", GLOW))
        ),
    )


@pytest.fixture(name="site")
async def site_fixture(tmp_path: Path) -> AsyncIterator[Site]:
    ami = SimulatedAmiServer(secret=SECRET)
    ami.pjsip = recorded_pjsip()
    await ami.start()
    config = site_config(tmp_path, ami.port)
    store = await CallStore.open(config.storage.path)
    gateway = SimulatedGateway("sms", receipt_delay_s=0.3)
    gateways: dict[str, SmsGateway] = {"sms": gateway}
    service = CallService(config, store, text_back=TextBackService(config, store, gateways))
    users = (
        WebUser("admin", hash_password(ADMIN_PASSWORD), role="admin"),
        WebUser("glow", hash_password(OWNER_PASSWORD), role="business", businesses=(GLOW,)),
    )
    app: web.Application = service_site(config, store, service, gateways, None, users=lambda: users, live_poll_s=0.2)
    runner = await start_web(app, "127.0.0.1", 0)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        factory = ScenarioFactory(start_time=time.time(), timestamps=True)
        yield Site(f"http://127.0.0.1:{bound_port(runner)}", ami, store, gateway, factory)
    finally:
        await service.stop()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()
        await store.close()
        await ami.stop()


def screenshot_path(tmp_path: Path, name: str) -> Path:
    folder = SCREENSHOTS if os.environ.get("SAVE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


async def log_in(page: Page, site: Site, name: str, password: str, path: str = "/") -> None:
    await page.goto(site.url + path)
    await expect(page).to_have_url(f"{site.url}/login?next={path.replace('/', '%2F')}")
    await page.fill('input[name="name"]', name)
    await page.fill('input[name="password"]', password)
    await page.click('button:has-text("Log in")')
    await expect(page).to_have_url(site.url + path)


async def test_an_owner_sees_a_missed_call_arrive_and_follows_it(
    browser_context: BrowserContext,  # noqa: F811
    site: Site,
    tmp_path: Path,
) -> None:
    page = await browser_context.new_page()
    answered = await site.call("ring_all_answered", caller="15557770001", did=DENTAL_DID[1:])
    await site.call("busy", caller="15557770002", did=GLOW_DID[1:])

    # The login page first: a wrong password is refused, the right one lands on the page asked for.
    await page.goto(site.url + "/calls")
    await expect(page).to_have_url(site.url + "/login?next=%2Fcalls")
    await page.screenshot(path=screenshot_path(tmp_path, "login"))
    await page.fill('input[name="name"]', "admin")
    await page.fill('input[name="password"]', "not-the-password")
    await page.click('button:has-text("Log in")')
    await expect(page.locator('[role="alert"]')).to_be_visible()
    await page.fill('input[name="password"]', ADMIN_PASSWORD)
    await page.click('button:has-text("Log in")')
    await expect(page).to_have_url(site.url + "/calls")

    # A missed call arrives while the page is open: its row appears, then its text is delivered, without a reload.
    await expect(page.locator('#live[data-state="on"]')).to_be_visible(timeout=5000)
    linkedid = await site.call("ring_all_no_answer", caller="15557770003", caller_name="<b>Ann</b>", did=GLOW_DID[1:])
    row = page.locator(f'tr[id="call-{linkedid}"]')
    await expect(row).to_be_visible(timeout=5000)
    await expect(row).to_contain_text("+15557770003")  # an admin sees full numbers
    await expect(row).to_contain_text("<b>Ann</b>")  # shown as text, not markup
    await expect(row.locator(".tag.text-delivered")).to_be_visible(timeout=5000)
    assert len(site.gateway.sent) == 2 and site.gateway.sent[-1].to == "+15557770003"
    await page.screenshot(path=screenshot_path(tmp_path, "missed-calls"), full_page=True)

    # Its detail: what happened in words, which desks rang (by their names), the verdict, the text and its receipt;
    # the channels only in the admin's technical details.
    await row.locator("a").first.click()
    await expect(page).to_have_url(f"{site.url}/calls/{linkedid}")
    await expect(page.locator('[data-figure="story"]')).to_have_text(
        re.compile(r"^Rang Mia \(Front desk\) and Back room for \d+(\.\d)?\xa0s; nobody picked up\.$")
    )
    await expect(page.locator("#phones + table")).to_contain_text("Mia (Front desk)")
    await expect(page.locator("details.technical")).to_contain_text("PJSIP/100")
    await expect(page.locator('[data-figure="verdict"]')).to_have_attribute("data-value", "send")
    await expect(page.locator("main")).to_contain_text("Delivered")
    await page.screenshot(path=screenshot_path(tmp_path, "call-detail"), full_page=True)

    # Filters: the dental business shows its answered call only among all inbound calls, and no Glow call.
    await page.goto(site.url + "/calls")
    await page.select_option('select[name="business"]', DENTAL)
    await page.check('input[name="all"]')
    await page.click('button:has-text("Filter")')
    await expect(page.locator(f'tr[id="call-{answered}"]')).to_be_visible()
    await expect(page.locator(f'tr[id="call-{linkedid}"]')).to_have_count(0)

    # CSV of the missed calls: the two Glow calls, as the database has them.
    await page.goto(site.url + "/calls")
    async with page.expect_download() as info:
        await page.click("a:has-text('CSV')")
    download = await info.value
    saved = tmp_path / "calls.csv"
    await download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_bytes().decode("utf-8-sig"))))
    stored = await site.store.list_calls(missed_only=True)
    assert len(rows) == len(stored) == 2
    assert sorted("".join(row.values()).count("+15557770003") for row in rows) == [0, 1]

    # The overview's figures and the installer's pages.
    await page.goto(site.url + "/?period=7d")
    for figure, value in (("calls", 3), ("answered", 1), ("missed", 2), ("texted", 2), ("delivered", 2)):
        await expect(page.locator(f'.figure[data-figure="{figure}"]')).to_have_attribute("data-value", str(value))
    await page.screenshot(path=screenshot_path(tmp_path, "overview"), full_page=True)
    await page.goto(site.url + "/devices")
    desk = page.locator('tr[data-device="PJSIP/100"]')
    await expect(desk).to_contain_text("Front desk")
    await expect(desk.locator('td[data-label="Person"]')).to_have_text("Mia")
    await expect(desk.locator('td[data-label="Connection"]')).to_contain_text("Connected")
    await expect(desk.locator('td[data-label="Connection"]')).to_contain_text("sip:100@127.0.0.1:5101")
    await page.screenshot(path=screenshot_path(tmp_path, "devices"), full_page=True)
    await page.goto(site.url + "/system")
    await page.screenshot(path=screenshot_path(tmp_path, "system"), full_page=True)

    # Logging out ends the session: the feed asks for a login again.
    await page.click('button:has-text("Log out")')
    await expect(page).to_have_url(site.url + "/login")
    await page.goto(site.url + "/calls")
    await expect(page).to_have_url(site.url + "/login?next=%2Fcalls")


async def test_a_business_user_cannot_open_another_business_call(
    browser_context: BrowserContext,  # noqa: F811
    site: Site,
) -> None:
    theirs = await site.call("ring_all_no_answer", caller="15557770004", did=DENTAL_DID[1:])
    mine = await site.call("ring_all_no_answer", caller="15557770005", did=GLOW_DID[1:])
    deadline = time.monotonic() + 5
    while len(await site.store.list_calls()) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    page = await browser_context.new_page()
    await log_in(page, site, "glow", OWNER_PASSWORD, "/calls")
    own_row = page.locator(f'tr[id="call-{mine}"]')
    await expect(own_row).to_be_visible()
    await expect(own_row).to_contain_text("+15557770005")  # the business's own caller: in full, to call back
    await expect(page.locator(f'tr[id="call-{theirs}"]')).to_have_count(0)
    await expect(page.locator('nav a:has-text("Devices")')).to_have_count(0)

    response = await page.goto(f"{site.url}/calls/{theirs}")
    assert response is not None and response.status == 404
    assert "15557770004" not in await page.content()
    response = await page.goto(f"{site.url}/devices")
    assert response is not None and response.status == 403
