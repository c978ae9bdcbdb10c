"""The dashboard in Chromium, served as the service serves it: behind the real login (the browser logs in through
its form) and with the security headers its middleware sets, the strict CSP among them. The live feed's script
inserts and replaces rows, nothing breaks the policy, the overview's figures read from the DOM, and tables stack on
a phone screen."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer
from playwright.async_api import BrowserContext, Page

from callbuddy_pbx.config import WebUser
from callbuddy_pbx.model import Outcome
from callbuddy_pbx.passwords import hash_password
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore, NewText
from callbuddy_pbx.web.auth import SECURITY_HEADERS, auth_setup
from callbuddy_pbx.web.dashboard import dashboard_routes
from callbuddy_pbx.web.server import create_app
from callbuddy_pbx.web.viewer import ADMIN, BUSINESS

# The fixture is named after its function: the parameters that use it shadow this import (F811 below).
from tests.browser import browser_context, watched_page  # noqa: F401
from tests.test_dashboard_helpers import (  # noqa: F401 (fixtures)
    BOLT,
    GLOW,
    XSS_NAME,
    Scenario,
    filled_fixture,
    make_context,
    make_record,
)

PASSWORD = "browser-test-password"
CSP = SECURITY_HEADERS["Content-Security-Policy"]


@pytest.fixture(name="server")
async def server_fixture(filled: tuple[CallStore, Scenario]) -> AsyncIterator[tuple[BaseTestServer, CallStore]]:
    store, _ = filled
    password_hash = hash_password(PASSWORD)
    users = [WebUser("admin", password_hash, ADMIN), WebUser("glow-owner", password_hash, BUSINESS, (GLOW,))]
    context = make_context(store, clock=time.time, live_poll_s=0.1)

    def routes(app: web.Application) -> None:  # as service.site.service_site adds them
        auth_setup(app, store=store, users=lambda: users, public_url="", secure_cookies="auto", session_hours=1)
        dashboard_routes(app, context)

    async with TestServer(create_app(webhook_gateways={}, extra_routes=routes)) as server:
        yield server, store


# How many lines each element's text takes on screen (the distinct tops of its text's boxes).
LINES_OF_TEXT = """elements => elements.filter(e => e.textContent.trim()).map(e => {
  const range = document.createRange();
  range.selectNodeContents(e);
  return new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top))).size;
})"""


async def visit(page: Page, url: str) -> None:
    """Go to a dashboard page; it must come with the service's own security headers."""
    response = await page.goto(url)
    assert response is not None and response.ok, url
    assert response.headers.get("content-security-policy") == CSP, url


async def open_page(context: BrowserContext, user: str, url: str) -> tuple[Page, list[str]]:
    """Log in as `user` through the login form (the page asks for it) and land on `url`."""
    page, problems = await watched_page(context)
    page.on("pageerror", lambda error: problems.append(str(error)))
    await page.goto(url)
    assert "/login?" in page.url, "a dashboard page without a session must ask to log in"
    await page.fill('input[name="name"]', user)
    await page.fill('input[name="password"]', PASSWORD)
    async with page.expect_navigation() as navigation:
        await page.click('button[type="submit"]')
    response = await navigation.value
    assert response is not None and response.url == url, "logged in, the browser goes on to the page it asked for"
    assert response.headers.get("content-security-policy") == CSP
    return page, problems


async def test_live_feed_in_a_browser(
    browser_context: BrowserContext,  # noqa: F811
    server: tuple[BaseTestServer, CallStore],
) -> None:
    site, store = server
    page, problems = await open_page(browser_context, "glow-owner", str(site.make_url("/calls")))
    await page.wait_for_selector('#live[data-state="on"]', timeout=5000)
    rows_before = await page.locator("#call-rows tr").count()

    mine = make_record(950, GLOW, Outcome.NO_ANSWER, time.time() - 1, XSS_NAME)
    theirs = make_record(951, BOLT, Outcome.NO_ANSWER, time.time() - 1, "Bolt caller")
    await store.save_calls([theirs, mine])
    row = page.locator(f'[id="call-{mine.linkedid}"]')
    await row.wait_for(timeout=5000)
    first = page.locator("#call-rows tr").first
    assert await first.get_attribute("id") == f"call-{mine.linkedid}"  # a new call goes on top
    assert await row.locator('td[data-label="Name"]').inner_text() == XSS_NAME  # text, not markup
    assert await page.locator("#call-rows script").count() == 0

    text = NewText(mine.linkedid, "missed_call", "+15551112222", "+15550001000", "sim", "Sorry", time.time(),
                   business=GLOW, linkedid=mine.linkedid)  # fmt: skip
    await MessageStore(store).enqueue([text], time.time())
    await page.locator(f'[id="call-{mine.linkedid}"] .text-queued').wait_for(timeout=5000)  # replaced in place
    await page.wait_for_timeout(500)
    assert await page.locator(f'[id="call-{mine.linkedid}"]').count() == 1
    assert await page.locator(f'[id="call-{theirs.linkedid}"]').count() == 0
    assert await page.locator("#call-rows tr").count() == rows_before + 1
    assert problems == []


async def test_pages_keep_to_the_csp_and_fit_a_phone(
    browser_context: BrowserContext,  # noqa: F811
    server: tuple[BaseTestServer, CallStore],
) -> None:
    site, _ = server
    page, problems = await open_page(browser_context, "admin", str(site.make_url("/?period=30d")))
    assert await page.locator('[data-figure="calls"]').inner_text() == await page.locator(
        '[data-figure="calls"]').get_attribute("data-value")  # fmt: skip
    assert await page.locator("svg.chart rect.bar").count() == 24 + 7
    color = await page.locator(".top").evaluate("e => getComputedStyle(e).borderBottomStyle")
    assert color == "solid"  # the stylesheet applied
    for path in ("/calls", "/devices", "/system"):
        await visit(page, str(site.make_url(path)))
    # Short values (times, durations, states) never break over two lines, even in a narrow window.
    await page.set_viewport_size({"width": 760, "height": 740})
    for path in ("/calls", "/devices"):
        await visit(page, str(site.make_url(path)))
        lines = await page.locator(".time, .duration, .tag").evaluate_all(LINES_OF_TEXT)
        assert lines and max(lines) == 1, path
    await page.set_viewport_size({"width": 375, "height": 740})
    await visit(page, str(site.make_url("/calls")))
    assert await page.locator("table.calls thead").evaluate("e => getComputedStyle(e).display") == "none"
    cell = page.locator("#call-rows tr td").first
    assert await cell.evaluate("e => getComputedStyle(e, '::before').content") == '"Time"'
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, "nothing wider than a phone"
    # Choosing a filter submits the form (the script, not an inline handler).
    await page.select_option('select[name="outcome"]', "busy")
    await page.wait_for_url("**/calls?*outcome=busy*")
    assert problems == []
