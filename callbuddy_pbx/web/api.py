"""The JSON API for installers, dashboards and booking tools, under /api/v1, behind bearer tokens.

Add it with `api_routes(app, store, config.web.api_tokens)`. Routes (GET, but for a conversation's answer):

- /api/v1/calls?missed=1&since=7d&limit=100&business=NAME: calls newest first, each as `call_to_dict`.
- /api/v1/calls/{linkedid}: one call with its legs, the text-back verdict, its texts and its link visits.
- /api/v1/messages?state=...&since=...&limit=...&business=NAME: texts newest first.
- /api/v1/stats?since=7d&until=...&business=NAME&tz=Europe/London: `recovery_stats` as JSON.
- /api/v1/devices: the phones the device registry knows (tokens without business limits only; others 403).
- /api/v1/health: the service's health (`HealthStatus.to_json`; `ok` false when a part is down, still a 200).
  Both answer 404 when `api_routes` was not given where to read them (`devices=`, `health=`).
- /api/v1/conversations...: threads, one thread, and (POST) a business's answer (web/conversations_api.py).
- POST /api/v1/conversations/{thread}/call-back, GET /api/v1/call-backs/{id}: call back (web/callback_api.py).

Every request needs `Authorization: Bearer <token>`; without one, or with a token that is not configured, the answer
is 401 with `WWW-Authenticate: Bearer`. The presented token is compared with every configured token in constant
time (hmac.compare_digest, no early exit). A token limited to some businesses only ever sees those: lists are
filtered to them, a call or the stats of another business are 404 / 403 (calls without a business are hidden from
such a token). `limit` is 1..500 (default 100); `since` is an age (30m, 6h, 7d, 1w) or an ISO date/time.
"""

from __future__ import annotations

import hmac
import json
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

from aiohttp import hdrs, web

from callbuddy_pbx.asterisk.devices_model import Device
from callbuddy_pbx.config.web import ApiToken
from callbuddy_pbx.periods import parse_since
from callbuddy_pbx.serialize import call_to_dict
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.links import LinkStore
from callbuddy_pbx.store.messages import MESSAGE_STATES, MessageStore
from callbuddy_pbx.store.stats import recovery_stats
from callbuddy_pbx.web.api_json import token_scope
from callbuddy_pbx.web.callback_api import call_back_api_routes
from callbuddy_pbx.web.conversations import Answering
from callbuddy_pbx.web.conversations_api import conversation_api_routes
from callbuddy_pbx.web.health import HealthStatus

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
DEFAULT_STATS_SINCE = "7d"
_NO_STORE = {"Cache-Control": "no-store"}
_TRUE, _FALSE = frozenset({"1", "true", "yes"}), frozenset({"0", "false", "no", ""})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Scoped = Callable[[web.Request, ApiToken], Awaitable[web.StreamResponse]]


class BadQuery(Exception):
    """A query parameter that cannot be used; the message says which (answered with 400)."""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={**_NO_STORE, **(headers or {})})


def _ok(body: Any) -> web.Response:
    return web.json_response(body, headers=_NO_STORE, dumps=json.dumps)


def find_token(header: str | None, tokens: Sequence[ApiToken]) -> ApiToken | None:
    """The configured token the `Authorization` header presents, or None. Constant time per configured token."""
    if not header:
        return None
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    given = presented.strip().encode("utf-8", "surrogateescape")
    found: ApiToken | None = None
    for token in tokens:  # every token is compared, whichever matches
        if hmac.compare_digest(given, token.token.encode("utf-8")) and found is None:
            found = token
    return found


def allows(token: ApiToken, business: str | None) -> bool:
    return not token.businesses or (business is not None and business in token.businesses)


def _scope(token: ApiToken, business: str | None) -> list[str] | None:
    """The businesses a query may read: the one asked for, else the token's (None = every business)."""
    return [business] if business is not None else token_scope(token)


