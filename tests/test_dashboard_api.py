"""GET /api/v1/devices and /api/v1/health (web/api.py): the dashboard's live parts for scripts, behind the same
bearer tokens as the rest of the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.asterisk.devices_model import Device
from callbuddy_pbx.config.web import ApiToken
from callbuddy_pbx.push.binding import parse_contact
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.api import api_routes
from tests.test_dashboard_helpers import BOLT, DEVICES, GLOW, HEALTH

ALL_TOKEN = "a" * 24 + "-all"
GLOW_TOKEN = "g" * 30
TOKENS = (ApiToken("ops", ALL_TOKEN), ApiToken("glow", GLOW_TOKEN, (GLOW, BOLT)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(name="store")
async def store_fixture(tmp_path: Path) -> AsyncIterator[CallStore]:
    async with await CallStore.open(tmp_path / "calls.sqlite3") as store:
        yield store


async def client_for(store: CallStore, **live: object) -> TestClient:  # type: ignore[type-arg]
    app = web.Application()
    api_routes(app, store, TOKENS, **live)  # type: ignore[arg-type]
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_devices_for_tokens_of_every_business_only(store: CallStore) -> None:
    client = await client_for(store, devices=lambda: DEVICES, health=lambda: HEALTH)
    try:
        response = await client.get("/api/v1/devices", headers=bearer(ALL_TOKEN))
        assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
        body = await response.json()
        assert body == {"devices": [{**asdict(d), "contacts": list(d.contacts)} for d in DEVICES]}
        assert body["devices"][2]["registered"] is None  # unknown stays unknown
        response = await client.get("/api/v1/devices", headers=bearer(GLOW_TOKEN))
        assert response.status == 403
        assert (await response.json()) == {"error": "only a token for every business may read devices"}
        for headers in ({}, bearer("x" * 30)):
            response = await client.get("/api/v1/devices", headers=headers)
            assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    finally:
        await client.close()


async def test_health_for_any_token(store: CallStore) -> None:
    client = await client_for(store, devices=lambda: DEVICES, health=lambda: HEALTH)
    try:
        for token in (ALL_TOKEN, GLOW_TOKEN):
            response = await client.get("/api/v1/health", headers=bearer(token))
            assert response.status == 200  # the answer says what is down; the request itself worked
            assert (await response.json()) == HEALTH.to_json() and HEALTH.to_json()["ok"] is False
        assert (await client.get("/api/v1/health")).status == 401
    finally:
        await client.close()


async def test_without_live_parts_both_are_404_and_old_callers_still_work(store: CallStore) -> None:
    client = await client_for(store)  # as commands/run.py calls it today
    try:
        response = await client.get("/api/v1/devices", headers=bearer(ALL_TOKEN))
        assert response.status == 404 and (await response.json()) == {"error": "device status is not available"}
        response = await client.get("/api/v1/health", headers=bearer(ALL_TOKEN))
        assert response.status == 404 and (await response.json()) == {"error": "health is not available"}
        assert (await client.get("/api/v1/health")).status == 401  # the token is checked first
        assert (await client.get("/api/v1/calls", headers=bearer(GLOW_TOKEN))).status == 200
    finally:
        await client.close()


async def test_the_live_parts_are_read_on_each_request(store: CallStore) -> None:
    shown: list[tuple[Device, ...]] = [DEVICES[:1]]
    client = await client_for(store, devices=lambda: shown[0])
    try:
        first = await (await client.get("/api/v1/devices", headers=bearer(ALL_TOKEN))).json()
        shown[0] = DEVICES
        second = await (await client.get("/api/v1/devices", headers=bearer(ALL_TOKEN))).json()
        assert (len(first["devices"]), len(second["devices"])) == (1, 3)
    finally:
        await client.close()


async def test_a_softphones_push_token_never_leaves_whole(store: CallStore) -> None:
    """Anyone holding the app's push key could ring a phone whose token they have: the API shows it masked only."""
    token = "c0ffee" * 10 + "beef"
    uri = (
        "sip:103@203.0.113.5:40001;transport=tcp"
        f";pn-provider=apns;pn-prid={token};pn-param=ABCDE12345.com.example.app.voip"
    )
    binding = parse_contact(uri)
    assert binding is not None
    mobile = Device("PJSIP/103", "103", "NOT_INUSE", True, (uri,), push_binding=binding)
    client = await client_for(store, devices=lambda: (mobile,), health=lambda: HEALTH)
    try:
        response = await client.get("/api/v1/devices", headers=bearer(ALL_TOKEN))
        text = await response.text()
        assert response.status == 200 and token not in text
        (device,) = (await response.json())["devices"]
        assert device["push_binding"]["provider"] and "pn-prid=" in device["contacts"][0]  # still says what it is
    finally:
        await client.close()
