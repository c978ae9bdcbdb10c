"""GET /calls : the missed-call feed (all inbound calls with `all=1`), newest first, 50 a page, with the filters of
web/feed_query.py. The first page also names its live stream (/calls/live, web/live.py) and the CSV of the same
filters (/calls.csv, web/export.py); each row is the `_call_row.html` partial, also what the live stream sends.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callbuddy_pbx.model import Outcome
from callbuddy_pbx.store.dashboard_queries import TEXT_FILTERS, FeedRow, feed_page
from callbuddy_pbx.web import labels
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.feed_query import business_choices, feed_query, format_cursor
from callbuddy_pbx.web.page import Handler, page, render
from callbuddy_pbx.web.templating import environment
from callbuddy_pbx.web.viewer import Viewer

PAGE_SIZE = 50
ROW_TEMPLATE = "_call_row.html"


def row_values(timezone: str) -> dict[str, Any]:
    """What the row partial needs besides the row and the viewer: the view's one clock (every row on it, so a list
    of several businesses reads in order), the words for codes."""
    return {"zone": timezone, "labels": labels}


def render_row(viewer: Viewer, row: FeedRow, timezone: str) -> str:
    """One `<tr id="call-LINKEDID">` on a single line (the live stream sends it as one SSE data line)."""
    html = environment().get_template(ROW_TEMPLATE).render(row=row, viewer=viewer, **row_values(timezone))
    return " ".join(line.strip() for line in html.splitlines() if line.strip())


def feed_handler(ctx: DashboardContext) -> Handler:
    async def calls(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        query = feed_query(ctx, viewer, request.query)
        # The live stream starts from before the query: a call stored meanwhile is sent rather than lost.
        started = ctx.clock()
        rows = await feed_page(ctx.store, query.filter, viewer.scope, before=query.older, limit=PAGE_SIZE + 1)
        more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
        older = f"/calls?{query.query_string(older=format_cursor(rows[-1].cursor))}" if more else None
        live = f"/calls/live?{query.query_string(since=repr(started))}" if query.older is None else None
        return render(
            request,
            "feed.html",
            rows=rows,
            form=query.form,
            first_page=query.older is None,
            newest_url=f"/calls?{query.query_string()}",
            older_url=older,
            live_url=live,
            csv_url=f"/calls.csv?{query.query_string()}",
            choices=business_choices(ctx, viewer),
            outcomes=[(o.value, labels.outcome(o.value)) for o in Outcome],
            text_filters=[(code, labels.text_state(code)) for code in TEXT_FILTERS],
            **row_values(query.timezone),
        )

    return page(calls)
