"""The call detail, devices and system pages, the error pages, /static, and what every page shares: who may see
it, the nav and logout form, escaping, and markup that runs under the strict CSP (no inline script or style).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.model import Outcome
from callbuddy_pbx.phone import mask
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore, NewText, SendUpdate
from callbuddy_pbx.web.dashboard import STATIC_DIR
from tests.test_dashboard_helpers import (  # noqa: F401 (fixtures)
    BOLT,
    CSRF,
    GLOW,
    GONE,
    NOW,
    XSS_NAME,
    Scenario,
    Site,
    filled_fixture,
    make_app,
    make_context,
    read_html,
    site_fixture,
)

PAGES = ("/", "/calls", "/calls?all=1", "/devices", "/system")


def detail(site: Site, linkedid: str) -> str:
    return "/calls/" + urllib.parse.quote(linkedid, safe="")


def calls_of(scenario: Scenario, business: str | None) -> list[str]:
    return [c.record.linkedid for c in scenario.calls if c.record.business == business]


async def test_a_call_of_another_business_is_the_same_404_as_no_call(site: Site) -> None:
    _, unknown = await site.page("/calls/1234.5678", "glow")
    assert "There is no such call." in unknown
    for business in (BOLT, None, GONE):
        for linkedid in calls_of(site.scenario, business)[:3]:
            status, html = await site.page(detail(site, linkedid), "glow")
            assert (status, html) == (404, unknown)  # nothing tells that it exists
            assert linkedid not in html
    for linkedid in calls_of(site.scenario, GLOW)[:3]:
        assert (await site.page(detail(site, linkedid), "glow"))[0] == 200
    for business in (GLOW, BOLT, None, GONE):  # an admin sees every call, with or without a business
        assert (await site.page(detail(site, calls_of(site.scenario, business)[0]), "admin"))[0] == 200
    assert (await site.page("/calls/" + "x" * 300, "admin"))[0] == 404


async def test_call_detail_shows_the_call_legs_verdict_texts_and_clicks(site: Site) -> None:
    clicked = next(c for c in site.scenario.calls if c.clicks == 3 and c.record.business == GLOW)
    record = clicked.record
    assert record.caller is not None
    status, html = await site.page(detail(site, record.linkedid), "both")
    assert status == 200
    assert f'Call from <span class="number">{record.caller}</span>' in html and (record.caller_name or "") in html
    assert '<p class="story" data-figure="story">' in html  # its words: test_dashboard_call_story.py
    assert html.count("<tr data-phone=") == len(record.legs) == 2  # the desk and the mobile the trunk dialled
    assert '<tr data-phone="15557654321">' in html  # a viewer with numbers sees the number forwarded to
    assert read_html(html).figures["clicks"] == "3"
    assert "Mozilla/5.0 &lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html
    assert "CallBuddy chose to text the caller back." in html
    assert '<span class="tag text-delivered">Delivered</span>' in html and "Sorry we missed you" in html
    for technical in ("Technical details", "Hang-up cause", "Dial status", "PJSIP/", "Message id", record.linkedid):
        assert technical not in html.replace(f"/calls/{record.linkedid}", "")  # an owner reads none of it

    status, admin = await site.page(detail(site, record.linkedid), "admin")
    assert status == 200 and '<details class="technical">' in admin
    assert admin.count('<td data-label="Endpoint">') == 2 and "PJSIP/15557654321@trunk" in admin
    assert f"<code>{record.linkedid}</code>" in admin and f"m-{record.linkedid}" in admin

    status, masked = await site.page(detail(site, record.linkedid), "glow")
    assert status == 200 and record.caller not in masked and mask(record.caller) in masked
    assert "15557654321" not in masked and '<tr data-phone="15*******21">' in masked

    hostile = next(c for c in site.scenario.calls if c.record.caller_name == XSS_NAME)
    _, html = await site.page(detail(site, hostile.record.linkedid), "glow")
    assert XSS_NAME not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;" in html
    assert '<span class="tag text-failed">Failed</span>' in html and "rejected by the gateway" not in html
    _, html = await site.page(detail(site, hostile.record.linkedid), "admin")
    assert "rejected by the gateway" in html  # the gateway's words are for the admin

    answered = next(c for c in site.scenario.calls if not c.record.missed and c.record.business == GLOW)
    _, html = await site.page(detail(site, answered.record.linkedid), "glow")
    assert "Answered calls are not texted." in html


async def test_call_detail_names_the_configured_phones(site: Site) -> None:
    """Desk 101 is "Front desk", used by Ann; desk 100 is not in the configuration. The mobile the trunk dialled is
    a number, masked for this viewer like the caller's."""
    for desk, name in (("101", "Ann (Front desk)"), ("100", "phone 100")):
        call = next(
            c
            for c in site.scenario.calls
            if c.record.business == GLOW
            and c.record.outcome is Outcome.NO_ANSWER
            and c.record.legs[0].endpoint == f"PJSIP/{desk}"
        )
        _, html = await site.page(detail(site, call.record.linkedid), "glow")
        assert f'<tr data-phone="{name}">' in html
        story = re.search(r'<p class="story" data-figure="story">([^<]*)</p>', html)
        assert story is not None
        assert story.group(1) == f"Rang {name} and 15*******21 for 35\u00a0s; nobody picked up."