def _limit(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    try:
        value = int(text)
    except ValueError:
        raise BadQuery(f"limit: expected a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadQuery(f"limit: expected a whole number from 1 to {MAX_LIMIT}")
    return value


def _since(request: web.Request, name: str = "since", default: str | None = None) -> float | None:
    text = request.query.get(name, default)
    if text is None:
        return None
    try:
        return parse_since(text)
    except (ValueError, OverflowError, OSError):
        raise BadQuery(f"{name}: expected an ISO date/time or an age such as 30m, 6h, 7d, 1w") from None


def _flag(request: web.Request, name: str) -> bool:
    text = request.query.get(name, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadQuery(f"{name}: expected 1/0, true/false or yes/no")


def _business(request: web.Request) -> str | None:
    text = request.query.get("business")
    if text is None:
        return None
    if not text.strip():
        raise BadQuery("business: expected a business name")
    return text


def api_routes(
    app: web.Application,
    store: CallStore,
    tokens: Sequence[ApiToken],
    *,
    clock: Callable[[], float] = time.time,
    devices: Callable[[], Sequence[Device]] | None = None,
    health: Callable[[], HealthStatus] | None = None,
    answers: Answering | None = None,
) -> None:
    """Add the routes of /api/v1 to `app`, readable with the bearer `tokens`; `devices` and `health` are read
    on each request to /api/v1/devices and /api/v1/health (without them those answer 404); `answers` sends the
    conversations' answers (without it they are refused)."""
    tokens = tuple(tokens)
    messages_store = MessageStore(store)
    links = LinkStore(store)

    def authorised(handler: Scoped) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            token = find_token(request.headers.get(hdrs.AUTHORIZATION), tokens)
            if token is None:
                challenge = "Bearer" if hdrs.AUTHORIZATION not in request.headers else 'Bearer error="invalid_token"'
                return _error(401, "a valid bearer token is required", {hdrs.WWW_AUTHENTICATE: challenge})
            try:
                return await handler(request, token)
            except BadQuery as exc:
                return _error(400, str(exc))

        return checked

    def asked_business(request: web.Request, token: ApiToken) -> str | None:
        business = _business(request)
        if business is not None and not allows(token, business):
            raise _Forbidden
        return business

    async def calls(request: web.Request, token: ApiToken) -> web.StreamResponse:
        try:
            business = asked_business(request, token)
        except _Forbidden:
            return _error(403, "this token may not read that business")
        records = await store.list_calls(
            businesses=_scope(token, business),
            missed_only=_flag(request, "missed"),
            since=_since(request),
            limit=_limit(request),
        )
        return _ok({"calls": [call_to_dict(record) for record in records]})

    async def call(request: web.Request, token: ApiToken) -> web.StreamResponse:
        linkedid = request.match_info["linkedid"]
        found = await store.list_calls(businesses=_scope(token, None), linkedid=linkedid, limit=1)
        if not found:  # never stored, or another business's: the same answer
            return _error(404, "no such call")
        verdict = await messages_store.verdict(linkedid)
        texts = [asdict(row) for row in await messages_store.list_messages(linkedid=linkedid, limit=MAX_LIMIT)]
        body = call_to_dict(found[0])
        body["verdict"] = None if verdict is None else {"send": verdict.send, "reason": verdict.reason}
        body["texts"] = texts
        body["link_clicks"] = await links.clicks_for_call(linkedid)
        return _ok(body)

    async def messages(request: web.Request, token: ApiToken) -> web.StreamResponse:
        try:
            business = asked_business(request, token)
        except _Forbidden:
            return _error(403, "this token may not read that business")
        state = request.query.get("state")
        if state is not None and state not in MESSAGE_STATES:
            raise BadQuery(f"state: expected one of {', '.join(MESSAGE_STATES)}")
        rows = await messages_store.list_messages(
            businesses=_scope(token, business), state=state, since=_since(request), limit=_limit(request)
        )
        return _ok({"messages": [asdict(row) for row in rows]})

    async def stats(request: web.Request, token: ApiToken) -> web.StreamResponse:
        try:
            business = asked_business(request, token)
        except _Forbidden:
            return _error(403, "this token may not read that business")
        if business is None and token.businesses:
            if len(token.businesses) > 1:
                raise BadQuery("business: this token reads several businesses; name one")
            business = token.businesses[0]
        since = _since(request, default=DEFAULT_STATS_SINCE)
        until = _since(request, "until")
        assert since is not None
        zone = request.query.get("tz", "UTC")
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise BadQuery("tz: expected a time zone name such as UTC or Europe/London") from None
        end = clock() if until is None else until
        if end < since:
            raise BadQuery("until: before since")
        figures = await recovery_stats(store, since=since, until=end, business=business, timezone=zone)
        return _ok(figures.to_dict())

    async def device_list(request: web.Request, token: ApiToken) -> web.StreamResponse:
        if token.businesses:  # devices are shared by every business: an installer's view
            return _error(403, "only a token for every business may read devices")
        if devices is None:
            return _error(404, "device status is not available")
        return _ok({"devices": [device.to_json() for device in devices()]})

    async def health_status(request: web.Request, token: ApiToken) -> web.StreamResponse:
        if health is None:
            return _error(404, "health is not available")
        return _ok(health().to_json())

    app.router.add_get("/api/v1/calls", authorised(calls))
    app.router.add_get("/api/v1/calls/{linkedid}", authorised(call))
    app.router.add_get("/api/v1/messages", authorised(messages))
    app.router.add_get("/api/v1/stats", authorised(stats))
    app.router.add_get("/api/v1/devices", authorised(device_list))
    app.router.add_get("/api/v1/health", authorised(health_status))
    conversation_api_routes(app, store, authorised, answers)
    call_back_api_routes(app, store, authorised)


class _Forbidden(Exception):
    """A business the token may not read was asked for."""
