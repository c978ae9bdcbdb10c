"""What every dashboard page shares: rendering a template with the viewer and the nav, and the error pages.

A handler is written as `async def handler(request, viewer)` and wrapped with `page`: the viewer comes from the
login middleware (`VIEWER_KEY`; none = 403, so a route that slipped past the middleware shows nothing), and a
`PageError` raised anywhere becomes the error page with its status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from callbuddy_pbx.web.templating import environment
from callbuddy_pbx.web.viewer import CSRF_KEY, VIEWER_KEY, Viewer

PageHandler = Callable[[web.Request, Viewer], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Pages show personal data: never kept by a shared cache or the browser's back-forward store.
NO_STORE = {"Cache-Control": "no-store"}
_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 503: "Busy"}


class PageError(Exception):
    """Answer with the error page: `status` (400, 403, 404, 503) and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


NOT_FOUND = "There is no such call."  # the same for an unknown call and another business's call
ADMINS_ONLY = "Only administrators may see this page."


def render(request: web.Request, template: str, *, status: int = 200, **values: Any) -> web.Response:
    """The page `template` with `values`, plus `viewer`, `csrf_token` and `path` for the layout."""
    layout = {"viewer": request.get(VIEWER_KEY), "csrf_token": request.get(CSRF_KEY, ""), "path": request.path}
    html = environment().get_template(template).render(**layout, **values)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=NO_STORE)


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", status=status, title=_TITLES.get(status, "Error"), message=message)


def page(handler: PageHandler) -> Handler:
    """A dashboard handler: given the request's viewer; PageError becomes the error page."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        viewer = request.get(VIEWER_KEY)
        if viewer is None:
            return error_page(request, 403, "Log in to see this page.")
        try:
            return await handler(request, viewer)
        except PageError as exc:
            return error_page(request, exc.status, exc.message)

    return wrapped


def admin_only(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise PageError(403, ADMINS_ONLY)
