"""Call back in Chromium, on the real service (simulated Asterisk over AMI answering the Originate): from a missed
caller's conversation the owner chooses a phone and presses "Call back"; the page follows it without a reload (the
script polls /call-backs/<id> under the strict CSP) until the phone talked with the caller, and the recovery figures
count the caller called back."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import BrowserContext, expect

from callbuddy_pbx.sim.originate import OriginatePlan
from callbuddy_pbx.store.conversations import list_threads

# The fixtures are named after their functions: the parameters that use them shadow these imports (F811 below).
from tests.browser import browser_context, watched_page  # noqa: F401
from tests.conversations_site import until
from tests.test_dashboard_e2e import GLOW_DID, OWNER_PASSWORD, Site, log_in, screenshot_path, site_fixture  # noqa: F401

CALLER = "+15557770004"


async def test_an_owner_calls_a_missed_caller_back_and_sees_how_it_went(
    browser_context: BrowserContext,  # noqa: F811
    site: Site,
    tmp_path: Path,
) -> None:
    page, problems = await watched_page(browser_context)
    await site.call("ring_all_no_answer", caller=CALLER[1:], caller_name="Ann", did=GLOW_DID[1:])
    await until(lambda: len(site.gateway.sent) == 1)
    [thread] = await list_threads(site.store, None)
    site.ami.originate_plan = OriginatePlan(desk_ring_s=1.5, caller_ring_s=1.0, talk_s=1.0)
    await log_in(page, site, "glow", OWNER_PASSWORD, f"/conversations/{thread.id}")

    await page.select_option('form.call-back-form select[name="phone"]', label="Back room")
    await page.click('form.call-back-form button:has-text("Call back")')
    status = page.locator(".call-back-status")
    await expect(status).to_contain_text("Ringing Back room")
    (originate,) = [a for a in site.ami.actions if a.get("Action") == "Originate"]
    assert (originate["Channel"], originate["Exten"]) == ("PJSIP/101", CALLER)
    await expect(status).to_contain_text("Calling the caller from Back room")
    await page.screenshot(path=screenshot_path(tmp_path, "call-back"), full_page=True)
    await expect(status).to_have_text("Back room talked with the caller.")
    await expect(status).to_have_attribute("data-in-progress", "no")
    assert await page.locator('select[name="phone"] option:checked').text_content() == "Back room"
    assert problems == []

    async def called_back() -> bool:
        async with site.store.connection.execute("SELECT how FROM recoveries") as cursor:
            return [row[0] for row in await cursor.fetchall()] == ["called_back"]

    await until(called_back)
