"""Dashboard logins: the login page, the session cookie, CSRF checks, and the middleware that guards every page.

Mount with `auth_setup(app, store=..., users=..., public_url=..., secure_cookies=..., session_hours=...)` before the
app starts. Everything is then protected except what lives under PUBLIC_PREFIXES (the login page, static files,
health and metrics, tracked links, gateways' webhooks and the bearer-token API, which have their own auth or need
none). A protected request needs the `cb_session` cookie of a live session whose user is still configured (users
are asked for at every request, so a removed user is out at once); the handler then finds `request[VIEWER_KEY]`
and `request[CSRF_KEY]`. Without one, a page is a redirect to /login, an export or a feed (CSV, JSON, event
stream) a 401, and a POST a 403. Every POST (logout included) must carry the session's CSRF token as the form
field `csrf_token` or the header `X-CSRF-Token`, and must not come from another origin.

The login form is protected by a double-submit token (cookie `cb_login_csrf` = form field), failed logins are
limited per (client, user name) and, more loosely, per client (web/login_limit.py), the client taken from
X-Forwarded-For only behind a trusted proxy (web/client_address.py), so one client guessing locks nobody else
out; an unknown user name costs the same
scrypt run as a wrong password. Passwords, hashes, cookie values and tokens are never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from callbuddy_pbx.config.users import WebUser
from callbuddy_pbx.passwords import verify_password
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.client_address import client_address, parse_networks
from callbuddy_pbx.web.login_limit import LoginLimiter
from callbuddy_pbx.web.sessions import Session, SessionStore
from callbuddy_pbx.web.templating import environment
from callbuddy_pbx.web.viewer import CSRF_KEY, VIEWER_KEY, Viewer

log = logging.getLogger(__name__)

SESSION_COOKIE = "cb_session"
LOGIN_CSRF_COOKIE = "cb_login_csrf"
# A prefix ending in "/" covers what is under it; one without covers that path and what is under it (so /login
# is public, /login-history would not be).
PUBLIC_PREFIXES = ("/login", "/static/", "/healthz", "/metrics", "/r/", "/webhooks/", "/api/v1/")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
MAX_LOGIN_FORM_BYTES = 4096  # a name, a password, two tokens and a path
MAX_NAME_CHARS = 64
CLIENT_MAX_FAILURES = 20  # failures of one client across every name before it waits (5 per name)
MAX_NEXT_CHARS = 2048
HASHING_AT_ONCE = 2  # concurrent scrypt runs (16 MiB and ~50 ms each): a login flood queues instead of eating RAM
# Same cost as a real hash: verifying an unknown name against it takes as long as a wrong password.
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,128}")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

UsersSource = Callable[[], Sequence[WebUser]]


class _Auth:
    """What the middleware and the login routes share, kept on the app under AUTH_KEY."""

    def __init__(
        self,
        sessions: SessionStore,
        users: UsersSource,
        public_url: str,
        secure_cookies: str,
        session_hours: float,
        clock: Callable[[], float],
        trusted_proxies: Sequence[str],
    ) -> None:
        self.sessions = sessions
        self.users = users
        self.secure_cookies = secure_cookies
        self.public_url = public_url
        self.max_age = max(1, round(session_hours * 3600))
        self.clock = clock
        self.proxies = parse_networks(trusted_proxies)
        # Failures count per (client, name): one client guessing a name never locks anyone else out of it. A
        # client spraying many names is slowed per client. Behind a proxy, the client comes from X-Forwarded-For.
        self.by_client_name = LoginLimiter()
        self.by_client = LoginLimiter(max_failures=CLIENT_MAX_FAILURES)
        self.hashing = asyncio.Semaphore(HASHING_AT_ONCE)
        parts = urlsplit(public_url)
        self.public_origin = f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""

    def user(self, name: str) -> WebUser | None:
        """The configured user of a session (names are stored as configured)."""
        return next((user for user in self.users() if user.name == name), None)

    def login_user(self, typed: str) -> WebUser | None:
        """The user a typed name means; names are unique ignoring case (config_users), phones capitalise."""
        wanted = typed.casefold()
        return next((user for user in self.users() if user.name.casefold() == wanted), None)

    def secure(self, request: web.Request) -> bool:
        """Whether cookies get the Secure flag."""
        if self.secure_cookies == "always":
            return True
        return self.secure_cookies == "auto" and (self.public_url.startswith("https://") or request.secure)

    async def current(self, request: web.Request) -> tuple[Session, WebUser] | None:
        """The session of the request's cookie and its user, if both are still there."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        session = await self.sessions.lookup(cookie, self.clock())
        if session is None:
            return None
        user = self.user(session.user_name)
        if user is None:  # removed: its sessions end (a new user of that name must not inherit them)
            await self.sessions.delete(cookie)
            return None
        return session, user


