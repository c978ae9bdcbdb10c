"""Click tracking: the booking link in a text becomes {public_url}/r/<token>; a visit is counted, then redirected."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.config import (
    AsteriskConfig,
    Config,
    ConfigError,
    GatewayConfig,
    StorageConfig,
    TextBack,
    WebConfig,
    load_config,
)
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.recovery.policy import PolicyFacts, decide
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.links import MAX_USER_AGENT_CHARS, TOKEN_CHARS, TOKEN_PATTERN, LinkStore, new_token
from callbuddy_pbx.web.links import NOT_FOUND_BODY, link_routes
from callbuddy_pbx.web.server import create_app
from tests.test_policy import SALON as POLICY_SALON
from tests.test_policy import missed_call
from tests.test_textback_e2e import SALON
from tests.test_textback_e2e import Running as TextBackRunning
from tests.traces import all_traces
from tests.waiting import wait_until

PUBLIC_URL = "https://cb.example.com"
BOOKING = "https://glow.example"  # SALON's booking_url
LINK = re.compile(re.escape(PUBLIC_URL) + r"/r/([A-Za-z0-9_-]+)")
TRACE_01 = next(t for t in all_traces() if t.name.startswith("01-"))


# -- configuration -----------------------------------------------------------------------------------------------------

YAML = """\
businesses:
  - name: Glow Salon
    numbers: ["+15550001000"]
    booking_url: https://glow.example/book
    text_back:
      track_clicks: {track}
