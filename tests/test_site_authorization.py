"""Who may open what, on the web application `run` serves, route by route.

Every route the service registers is listed in ROUTES with who may use it; a route added without being listed
here fails `test_every_route_is_listed`, so none can slip out without an authorization test. The checks go through
the real login (POST /login with its CSRF token), the real session cookie and the real bearer tokens.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.config import WebUser
from callbuddy_pbx.config.web import ApiToken
from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.passwords import hash_password
from callbuddy_pbx.phone import mask
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.metrics import Metrics
from callbuddy_pbx.service.site import service_site
from callbuddy_pbx.store.db import CallStore
from tests.test_dashboard_e2e import DENTAL, DENTAL_DID, GLOW, GLOW_DID, site_config

PASSWORD = "correct-horse-1"
ALL_TOKEN, GLOW_TOKEN = "a" * 32, "g" * 32
GLOW_CALLER, DENTAL_CALLER = "+15557771111", "+15557772222"

# (method, route) -> what an anonymous visitor gets. Pages send visitors to the login; streams and exports, which
# a browser does not show, answer 401; the JSON API wants its bearer token; the rest is public by design.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/"): "login",
    ("GET", "/calls"): "login",
    ("GET", "/calls/{linkedid}"): "login",
    ("GET", "/devices"): "login",
    ("GET", "/system"): "login",
    ("GET", "/calls.csv"): "401",
    ("GET", "/calls/live"): "401",
    ("GET", "/conversations"): "login",
    ("GET", "/conversations/{thread}"): "login",
    ("GET", "/conversations/live"): "401",
    ("GET", "/conversations/{thread}/live"): "401",
    ("POST", "/conversations/{thread}/answer"): "403",  # more in tests/test_conversations_authorization.py
    ("POST", "/conversations/{thread}/call-back"): "403",  # more in tests/test_callback_web.py
    ("POST", "/calls/{linkedid}/call-back"): "403",
    ("GET", "/call-backs/{id}"): "login",  # the page's script asks for JSON: then a 401
    ("POST", "/logout"): "403",
    ("GET", "/login"): "public",
    ("POST", "/login"): "403",  # without the login form's own CSRF token (more in tests/test_auth.py)
    ("GET", "/static"): "public",
    ("GET", "/healthz"): "public",
    ("GET", "/metrics"): "public",  # counts only: no numbers, no names
    ("GET", "/r/{token}"): "public",  # an unguessable token per text
    ("GET", "/webhooks/{gateway}/{kind}"): "gateway",  # each gateway checks its own signature or token
    ("POST", "/webhooks/{gateway}/{kind}"): "gateway",
    ("GET", "/api/v1/calls"): "bearer",
    ("GET", "/api/v1/calls/{linkedid}"): "bearer",
    ("GET", "/api/v1/messages"): "bearer",
    ("GET", "/api/v1/stats"): "bearer",
    ("GET", "/api/v1/devices"): "bearer",
    ("GET", "/api/v1/health"): "bearer",
    ("GET", "/api/v1/conversations"): "bearer",
    ("GET", "/api/v1/conversations/{thread}"): "bearer",
    ("POST", "/api/v1/conversations/{thread}/answers"): "bearer",
    ("POST", "/api/v1/conversations/{thread}/call-back"): "bearer",
    ("GET", "/api/v1/call-backs/{id}"): "bearer",
}


def call(linkedid: str, business: str, did: str, caller: str) -> CallRecord:
    now = time.time() - 60
    return CallRecord(
        linkedid=linkedid,
        business=business,
        did=did,
        caller=caller,
        caller_raw=caller,
        caller_name="",
        outcome=Outcome.NO_ANSWER,
        answered_by=None,
        started_at=now - 20,
        ring_at=now - 19,
        answered_at=None,
        ended_at=now,
        hangup_cause=16,
        legs=(LegRecord("PJSIP/100-1", "PJSIP/100", "NOANSWER", 16, False, now - 19, now),),
    )


@pytest.fixture(name="client")
async def client_fixture(tmp_path: Path) -> AsyncIterator[TestClient]:
    config = site_config(tmp_path, 1)  # nothing listens on port 1: AMI stays down, which the routes must not mind
    tokens = (ApiToken("all", ALL_TOKEN), ApiToken("glow", GLOW_TOKEN, (GLOW,)))
    config = dataclasses.replace(config, web=dataclasses.replace(config.web, api_tokens=tokens))
    store = await CallStore.open(config.storage.path)
    await store.save_calls(
        [call("1000.1", GLOW, GLOW_DID, GLOW_CALLER), call("2000.1", DENTAL, DENTAL_DID, DENTAL_CALLER)]
    )
    users = (
        WebUser("admin", hash_password(PASSWORD), role="admin"),
        WebUser("glow", hash_password(PASSWORD), role="business", businesses=(GLOW,)),
        # `mask_numbers: true` in the users file
        WebUser("glow-desk", hash_password(PASSWORD), role="business", businesses=(GLOW,), show_numbers=False),
    )
    service = CallService(config, store)
    app = service_site(config, store, service, {}, Metrics(), users=lambda: users)
    async with TestClient(TestServer(app)) as client:
        yield client
    await store.close()


async def log_in(client: TestClient, name: str) -> None:
    page = await client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert match is not None
    response = await client.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf_token": match.group(1), "next": "/"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()


def concrete(path: str) -> str:
    return (
        path.replace("{linkedid}", "1000.1")
        .replace("{token}", "nosuchtoken")
        .replace("{gateway}/{kind}", "nosuch/status")
        .replace("{thread}", "m1")
        .replace("{id}", "0123456789abcdef")
    )


async def test_every_route_is_listed(client: TestClient) -> None:
    registered = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert registered == set(ROUTES), "classify each new route in ROUTES (and test who may open it)"


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
async def test_what_an_anonymous_visitor_gets(client: TestClient, method: str, path: str) -> None:
    expected = ROUTES[(method, path)]
    url = concrete(path) if path != "/static" else "/static/app.css"
    response = await client.request(method, url, allow_redirects=False)
    body = await response.text()
    if expected == "login":
        assert response.status == 302 and response.headers["Location"].startswith("/login?next=")
    elif expected in ("401", "403"):
        assert response.status == int(expected)
    elif expected == "bearer":
        assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    elif expected == "gateway":
        assert response.status == 404  # no such gateway: nothing else is reachable this way
    else:
        assert response.status in (200, 404, 503) and response.status != 401
    assert GLOW_CALLER not in body and DENTAL_CALLER not in body


async def test_a_dashboard_session_does_not_open_the_api(client: TestClient) -> None:
    await log_in(client, "admin")
    assert (await client.get("/calls")).status == 200
    for path in ("/api/v1/calls", "/api/v1/devices", "/api/v1/health"):
        assert (await client.get(path)).status == 401


async def test_a_business_user_sees_only_their_business(client: TestClient) -> None:
    await log_in(client, "glow")
    feed = await client.get("/calls")
    text = await feed.text()
    assert feed.status == 200 and "1000.1" in text and "2000.1" not in text
    assert GLOW_CALLER in text and DENTAL_CALLER not in text  # their own caller in full, to call back; no other

    csv_text = await (await client.get("/calls.csv?all=1")).text()
    assert "1000.1" in csv_text and "2000.1" not in csv_text
    assert GLOW_CALLER in csv_text and DENTAL_CALLER not in csv_text

    own, other, unknown = [await client.get(f"/calls/{i}") for i in ("1000.1", "2000.1", "9999.9")]
    assert own.status == 200
    assert other.status == unknown.status == 404  # another business's call looks like no call at all
    assert (await (await client.get("/calls/2000.1")).read()) == (await (await client.get("/calls/9999.9")).read())

    for admin_only in ("/devices", "/system"):
        assert (await client.get(admin_only)).status == 403
    for page in ("/", "/calls", "/calls.csv"):  # asking for another business by name is refused, not widened
        asked = await client.get(page, params={"business": DENTAL})
        assert asked.status == 403 and "2000.1" not in await asked.text(), page


async def test_a_user_with_mask_numbers_sees_no_full_number_anywhere(client: TestClient) -> None:
    await log_in(client, "glow-desk")
    for page in ("/calls?all=1", "/calls.csv?all=1", "/calls/1000.1"):
        response = await client.get(page)
        text = await response.text()
        assert response.status == 200 and GLOW_CALLER not in text and mask(GLOW_CALLER) in text, page


async def test_an_admin_sees_every_business_and_full_numbers(client: TestClient) -> None:
    await log_in(client, "admin")
    text = await (await client.get("/calls")).text()
    assert "1000.1" in text and "2000.1" in text and GLOW_CALLER in text and DENTAL_CALLER in text
    for page in ("/", "/calls/2000.1", "/devices", "/system"):
        assert (await client.get(page)).status == 200, page


async def test_logout_needs_the_session_csrf_token(client: TestClient) -> None:
    await log_in(client, "admin")
    refused = await client.post("/logout", data={"csrf_token": "forged"}, allow_redirects=False)
    assert refused.status == 403
    assert (await client.get("/calls", allow_redirects=False)).status == 200  # still logged in


async def test_api_tokens_are_scoped_to_their_businesses(client: TestClient) -> None:
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    calls = await (await client.get("/api/v1/calls", headers=auth(GLOW_TOKEN))).json()
    assert [c["linkedid"] for c in calls["calls"]] == ["1000.1"]
    assert (await client.get("/api/v1/calls/2000.1", headers=auth(GLOW_TOKEN))).status == 404
    assert (await client.get("/api/v1/devices", headers=auth(GLOW_TOKEN))).status == 403
    assert (await client.get("/api/v1/stats", params={"business": DENTAL}, headers=auth(GLOW_TOKEN))).status == 403
    assert (await client.get("/api/v1/devices", headers=auth(ALL_TOKEN))).status == 200
    health = await client.get("/api/v1/health", headers=auth(ALL_TOKEN))
    assert health.status in (200, 503) and (await health.json())["ami"]["connected"] is False