async def test_devices_page(site: Site) -> None:
    status, html = await site.page("/devices", "admin")
    assert status == 200
    page = read_html(html)
    rows = [attrs.get("data-device") for tag, attrs in page.elements if tag == "tr" and "data-device" in attrs]
    assert rows == ["PJSIP/101", "PJSIP/102", "PJSIP/103"]
    cells = re.findall(r'<td data-label="(Phone|Person|Business)" class="name">([^<]*)', html)
    assert [text.strip() for _, text in cells] == [
        "Front desk", "Ann", GLOW,  # the configured name and person, not the registry's
        "Back room", "–", BOLT,
        "103", "–", "–",  # not configured: its extension
    ]  # fmt: skip
    assert re.findall(r'data-value="(\w+)">([\w ]+)</span>', html) == [
        ("yes", "Connected"), ("no", "Not connected"), ("unknown", "Unknown")
    ]  # fmt: skip
    states = re.findall(r'<span class="tag" data-state="(\w+)" title="\w+">([^<]+)</span>', html)
    assert states == [("NOT_INUSE", "Free"), ("UNAVAILABLE", "Not connected"), ("UNKNOWN", "Unknown")]
    assert "Yealink &lt;b&gt;T46&lt;/b&gt;" in html and "<b>" not in html
    assert '<code class="contact">sip:101@10.0.0.5:5060</code>' in html  # a connected phone: where it is
    assert "2024-03-15 14:30" in html and "Times in UTC." in html  # the shared clock (UTC here: the clocks differ)


async def test_devices_page_without_devices(filled: tuple[CallStore, Scenario]) -> None:
    store, _ = filled
    ctx = make_context(store, devices=lambda: (), health=None, ami_last_event_at=lambda: None)
    async with TestClient(TestServer(make_app(ctx))) as client:
        response = await client.get("/devices", headers={"X-Test-User": "admin"})
        assert "No devices known yet" in await response.text()
        response = await client.get("/system", headers={"X-Test-User": "admin"})
        html = await response.text()
        assert read_html(html).figures["ami"] == "unknown" and "none yet" in html
        assert "No gateways configured" in html


async def test_system_page(site: Site) -> None:
    messages = MessageStore(site.store)
    for n, failed_at in enumerate((NOW - 600, NOW - 7200)):  # one failure inside the last hour, one before it
        key = f"system-{n}"
        await messages.enqueue([NewText(key, "help", "+15550000001", "+15550001000", "sim", "help", NOW - 9000)], NOW)
        (row,) = [m for m in await messages.list_messages(limit=500) if m.key == key]
        await messages.claim([row.id], failed_at)
        await messages.apply_send_results([SendUpdate(row.id, "failed", 1, row.send_at, None, "no route", failed_at)])
    status, html = await site.page("/system", "admin")
    assert status == 200
    got = read_html(html).figures
    queued = sum(c.fate == "queued" for c in site.scenario.calls)
    assert (got["backlog"], got["failed_last_hour"]) == (str(queued), "1") and queued
    assert got["ami"] == "down" and "connection refused &lt;by&gt; firewall" in html
    assert (got["gateway:smpp-main"], got["gateway:twilio"]) == ("up", "down")
    assert "last send failed: &lt;timeout&gt;" in html
    assert "2024-03-15 15:29:48 (12\xa0s ago)" in html  # the last AMI event
    assert got["version"] == "9.9.9-test" and str(site.store.path) in html


@pytest.mark.parametrize("user", ["glow", "bolt", "both"])
async def test_admin_pages_are_refused_to_business_users(site: Site, user: str) -> None:
    for path in ("/devices", "/system"):
        status, html = await site.page(path, user)
        assert status == 403 and "Only administrators may see this page." in html
        assert "PJSIP/101" not in html and "smpp-main" not in html
    _, html = await site.page("/", user)
    assert 'href="/devices"' not in html and 'href="/system"' not in html
    assert 'href="/calls"' in html


