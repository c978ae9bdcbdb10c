"""Dashboard login (web/auth.py): what a person with a browser, or an attacker with one, runs into.

The real dashboard pages are mounted elsewhere; here a few stand-in routes play them: GET /probe answers with the
viewer it was given, POST /probe-post counts what it was asked to do, GET /probe.csv is an export.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.config.users import WebUser
from callbuddy_pbx.passwords import check_hash_format, hash_password, verify_password
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web import auth as auth_module
from callbuddy_pbx.web.auth import (
    CLIENT_MAX_FAILURES,
    LOGIN_CSRF_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    auth_setup,
    safe_next,
)
from callbuddy_pbx.web.server import create_app
from callbuddy_pbx.web.viewer import CSRF_KEY, VIEWER_KEY

GLOW = "Glow Salon"
ANN_PASSWORD = "ann's long password"
BOB_PASSWORD = "bob-salon-2024!"
ANN = WebUser("ann", hash_password(ANN_PASSWORD), "admin")
BOB = WebUser("bob", hash_password(BOB_PASSWORD), "business", (GLOW,), show_numbers=False)
T0 = 1_700_000_000.0

Client = TestClient  # type: ignore[type-arg]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    client: Client
    store: CallStore
    clock: Clock
    users: list[WebUser]
    posted: list[str] = field(default_factory=list)  # what POST /probe-post was asked to do


async def _probe(request: web.Request) -> web.Response:
    viewer = request[VIEWER_KEY]
    return web.json_response(
        {
            "name": viewer.name,
            "role": viewer.role,
            "businesses": list(viewer.businesses),
            "show_numbers": viewer.show_numbers,
            "csrf": request[CSRF_KEY],
        }
    )


def _routes(posted: list[str]) -> Callable[[web.Application], None]:
    async def probe_post(request: web.Request) -> web.Response:
        form = await request.post()
        posted.append(str(form.get("what", "")))
        return web.Response(text="done")

    async def fixed(request: web.Request) -> web.Response:
        return web.Response(text=f"public {request.path}")

    def add(app: web.Application) -> None:
        app.router.add_get("/healthz", fixed)
        app.router.add_get("/metrics", fixed)
        app.router.add_get("/r/{token}", fixed)
        app.router.add_get("/api/v1/ping", fixed)
        app.router.add_get("/static/app.css", fixed)
        app.router.add_get("/probe", _probe)
        app.router.add_get("/probe.csv", fixed)
        app.router.add_post("/probe-post", probe_post)
        app.router.add_get("/", fixed)
        app.router.add_get("/{page:.*}", fixed)  # a catch-all page route, last

    return add


async def _site(
    store: CallStore,
    *,
    secure_cookies: str = "never",
    public_url: str = "",
    session_hours: float = 12.0,
    trusted_proxies: tuple[str, ...] = (),
) -> Site:
    clock = Clock()
    users = [ANN, BOB]
    posted: list[str] = []
    app = create_app(webhook_gateways={}, extra_routes=_routes(posted))
    auth_setup(
        app,
        store=store,
        users=lambda: users,
        public_url=public_url,
        secure_cookies=secure_cookies,
        session_hours=session_hours,
        clock=clock,
        trusted_proxies=trusted_proxies,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return Site(client, store, clock, users, posted)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CallStore]:
    async with await CallStore.open(tmp_path / "calls.sqlite3") as store:
        yield store


@pytest.fixture
async def site(store: CallStore) -> AsyncIterator[Site]:
    site = await _site(store)
    yield site
    await site.client.close()


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert match is not None, html
    return match.group(1)


async def login(
    client: Client, name: str, password: str, next_path: str | None = None, headers: dict[str, str] | None = None
) -> ClientResponse:
    page = await client.get("/login")
    assert page.status == 200
    data = {"name": name, "password": password, "csrf_token": form_token(await page.text())}
    if next_path is not None:
        data["next"] = next_path
    return await client.post("/login", data=data, allow_redirects=False, headers=headers)


async def session_of(client: Client) -> dict[str, object]:
    response = await client.get("/probe", allow_redirects=False)
    assert response.status == 200, response.status
    result: dict[str, object] = await response.json()
    return result


def set_cookies(response: ClientResponse) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    headers = response.headers.getall("Set-Cookie", [])
    return {header.split("=", 1)[0]: header for header in headers}


async def session_rows(store: CallStore) -> list[tuple[str, str]]:
    async with store.connection.execute("SELECT id_hash, user_name FROM web_sessions") as cursor:
        return [(row[0], row[1]) for row in await cursor.fetchall()]


# -- logging in --------------------------------------------------------------------------------------------------


async def test_login_with_the_right_password_opens_the_dashboard(site: Site) -> None:
    response = await login(site.client, "ann", ANN_PASSWORD)
    assert response.status == 303
    assert response.headers["Location"] == "/"
    assert (await session_of(site.client))["name"] == "ann"
    assert [user for _, user in await session_rows(site.store)] == ["ann"]


async def test_a_wrong_password_shows_the_form_again_with_an_error(site: Site) -> None:
    response = await login(site.client, "ann", "not the password")
    assert response.status == 401
    html = await response.text()
    assert 'role="alert"' in html and "Wrong user name or password." in html
    assert 'value="ann"' in html  # the name is kept, the password is not
    assert "not the password" not in html
    assert SESSION_COOKIE not in set_cookies(response)
    assert (await site.client.get("/probe", allow_redirects=False)).status == 302
    assert await session_rows(site.store) == []


async def test_user_names_ignore_case_and_the_session_holds_the_configured_name(site: Site) -> None:
    assert (await login(site.client, "ANN", ANN_PASSWORD)).status == 303
    assert (await session_of(site.client))["name"] == "ann"


async def test_the_login_page_is_a_plain_form(site: Site) -> None:
    response = await site.client.get("/login", params={"next": "/calls"})
    html = await response.text()
    assert response.content_type == "text/html"
    for needed in ('name="name"', 'name="password"', 'name="csrf_token"', 'name="next" value="/calls"', "Log in"):
        assert needed in html
    assert 'name="viewport"' in html and "/static/app.css" in html
    assert "<script" not in html and "style=" not in html  # the CSP forbids both
    assert 'role="alert"' not in html  # no error yet
    cookie = set_cookies(response)[LOGIN_CSRF_COOKIE]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/login" in cookie


async def test_an_unknown_name_costs_a_scrypt_run_like_a_wrong_password(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []

    def spy(password: str, encoded: str) -> bool:
        checked.append(encoded)
        return verify_password(password, encoded)

    monkeypatch.setattr(auth_module, "verify_password", spy)
    assert (await login(site.client, "mallory", "whatever-password")).status == 401
    assert (await login(site.client, "ann", "whatever-password")).status == 401
    dummy, real = checked
    assert check_hash_format(dummy) is None  # a usable hash of the same cost, not a shortcut
    assert dummy.split("$")[:4] == real.split("$")[:4] == ANN.password_hash.split("$")[:4]
    assert real == ANN.password_hash


async def test_login_form_without_its_csrf_cookie_is_refused(site: Site) -> None:
    page = await site.client.get("/login")
    token = form_token(await page.text())
    site.client.session.cookie_jar.clear()
    data = {"name": "ann", "password": ANN_PASSWORD, "csrf_token": token}
    response = await site.client.post("/login", data=data, allow_redirects=False)
    assert response.status == 403
    assert "expired" in await response.text()
    assert await session_rows(site.store) == []
    # A form field that does not match the cookie is refused too.
    page = await site.client.get("/login")
    data["csrf_token"] = "x" * 43
    assert (await site.client.post("/login", data=data, allow_redirects=False)).status == 403
    assert await session_rows(site.store) == []


async def test_a_login_post_from_another_site_is_refused(site: Site) -> None:
    response = await login(site.client, "ann", ANN_PASSWORD, headers={"Origin": "https://evil.example"})
    assert response.status == 403
    assert await session_rows(site.store) == []


async def test_an_oversized_login_form_is_refused(site: Site) -> None:
    await site.client.get("/login")
    response = await site.client.post("/login", data={"name": "ann", "password": "x" * 10_000})
    assert response.status == 413


async def test_already_logged_in_the_login_page_moves_on(site: Site) -> None:
    await login(site.client, "ann", ANN_PASSWORD)
    response = await site.client.get("/login", params={"next": "/probe"}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/probe"


# -- where a login leads ------------------------------------------------------------------------------------------


async def test_a_page_without_login_goes_to_the_login_page_and_back(site: Site) -> None:
    response = await site.client.get("/probe?x=1&y=2", allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location == "/login?next=%2Fprobe%3Fx%3D1%26y%3D2"
    page = await site.client.get(location)
    assert 'name="next" value="/probe?x=1&amp;y=2"' in await page.text()
    response = await login(site.client, "ann", ANN_PASSWORD, next_path="/probe?x=1&y=2")
    assert response.headers["Location"] == "/probe?x=1&y=2"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "//evil.com/probe",
        "https://evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "/\t/evil.com",
        "javascript:alert(1)",
        "evil.com",
        "",
        "/login?next=//evil.com",
    ],
)
async def test_next_never_leads_to_another_site(site: Site, target: str) -> None:
    response = await login(site.client, "ann", ANN_PASSWORD, next_path=target)
    assert response.status == 303
    assert response.headers["Location"] == "/"


def test_safe_next_keeps_local_paths() -> None:
    assert safe_next("/calls?missed=1#top") == "/calls?missed=1#top"
    assert safe_next("/") == "/"
    assert safe_next(None) == "/"
    assert safe_next("/" + "a" * 5000) == "/"


async def test_next_and_the_typed_name_are_escaped_in_the_page(site: Site) -> None:
    hostile = '/"><script>alert(1)</script>'
    page = await site.client.get("/login", params={"next": hostile})
    html = await page.text()
    assert "<script>" not in html
    assert "&#34;&gt;&lt;script&gt;" in html
    data = {"name": '"><img src=x onerror=alert(1)>', "password": "x", "csrf_token": form_token(html), "next": hostile}
    response = await site.client.post("/login", data=data, allow_redirects=False)
    html = await response.text()
    assert response.status == 401
    assert "<img" not in html and "<script>" not in html
    assert "&lt;img" in html


# -- what needs a session ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/probe", {"Accept": "application/json"}, 401),
        ("GET", "/probe", {"Accept": "text/event-stream"}, 401),
        ("GET", "/probe.csv", {}, 401),
        ("POST", "/probe-post", {}, 403),
        ("POST", "/logout", {}, 403),
        ("HEAD", "/probe", {}, 302),
        ("GET", "/nowhere", {}, 302),  # unknown pages do not tell strangers they do not exist
    ],
)
async def test_without_a_session(site: Site, method: str, path: str, headers: dict[str, str], status: int) -> None:
    response = await site.client.request(method, path, headers=headers, data={"what": "x"}, allow_redirects=False)
    assert response.status == status
    assert site.posted == []


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/r/abc123", "/api/v1/ping", "/static/app.css"])
async def test_public_paths_are_not_intercepted(site: Site, path: str) -> None:
    response = await site.client.get(path, allow_redirects=False)
    assert response.status == 200
    assert await response.text() == f"public {path}"
    assert "Content-Security-Policy" not in response.headers  # not a dashboard page


async def test_webhooks_are_not_intercepted(site: Site) -> None:
    response = await site.client.post("/webhooks/nosuch/status", data={"x": "1"}, allow_redirects=False)
    assert response.status == 404  # the webhook router's own answer, not a login redirect or a CSRF refusal


async def test_a_path_that_only_decodes_to_a_public_one_is_still_protected(site: Site) -> None:
    # Decoded, the path starts with /r/; the route it reaches is the catch-all dashboard page.
    response = await site.client.get("/r%2F..%2Fsecret", allow_redirects=False)
    assert response.status == 302
    assert (await site.client.get("/anything/else", allow_redirects=False)).status == 302


async def test_a_prefix_is_not_a_word_start(site: Site) -> None:
    response = await site.client.get("/login-history", allow_redirects=False)
    assert response.status == 302  # not public just because it starts with /login


# -- what the page gets ------------------------------------------------------------------------------------------


async def test_an_admin_sees_every_business_and_full_numbers(site: Site) -> None:
    await login(site.client, "ann", ANN_PASSWORD)
    viewer = await session_of(site.client)
    assert viewer["role"] == "admin" and viewer["businesses"] == [] and viewer["show_numbers"] is True


async def test_a_business_user_sees_their_businesses_and_changes_apply_at_once(site: Site) -> None:
    await login(site.client, "bob", BOB_PASSWORD)
    viewer = await session_of(site.client)
    assert viewer["role"] == "business" and viewer["businesses"] == [GLOW] and viewer["show_numbers"] is False
    site.users[1] = WebUser("bob", BOB.password_hash, "business", (GLOW, "Bolt Garage"), show_numbers=True)
    viewer = await session_of(site.client)
    assert viewer["businesses"] == [GLOW, "Bolt Garage"] and viewer["show_numbers"] is True


async def test_a_removed_users_session_stops_working(site: Site) -> None:
    await login(site.client, "bob", BOB_PASSWORD)
    await session_of(site.client)
    del site.users[1]
    response = await site.client.get("/probe", allow_redirects=False)
    assert response.status == 302
    assert await session_rows(site.store) == []  # a later user called bob does not inherit it
    site.users.append(BOB)
    assert (await site.client.get("/probe", allow_redirects=False)).status == 302


async def test_security_headers_on_dashboard_responses(site: Site) -> None:
    for response in (
        await site.client.get("/login"),
        await site.client.get("/probe", allow_redirects=False),  # the redirect too
    ):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
        assert response.headers["Cache-Control"] == "no-store"
    await login(site.client, "ann", ANN_PASSWORD)
    response = await site.client.get("/probe")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# -- posting -----------------------------------------------------------------------------------------------------


async def test_posts_need_the_sessions_csrf_token(site: Site) -> None:
    await login(site.client, "ann", ANN_PASSWORD)
    csrf = str((await session_of(site.client))["csrf"])
    assert (await site.client.post("/probe-post", data={"what": "none"})).status == 403
    assert (await site.client.post("/probe-post", data={"what": "wrong", "csrf_token": "x" * 43})).status == 403
    wrong_header = {"X-CSRF-Token": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}
    assert (await site.client.post("/probe-post", data={"what": "bad header"}, headers=wrong_header)).status == 403
    assert site.posted == []
    assert (await site.client.post("/probe-post", data={"what": "form", "csrf_token": csrf})).status == 200
    assert (
        await site.client.post("/probe-post", data={"what": "header"}, headers={"X-CSRF-Token": csrf})
    ).status == 200
    assert site.posted == ["form", "header"]


async def test_a_cross_site_post_is_refused_even_with_the_token(site: Site) -> None:
    await login(site.client, "ann", ANN_PASSWORD)
    csrf = str((await session_of(site.client))["csrf"])
    data = {"what": "transfer", "csrf_token": csrf}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        assert (await site.client.post("/probe-post", data=data, headers=headers)).status == 403
    assert site.posted == []
    own = str(site.client.make_url("/")).rstrip("/")
    assert (await site.client.post("/probe-post", data=data, headers={"Origin": own})).status == 200
    assert site.posted == ["transfer"]


async def test_a_tls_proxy_origin_counts_as_ours(store: CallStore) -> None:
    site = await _site(store, public_url="https://cb.example.com", secure_cookies="never")
    try:
        await login(site.client, "ann", ANN_PASSWORD, headers={"Origin": "https://cb.example.com"})
        csrf = str((await session_of(site.client))["csrf"])
        headers = {"Origin": "https://cb.example.com", "X-CSRF-Token": csrf}
        assert (await site.client.post("/probe-post", data={"what": "ok"}, headers=headers)).status == 200
    finally:
        await site.client.close()


# -- sessions ending ---------------------------------------------------------------------------------------------


async def test_logout_really_ends_the_session(site: Site) -> None:
    await login(site.client, "ann", ANN_PASSWORD)
    csrf = str((await session_of(site.client))["csrf"])
    old = site.client.session.cookie_jar.filter_cookies(site.client.make_url("/"))[SESSION_COOKIE].value
    assert (await site.client.post("/logout", allow_redirects=False)).status == 403  # no token: still logged in
    await session_of(site.client)
    response = await site.client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert "Max-Age=0" in set_cookies(response)[SESSION_COOKIE]
    assert await session_rows(site.store) == []
    site.client.session.cookie_jar.update_cookies({SESSION_COOKIE: old})  # a copy of the old cookie is worthless
    response = await site.client.get("/probe", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login")


async def test_a_session_lasts_session_hours(store: CallStore) -> None:
    site = await _site(store, session_hours=1)
    try:
        response = await login(site.client, "ann", ANN_PASSWORD)
        assert "Max-Age=3600" in set_cookies(response)[SESSION_COOKIE]
        site.clock.now = T0 + 3599
        await session_of(site.client)
        site.clock.now = T0 + 3601
        assert (await site.client.get("/probe", allow_redirects=False)).status == 302
        assert await session_rows(store) == []  # the expired row is gone
    finally:
        await site.client.close()


async def test_each_login_gets_a_new_session_id(site: Site) -> None:
    await login(site.client, "ann", ANN_PASSWORD)
    jar = site.client.session.cookie_jar
    first = jar.filter_cookies(site.client.make_url("/"))[SESSION_COOKIE].value
    rows = await session_rows(site.store)
    jar.clear()
    page = await site.client.get("/login")
    jar.update_cookies({SESSION_COOKIE: first})  # e.g. planted before the login
    data = {"name": "ann", "password": ANN_PASSWORD, "csrf_token": form_token(await page.text())}
    response = await site.client.post("/login", data=data, allow_redirects=False)
    assert response.status == 303
    assert jar.filter_cookies(site.client.make_url("/"))[SESSION_COOKIE].value != first
    after = await session_rows(site.store)
    assert len(after) == 1 and after != rows  # the old one is deleted, not reused


# -- cookie flags ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secure_cookies", "public_url", "secure"),
    [
        ("never", "https://cb.example.com", False),
        ("always", "", True),
        ("auto", "https://cb.example.com", True),
        ("auto", "http://192.168.1.5:8080", False),
        ("auto", "", False),  # the test server speaks plain http
    ],
)
async def test_session_cookie_flags(store: CallStore, secure_cookies: str, public_url: str, secure: bool) -> None:
    site = await _site(store, secure_cookies=secure_cookies, public_url=public_url)
    try:
        # Posted by hand: the test client, on plain http, keeps Secure cookies to itself (as a browser would).
        page = await site.client.get("/login")
        token = form_token(await page.text())
        assert ("Secure" in set_cookies(page)[LOGIN_CSRF_COOKIE]) is secure
        data = {"name": "ann", "password": ANN_PASSWORD, "csrf_token": token}
        headers = {"Cookie": f"{LOGIN_CSRF_COOKIE}={token}"}
        response = await site.client.post("/login", data=data, headers=headers, allow_redirects=False)
        assert response.status == 303
        cookie = set_cookies(response)[SESSION_COOKIE]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert "httponly" in attributes
        assert "SameSite=Lax" in cookie and "Path=/" in cookie and "Max-Age=43200" in cookie
        assert ("secure" in attributes) is secure
    finally:
        await site.client.close()


# -- failed logins -----------------------------------------------------------------------------------------------


async def test_five_failures_lock_the_name_even_for_the_right_password(site: Site) -> None:
    for _ in range(5):
        assert (await login(site.client, "ann", "wrong password")).status == 401
    response = await login(site.client, "ann", ANN_PASSWORD)
    assert response.status == 429
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    html = await response.text()
    assert 'role="alert"' in html and "Too many failed logins" in html
    assert await session_rows(site.store) == []
    site.clock.now = T0 + 15 * 60 + 1  # the window passes
    assert (await login(site.client, "ann", ANN_PASSWORD)).status == 303


async def test_guesses_sent_all_at_once_are_limited_too(site: Site) -> None:
    page = await site.client.get("/login")
    data = {"name": "ann", "password": "guess-guess", "csrf_token": form_token(await page.text())}
    responses = await asyncio.gather(*(site.client.post("/login", data=data) for _ in range(12)))
    statuses = sorted(response.status for response in responses)
    assert statuses == [401] * 5 + [429] * 7


async def test_a_client_guessing_many_names_waits_after_twenty_failures(site: Site) -> None:
    for number in range(CLIENT_MAX_FAILURES):
        assert (await login(site.client, f"a{number}", "guess-guess")).status == 401
    assert (await login(site.client, "bob", BOB_PASSWORD)).status == 429


async def test_a_success_clears_the_names_failures(site: Site) -> None:
    for _ in range(4):
        await login(site.client, "bob", "wrong password")
    assert (await login(site.client, "bob", BOB_PASSWORD)).status == 303
    site.client.session.cookie_jar.clear()
    site.clock.now += 1
    # The name's count starts again; the client's keeps the four failures.
    for _ in range(5):
        assert (await login(site.client, "bob", "wrong password")).status == 401
    assert (await login(site.client, "bob", "wrong password")).status == 429


async def test_guessing_from_one_client_never_locks_another_out(store: CallStore) -> None:
    """Behind a trusted proxy every request arrives from the proxy: the client is the one X-Forwarded-For names."""
    site = await _site(store, trusted_proxies=("127.0.0.1",))
    try:
        guesser, owner = {"X-Forwarded-For": "203.0.113.9"}, {"X-Forwarded-For": "198.51.100.7, 127.0.0.1"}
        for _ in range(5):
            assert (await login(site.client, "ann", "wrong password", headers=guesser)).status == 401
        assert (await login(site.client, "ann", ANN_PASSWORD, headers=guesser)).status == 429
        assert (await login(site.client, "ann", ANN_PASSWORD, headers=owner)).status == 303
    finally:
        await site.client.close()


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(site: Site) -> None:
    """Without trusted proxies, a guesser cannot dodge the limit by making up a new X-Forwarded-For each time."""
    for number in range(5):
        headers = {"X-Forwarded-For": f"203.0.113.{number}"}
        assert (await login(site.client, "ann", "wrong password", headers=headers)).status == 401
    assert (await login(site.client, "ann", ANN_PASSWORD, headers={"X-Forwarded-For": "192.0.2.1"})).status == 429


async def test_passwords_and_hashes_never_reach_the_log(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    await login(site.client, "ann", "wrong password")
    await login(site.client, "ann", ANN_PASSWORD)
    await session_of(site.client)
    cookie = site.client.session.cookie_jar.filter_cookies(site.client.make_url("/"))[SESSION_COOKIE].value
    text = caplog.text
    assert "dashboard login failed for 'ann'" in text and "dashboard login: 'ann'" in text
    for secret in (ANN_PASSWORD, "wrong password", ANN.password_hash.split("$")[-1], cookie):
        assert secret not in text


async def test_static_files_served_by_add_static_are_public(store: CallStore, tmp_path: Path) -> None:
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "app.css").write_text("body {}", encoding="utf-8")
    app = web.Application()
    app.router.add_static("/static/", folder)
    auth_setup(app, store=store, users=lambda: [ANN], public_url="", secure_cookies="auto", session_hours=1)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/static/app.css", allow_redirects=False)
        assert response.status == 200 and await response.text() == "body {}"
        assert (await client.get("/static/missing.css", allow_redirects=False)).status == 404
        assert (await client.get("/elsewhere", allow_redirects=False)).status == 302