AUTH_KEY = web.AppKey("dashboard_auth", _Auth)


def auth_setup(
    app: web.Application,
    *,
    store: CallStore,
    users: UsersSource,
    public_url: str,
    secure_cookies: str,
    session_hours: float,
    clock: Callable[[], float] = time.time,
    trusted_proxies: Sequence[str] = (),
) -> None:
    """Protect `app`'s dashboard and add GET/POST /login and POST /logout (see the module's docstring).

    `users` is called at every request: pass `LiveUsers(config.web)` (config_users) to follow the users file.
    """
    if secure_cookies not in ("auto", "always", "never"):
        raise ValueError(f"secure_cookies must be auto, always or never, not {secure_cookies!r}")
    sessions = SessionStore(store, lifetime_s=session_hours * 3600)
    app[AUTH_KEY] = _Auth(sessions, users, public_url, secure_cookies, session_hours, clock, trusted_proxies)
    app.middlewares.append(_guard)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/login", _login_page)
    app.router.add_post("/login", _login)
    app.router.add_post("/logout", _logout)


# -- which requests ----------------------------------------------------------------------------------------------


def _under(path: str, prefix: str) -> bool:
    bare = prefix.rstrip("/")
    return path == bare or path.startswith(bare + "/")


def is_public(request: web.Request) -> bool:
    """Public by its path, and (when a route matched) by that route's own path too: a path that only looks
    public once decoded (`/r%2F..%2Fcalls`) cannot reach a dashboard route."""
    if not any(_under(request.path, prefix) for prefix in PUBLIC_PREFIXES):
        return False
    resource = request.match_info.route.resource
    return resource is None or any(_under(resource.canonical, prefix) for prefix in PUBLIC_PREFIXES)


def _is_dashboard(request: web.Request) -> bool:
    return not is_public(request) or _under(request.path, "/login")


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a local path, else "/" (no other site, however it is spelt)."""
    if not value or len(value) > MAX_NEXT_CHARS or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):  # browsers drop tabs, newlines
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or _under(parts.path, "/login"):
        return "/"
    return value


def _same_origin(request: web.Request, auth: _Auth) -> bool:
    """False for a request a browser marks as coming from another site. Behind a TLS proxy the request arrives
    as http, so https with our own host, and the public URL's origin, count as ours too."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    host = request.host.lower()
    ours = {f"{request.scheme}://{host}", f"https://{host}", auth.public_origin} - {""}
    return origin.strip().lower() in ours


# -- middleware --------------------------------------------------------------------------------------------------


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_public(request):
        return await handler(request)
    auth = request.app[AUTH_KEY]
    found = await auth.current(request)
    if found is None:
        return _refused(request)
    session, user = found
    if request.method not in _SAFE_METHODS:
        if not _same_origin(request, auth):
            log.warning("cross-site %s %s refused (user %r)", request.method, request.path, user.name)
            return _text(403, "cross-site request refused")
        if not await _csrf_ok(request, session.csrf_token):
            log.warning("%s %s refused: CSRF token missing or wrong (user %r)", request.method, request.path, user.name)
            return _text(403, "the form's security token is missing or wrong: reload the page and try again")
    request[VIEWER_KEY] = Viewer.of(user)
    request[CSRF_KEY] = session.csrf_token
    return await handler(request)


def _refused(request: web.Request) -> web.Response:
    """No session: pages go to the login page; what a script or an export asked for gets a status it can test."""
    if request.method not in ("GET", "HEAD"):
        return _text(403, "log in first")
    accept = request.headers.get("Accept", "").lower()
    streamed = request.path.endswith(("/live", ".csv"))  # an export or a live feed, never a page to come back to
    if streamed or "text/event-stream" in accept or "json" in accept:
        return _text(401, "log in first")
    return _redirect(302, "/login?" + urlencode({"next": request.rel_url.raw_path_qs}))