gateways:
  - {{name: sim, kind: simulated}}
{web}
"""


def load(tmp_path: Path, track: str, web: str = "") -> Config:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(YAML.format(track=track, web=web)), encoding="utf-8")
    return load_config(path)


def problems(tmp_path: Path, track: str, web: str = "") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, track, web)
    return info.value.problems


def test_track_clicks_with_a_public_url_loads(tmp_path: Path) -> None:
    config = load(tmp_path, "true", "web: {public_url: 'https://cb.example.com/'}")
    assert config.businesses[0].text_back.track_clicks is True
    assert config.web.public_url == PUBLIC_URL


def test_track_clicks_is_off_by_default_and_when_false(tmp_path: Path) -> None:
    assert load(tmp_path, "false").businesses[0].text_back.track_clicks is False
    assert TextBack().track_clicks is False


def test_track_clicks_without_a_public_url_points_at_its_line(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    assert problems(tmp_path, "true") == [
        f"{site}:6: businesses[0].text_back.track_clicks: track_clicks needs web.public_url "
        "(the links in texts point at this service: {public_url}/r/<token>)"
    ]
    assert problems(tmp_path, "yes", "web: {port: 8080}")[0].startswith(f"{site}:6: ")


def test_track_clicks_must_be_a_boolean(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    assert problems(tmp_path, "sometimes", f"web: {{public_url: '{PUBLIC_URL}'}}") == [
        f"{site}:6: businesses[0].text_back.track_clicks: 'sometimes' is not true or false"
    ]


# -- the policy: which link the text carries ---------------------------------------------------------------------------


def test_a_tracked_text_links_to_the_token_and_never_to_the_booking_url() -> None:
    call = missed_call()
    token = new_token()
    business = dataclasses.replace(
        POLICY_SALON, text_back=dataclasses.replace(POLICY_SALON.text_back, track_clicks=True)
    )
    decision = decide(call, business, PolicyFacts(), call.ended_at, public_url=PUBLIC_URL + "/", link_token=token)
    assert decision.send
    assert f"{PUBLIC_URL}/r/{token}" in decision.text
    assert POLICY_SALON.booking_url not in decision.text and "glow.example" not in decision.text
    assert (decision.link_token, decision.link_url) == (token, POLICY_SALON.booking_url)


@pytest.mark.parametrize(
    ("track", "public_url", "token"),
    [(False, PUBLIC_URL, "abcdefghijk"), (True, "", "abcdefghijk"), (True, PUBLIC_URL, "")],
    ids=["tracking off", "no public_url", "no token"],
)
def test_an_untracked_text_carries_the_booking_url(track: bool, public_url: str, token: str) -> None:
    call = missed_call()
    business = dataclasses.replace(
        POLICY_SALON, text_back=dataclasses.replace(POLICY_SALON.text_back, track_clicks=track)
    )
    decision = decide(call, business, PolicyFacts(), call.ended_at, public_url=public_url, link_token=token)
    assert decision.send and POLICY_SALON.booking_url in decision.text and "/r/" not in decision.text
    assert (decision.link_token, decision.link_url) == ("", "")


def test_a_template_without_the_booking_link_uses_no_token() -> None:
    call = missed_call()
    text_back = dataclasses.replace(POLICY_SALON.text_back, track_clicks=True, template="{business}: call us back!")
    business = dataclasses.replace(POLICY_SALON, text_back=text_back)
    decision = decide(call, business, PolicyFacts(), call.ended_at, public_url=PUBLIC_URL, link_token="abcdefghijk")
    assert decision.send and decision.text == "Glow Salon: call us back!" and decision.link_token == ""


def test_tokens_are_short_url_safe_and_distinct() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) == TOKEN_CHARS and TOKEN_PATTERN.fullmatch(t) for t in tokens)


# -- end to end: trace -> text -> click --------------------------------------------------------------------------------


@dataclass
class Running:
    server: SimulatedAmiServer
    service: CallService
    store: CallStore
    text_back: TextBackService
    links: LinkStore
    calls: list[CallRecord]
    http: TestClient[web.Request, web.Application]

    async def wait_for_calls(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.calls) < count:
                await asyncio.sleep(0.01)

    async def settle(self) -> None:
        """Nothing more can come of what Asterisk sent so far: see Running.settle in tests/test_textback_e2e.py."""
        await TextBackRunning(self.server, self.service, self.store, self.text_back, self.calls).settle()


@contextlib.asynccontextmanager
async def tracked_service(tmp_path: Path, gateway: SimulatedGateway) -> AsyncIterator[Running]:
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    salon = dataclasses.replace(SALON, text_back=TextBack(gateway=gateway.name, track_clicks=True))
    config = Config(
        asterisk=AsteriskConfig(port=server.port, secret="s3cret", reconnect_min_s=0.05, reconnect_max_s=0.2),
        businesses=(salon,),
        gateways=(GatewayConfig(name=gateway.name, kind="simulated", rate_per_s=0),),
        storage=StorageConfig(tmp_path / "calls.sqlite3"),
        web=WebConfig(public_url=PUBLIC_URL),
    )
    store = await CallStore.open(config.storage.path)
    text_back = TextBackService(config, store, {gateway.name: gateway})
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append, text_back=text_back)
    links = LinkStore(store)
    app = create_app(webhook_gateways={})
    link_routes(app, links)
    http = TestClient(TestServer(app))  # a real server on a free port
    await http.start_server()
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 5)
        yield Running(server, service, store, text_back, links, calls, http)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await http.close()
        await store.close()
        await server.stop()


async def test_the_texted_link_redirects_to_the_booking_page_and_counts_the_click(tmp_path: Path) -> None:
    gateway = SimulatedGateway("sim")
    async with tracked_service(tmp_path, gateway) as run:
        await run.server.replay_raw(TRACE_01.raw)
        await run.wait_for_calls(1)
        await run.settle()
        (sms,) = gateway.sent
        match = LINK.search(sms.text)
        assert match is not None and BOOKING not in sms.text
        token = match.group(1)
        assert len(token) == TOKEN_CHARS
        linkedid = run.calls[0].linkedid
        (stored,) = await run.links.tokens_for_call(linkedid)
        assert (stored.token, stored.url, stored.business) == (token, BOOKING, "Glow Salon")

        # A link preview (HEAD) is redirected but not counted.
        head = await run.http.head(f"/r/{token}", allow_redirects=False)
        assert head.status == 302 and head.headers["Location"] == BOOKING
        assert await run.links.clicks_for_call(linkedid) == 0

        response = await run.http.get(f"/r/{token}", allow_redirects=False, headers={"User-Agent": "x" * 5000})
        assert response.status == 302
        assert response.headers["Location"] == BOOKING
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        await run.http.get(f"/r/{token}", allow_redirects=False)
        assert await run.links.clicks_for_call(linkedid) == 2
        assert await run.links.clicks_for_business("Glow Salon") == 2
        assert await run.links.clicks_by_business() == {"Glow Salon": 2}
        async with run.store.connection.execute("SELECT MAX(LENGTH(user_agent)) FROM link_clicks") as cursor:
            row = await cursor.fetchone()
        assert row is not None and row[0] == MAX_USER_AGENT_CHARS

        # Replaying the same stream (a reconnect): no second text, no second token.
        run.server.drop_clients()
        await wait_until(lambda: run.service.ami.connects == 2 and run.server.clients == 1)
        await run.server.replay_raw(TRACE_01.raw)
        await run.wait_for_calls(2)
        await run.settle()
        assert len(gateway.sent) == 1
        assert [t.token for t in await run.links.tokens_for_call(linkedid)] == [token]
        async with run.store.connection.execute("SELECT COUNT(*) FROM link_tokens") as cursor:
            row = await cursor.fetchone()
        assert row is not None and row[0] == 1


@pytest.mark.parametrize(
    "path",
    ["/r/AAAAAAAAAAA", "/r/short", "/r/" + "A" * 300, "/r/a%20b'--", "/r/", "/r/AAAAAAAAAAA/more"],
    ids=["unknown", "short", "long", "odd characters", "empty", "nested"],
)
async def test_unknown_and_malformed_tokens_are_the_same_404(tmp_path: Path, path: str) -> None:
    store = await CallStore.open(tmp_path / "calls.sqlite3")
    app = create_app(webhook_gateways={})
    link_routes(app, LinkStore(store))
    try:
        async with TestClient(TestServer(app)) as http:
            for method in ("GET", "HEAD"):
                response = await http.request(method, path, allow_redirects=False)
                assert response.status == 404
                assert "Location" not in response.headers
                if method == "GET":
                    assert await response.text() == NOT_FOUND_BODY
        async with store.connection.execute("SELECT COUNT(*) FROM link_clicks") as cursor:
            row = await cursor.fetchone()
        assert row is not None and row[0] == 0
    finally:
        await store.close()