async def test_nav_and_logout_form(site: Site) -> None:
    _, html = await site.page("/calls", "admin")
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S)
    assert nav is not None
    assert re.findall(r'href="([^"]+)"', nav.group(1)) == ["/", "/calls", "/conversations", "/devices", "/system"]
    assert '<a href="/calls" aria-current="page">Missed calls</a>' in html
    assert '<form method="post" action="/logout">' in html
    assert f'<input type="hidden" name="csrf_token" value="{CSRF}">' in html
    assert '<span class="user-name">admin</span>' in html


@pytest.mark.parametrize("path", [*PAGES, "/calls.csv", "/calls/live", "/calls/1.1"])
async def test_no_viewer_sees_nothing(site: Site, path: str) -> None:
    status, html = await site.page(path, user=None)
    assert status == 403 and "Log in to see this page." in html
    assert "<tr id=" not in html and "data-figure" not in html and "/logout" not in html


async def test_static_files_are_public(site: Site) -> None:
    for name, kind in (("app.css", "text/css"), ("app.js", "javascript")):
        response = await site.client.get(f"/static/{name}")
        assert response.status == 200 and kind in response.headers["Content-Type"]
        assert (await response.read()) == (STATIC_DIR / name).read_bytes()
    assert (await site.client.get("/static/../dashboard.py")).status in (403, 404)
    assert (await site.client.get("/static/nothing.css")).status == 404


def test_static_files_need_no_network() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import", text), path.name
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert "eval(" not in script and "new Function" not in script and "document.write" not in script


CSP_BREAKERS = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline script"),
    (re.compile(r"<[^>]+\son[a-z]+\s*=", re.I), "an on* handler attribute"),
    (re.compile(r"<[^>]+\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"<style", re.I), "a style element"),
    (re.compile(r"""(?:src|href|action)=["'](?:https?:)?//""", re.I), "a resource from elsewhere"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


async def test_every_page_keeps_to_the_csp_and_fits_a_phone(site: Site) -> None:
    clicked = next(c for c in site.scenario.calls if c.clicks and c.record.business == GLOW)
    hostile = next(c for c in site.scenario.calls if c.record.caller_name == XSS_NAME)
    paths = [*PAGES, detail(site, clicked.record.linkedid), detail(site, hostile.record.linkedid), "/calls/none"]
    for user in ("admin", "glow"):
        for path in paths:
            status, html = await site.page(path, user)
            assert status in (200, 403, 404)
            for pattern, what in CSP_BREAKERS:
                assert not pattern.search(html), f"{path} as {user}: {what}: {pattern.search(html)}"
            assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
            assert '<link rel="stylesheet" href="/static/app.css">' in html
            assert '<script src="/static/app.js" defer></script>' in html
    css = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    assert "@media (max-width" in css and "content: attr(data-label)" in css  # tables stack on a phone


async def test_feed_rows_link_to_their_detail(site: Site) -> None:
    _, html = await site.page("/calls", "glow")
    links = re.findall(r'<a href="(/calls/[^"]+)">', html)
    assert links and len(links) == len(read_html(html).row_ids)
    status, page = await site.page(links[0], "glow")
    assert status == 200 and "Phones that rang" in page


async def test_linkedid_with_odd_characters(filled: tuple[CallStore, Scenario], tmp_path: Path) -> None:
    store, scenario = filled
    odd = replace(scenario.calls[0].record, linkedid='a/b?c#"<x>', business=GLOW)
    await store.save_calls([odd])
    async with TestClient(TestServer(make_app(make_context(store)))) as client:
        response = await client.get("/calls", params={"all": "1", "q": (odd.caller or "")[1:]},
                                    headers={"X-Test-User": "admin"})  # fmt: skip
        html = await response.text()
        assert 'id="call-a/b?c#&#34;&lt;x&gt;"' in html
        href = re.search(r'<a href="(/calls/a[^"]+)">', html)
        assert href is not None and href.group(1) == "/calls/a%2Fb%3Fc%23%22%3Cx%3E"
        response = await client.get(href.group(1), headers={"X-Test-User": "admin"})
        assert response.status == 200 and "a/b?c#&#34;&lt;x&gt;" in await response.text()


async def test_streams_answer_get_only(site: Site) -> None:
    for path in ("/calls.csv", "/calls/live"):
        response = await site.client.head(path, headers={"X-Test-User": "admin"})
        assert response.status in (404, 405)  # /calls/live falls through to /calls/{linkedid}: no such call
        assert not response.headers["Content-Type"].startswith(("text/event-stream", "text/csv"))
    assert (await site.client.head("/calls", headers={"X-Test-User": "admin"})).status == 200
