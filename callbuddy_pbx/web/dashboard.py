"""The server-rendered dashboard: add its pages with `dashboard_routes(app, ctx)`.

    GET /                   overview: recovery figures of a period (web/overview.py)
    GET /calls              the missed-call feed with filters (web/feed.py)
    GET /calls/live         the feed's changes as Server-Sent Events (web/live.py)
    GET /calls.csv          the feed as CSV (web/export.py)
    GET /calls/{linkedid}   one call (web/call_detail.py)
    GET /devices, /system   admins only (web/admin_pages.py)
    /conversations...       threads of replies and answers (web/conversations.py)
    GET /static/...         the stylesheet and the script (public: the login page uses them too)

Who may see what comes from the `Viewer` the login middleware puts on each request (web/viewer.py); no page takes
its scope from the query. Every page is HTML rendered by the server with autoescape; the one script (static/app.js)
only makes the feed live, so the pages work under a strict content security policy without inline code.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from callbuddy_pbx.web.admin_pages import devices_handler, system_handler
from callbuddy_pbx.web.call_detail import call_handler
from callbuddy_pbx.web.conversations import Answering, conversation_routes
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.export import export_handler
from callbuddy_pbx.web.feed import feed_handler
from callbuddy_pbx.web.live import LiveFeeds, live_handler
from callbuddy_pbx.web.overview import overview_handler

STATIC_DIR = Path(__file__).with_name("static")


def dashboard_routes(app: web.Application, ctx: DashboardContext, answers: Answering | None = None) -> None:
    """Add the dashboard's pages and /static/ to `app` (the login middleware is added by its owner); `answers`
    sends the conversations' answers (without it the composer says texting is not set up)."""
    feeds = LiveFeeds()
    app.on_shutdown.append(feeds.stop)  # open live streams end when the server stops
    app.router.add_get("/", overview_handler(ctx))
    app.router.add_get("/calls", feed_handler(ctx))
    # Streams answer GET only: a HEAD would run the whole export, or hold a live stream open.
    app.router.add_get("/calls.csv", export_handler(ctx), allow_head=False)
    app.router.add_get("/calls/live", live_handler(ctx, feeds), allow_head=False)  # before /calls/{linkedid}
    app.router.add_get("/calls/{linkedid}", call_handler(ctx))
    app.router.add_get("/devices", devices_handler(ctx))
    app.router.add_get("/system", system_handler(ctx))
    conversation_routes(app, ctx, answers)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