async def _csrf_ok(request: web.Request, expected: str) -> bool:
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type in _FORMS:
        value = (await request.post()).get("csrf_token")  # the handler reads the same parsed form again
        given = value if isinstance(value, str) else None
    return given is not None and _equal(given, expected)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if _is_dashboard(request):
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-store")


# -- /login and /logout ------------------------------------------------------------------------------------------


async def _login_page(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    next_path = safe_next(request.query.get("next"))
    if await auth.current(request) is not None:
        return _redirect(303, next_path)
    return _login_form(request, auth, next_path=next_path)


async def _login(request: web.Request) -> web.Response:
    auth = request.app[AUTH_KEY]
    address = client_address(request.remote, request.headers.getall("X-Forwarded-For", ()), auth.proxies)
    if request.content_length is None or request.content_length > MAX_LOGIN_FORM_BYTES:
        return _text(413, "login form too large")
    if not _same_origin(request, auth):
        log.warning("dashboard login from another site refused (client %s)", address)
        return _text(403, "cross-site request refused")
    form = await request.post()
    name, password = _field(form, "name")[:MAX_NAME_CHARS].strip(), _field(form, "password")
    next_path = safe_next(_field(form, "next"))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _TOKEN.fullmatch(cookie) or not _equal(_field(form, "csrf_token"), cookie):
        log.warning("dashboard login refused: the login form's token did not match (client %s)", address)
        error = "This login form has expired. Please try again."
        return _login_form(request, auth, status=403, error=error, next_path=next_path, name=name)
    now = auth.clock()
    pair = f"{address}\x00{name.casefold()}"
    wait = max(auth.by_client.retry_after((address,), now), auth.by_client_name.retry_after((pair,), now))
    if wait:
        log.warning("dashboard login for %r refused: too many failures (client %s)", name, address)
        error = f"Too many failed logins. Try again in {_duration(wait)}."
        headers = {"Retry-After": str(wait)}
        return _login_form(request, auth, status=429, error=error, next_path=next_path, name=name, headers=headers)
    # Counted before the slow check, so that attempts sent all at once cannot all get past the limit.
    auth.by_client.failed((address,), now)
    auth.by_client_name.failed((pair,), now)
    user = auth.login_user(name) if name else None
    async with auth.hashing:
        matches = await asyncio.to_thread(verify_password, password, user.password_hash if user else _DUMMY_HASH)
    if user is None or not matches:
        log.warning("dashboard login failed for %r (client %s)", name, address)
        error = "Wrong user name or password."
        return _login_form(request, auth, status=401, error=error, next_path=next_path, name=name)
    auth.by_client.cancel((address,), now)  # the client keeps its earlier failures: one known password
    auth.by_client_name.forget(pair)  # must not reset its guessing of other names
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await auth.sessions.delete(old)  # a fresh id at every login: a planted cookie is worth nothing
    value, _ = await auth.sessions.create(user.name, now)
    log.info("dashboard login: %r (client %s)", user.name, address)
    response = _redirect(303, next_path)
    secure = auth.secure(request)
    response.set_cookie(
        SESSION_COOKIE, value, max_age=auth.max_age, path="/", httponly=True, samesite="Lax", secure=secure
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login", httponly=True, samesite="Strict", secure=secure)
    return response


async def _logout(request: web.Request) -> web.Response:
    """Behind the middleware: only with a live session and its CSRF token."""
    auth = request.app[AUTH_KEY]
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await auth.sessions.delete(cookie)
    log.info("dashboard logout: %r", request[VIEWER_KEY].name)
    response = _redirect(303, "/login")
    response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax", secure=auth.secure(request))
    return response


def _login_form(
    request: web.Request,
    auth: _Auth,
    *,
    status: int = 200,
    error: str = "",
    next_path: str = "/",
    name: str = "",
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The login page, with the login CSRF cookie (kept when the browser has a good one: several tabs work)."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not _TOKEN.fullmatch(token):
        token = secrets.token_urlsafe(32)
    html = environment().get_template("login.html").render(error=error, next=next_path, name=name, csrf_token=token)
    response = web.Response(text=html, content_type="text/html", status=status, headers=headers)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, path="/login", httponly=True, samesite="Strict", secure=auth.secure(request)
    )
    return response


# -- small helpers -----------------------------------------------------------------------------------------------


def _field(form: Mapping[str, object], key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


def _redirect(status: int, location: str) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)
