"""What the JSON API's routes share: answers that are never cached, and a request's JSON object read with a bound."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from callbuddy_pbx.config.web import ApiToken

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Scoped = Callable[[web.Request, ApiToken], Awaitable[web.StreamResponse]]
_NO_STORE = {"Cache-Control": "no-store"}


def json_answer(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers=_NO_STORE, dumps=json.dumps)


def token_scope(token: ApiToken) -> list[str] | None:
    """The businesses a token may see (None: every one)."""
    return list(token.businesses) if token.businesses else None


async def json_object(request: web.Request, limit: int) -> dict[str, Any] | web.Response:
    """The request's body as a JSON object ({} when it is not one), or the 413 answer when it is missing or longer
    than `limit` bytes (read only after its length is known)."""
    if request.content_length is None or request.content_length > limit:
        return json_answer({"error": f"send a JSON body of at most {limit} bytes"}, 413)
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}
