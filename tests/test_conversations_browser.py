"""A conversation end to end in Chromium, on the real service (simulated Asterisk over AMI, text-back, the outbox,
a simulated gateway with receipts, the login): a missed call is texted, the caller's reply appears live in the list
and in the open thread, the owner answers, and the answer's receipt shows, with no reload and nothing the strict
CSP blocks. Screenshots go where the dashboard test puts them (docs/screenshots/ with SAVE_SCREENSHOTS=1)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import BrowserContext, expect

from callbuddy_pbx.store.conversations import list_threads

# The fixtures are named after their functions: the parameters that use them shadow these imports (F811 below).
from tests.browser import browser_context, watched_page  # noqa: F401
from tests.conversations_site import until
from tests.test_dashboard_e2e import GLOW_DID, OWNER_PASSWORD, Site, log_in, screenshot_path, site_fixture  # noqa: F401

CALLER = "+15557770003"


async def test_an_owner_reads_a_reply_as_it_comes_and_answers_it(
    browser_context: BrowserContext,  # noqa: F811
    site: Site,
    tmp_path: Path,
) -> None:
    page, problems = await watched_page(browser_context)
    await site.call("ring_all_no_answer", caller=CALLER[1:], caller_name="<b>Ann</b>", did=GLOW_DID[1:])
    await until(lambda: len(site.gateway.sent) == 1)
    await log_in(page, site, "glow", OWNER_PASSWORD, "/conversations")
    await expect(page.locator('#live[data-state="on"]')).to_be_visible()

    # The caller writes back: the thread rises, unread, without a reload.
    await site.gateway.receive(CALLER, GLOW_DID, "Can I come at 3? <i>today</i>")
    [thread] = await list_threads(site.store, None)
    row = page.locator(f'tr[id="thread-{thread.id}"]')
    await expect(row).to_have_attribute("data-unread", "1")
    await expect(row).to_have_class(re.compile(r"\bunread\b"))
    await expect(row).to_contain_text("Can I come at 3? <i>today</i>")  # shown as text, not markup
    await expect(row.locator(".badge")).to_have_text("1")
    await page.screenshot(path=screenshot_path(tmp_path, "conversations"), full_page=True)

    # The thread, then a second reply arrives while it is open.
    await row.locator("a").first.click()
    await expect(page).to_have_url(f"{site.url}/conversations/{thread.id}")
    await expect(page.locator("#live[data-state='on']")).to_be_visible()
    await expect(page.locator("li.entry.call")).to_contain_text("Missed call")
    await expect(page.locator("li.entry.ours").first).to_contain_text("Delivered")
    await site.gateway.receive(CALLER, GLOW_DID, "Or 4 works too")
    await expect(page.locator("li.entry.theirs").last).to_contain_text("Or 4 works too")

    # The owner answers: it goes out once, from the number the caller texted, and its receipt shows.
    await page.fill('textarea[name="body"]', "3pm is free, see you then!")
    await page.click('button:has-text("Send")')
    answer = page.locator("li.entry.ours").last
    await expect(answer).to_contain_text("3pm is free, see you then!")
    await expect(answer).to_contain_text("Answered by glow")
    await expect(answer.locator("[data-status]")).to_have_text("Delivered")
    sent = site.gateway.sent[-1]
    assert (len(site.gateway.sent), sent.to, sent.sender, sent.text) == (
        2,
        CALLER,
        GLOW_DID,
        "3pm is free, see you then!",
    )
    await page.screenshot(path=screenshot_path(tmp_path, "conversation"), full_page=True)
    assert (await list_threads(site.store, None))[0].unread == 0
    assert problems == []
