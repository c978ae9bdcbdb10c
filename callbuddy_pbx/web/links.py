"""The tracked booking links of texts: `GET /r/{token}` counts a visit and redirects to the booking page.

Add the route to the service's application with `link_routes(app, LinkStore(store))`.

- A known token: the visit is recorded (time, user agent cut to 200 characters) and the answer is a 302 to the
  business's booking URL, with `Cache-Control: no-store` (every visit reaches us; no shared cache keeps the
  redirect) and `Referrer-Policy: no-referrer` (the booking site does not learn the token).
- An unknown or malformed token: 404 with the same short body either way, after the same database look-up, so a
  prober learns nothing about which tokens exist or what they look like.
- HEAD redirects like GET but is not counted: messaging apps and carriers' link scanners fetch a link with HEAD to
  build a preview or check it before anyone taps it; a person's browser sends GET. Counting HEAD would make every
  text look clicked.

The target URL comes from our configuration, never from the request: the route cannot be used as an open redirect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import hdrs, web

from callbuddy_pbx.store.links import TOKEN_PATTERN, LinkStore

log = logging.getLogger(__name__)

NOT_FOUND_BODY = "not found"
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def link_routes(app: web.Application, links: LinkStore, *, clock: Callable[[], float] = time.time) -> None:
    """Add `GET /r/{token}` (and HEAD, not counted) to `app`."""

    async def follow(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        # A malformed token is looked up as "" (never issued), so it is answered exactly like an unknown one.
        link = await links.lookup(token if TOKEN_PATTERN.fullmatch(token) else "")
        if link is None:
            return web.Response(status=404, text=NOT_FOUND_BODY, headers=_HEADERS)
        if request.method == hdrs.METH_GET:
            try:
                await links.record_click(link.token, clock(), request.headers.get(hdrs.USER_AGENT))
            except Exception:  # the visitor still gets the booking page when the click cannot be stored
                log.exception("could not record a visit to a tracked link")
        return web.Response(status=302, headers={**_HEADERS, hdrs.LOCATION: link.url})

    # `.*` so that every path under /r/ (empty, with slashes, overlong) gets the same 404 as an unknown token.
    app.router.add_get("/r/{token:.*}", follow, allow_head=True)
