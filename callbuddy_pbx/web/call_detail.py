"""GET /calls/{linkedid} : one call with its legs, the text-back verdict, its texts and the visits to its link.

A call the viewer may not see is the same 404 as a call never stored: the page never tells that it exists.
Everyone reads what happened in words (web/call_story.py) and which of the configured phones rang; the technical
record (channels, dial statuses, hang-up causes, the call id) is for admins, in a collapsed block. Numbers in leg
endpoints (a dial string through a trunk names a mobile) are masked like the caller's for a viewer who sees masked
numbers.
"""

from __future__ import annotations

from aiohttp import web

from callbuddy_pbx.phone import redact
from callbuddy_pbx.store.dashboard_queries import call_clicks
from callbuddy_pbx.store.messages import MessageStore
from callbuddy_pbx.web import labels
from callbuddy_pbx.web.call_story import call_story, device_label, leg_result, phone_legs
from callbuddy_pbx.web.callback import panel
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.page import NOT_FOUND, Handler, PageError, page, render
from callbuddy_pbx.web.viewer import Viewer

MAX_LINKEDID_CHARS = 200
MAX_TEXTS = 50


def call_handler(ctx: DashboardContext) -> Handler:
    messages = MessageStore(ctx.store)

    async def call(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        linkedid = request.match_info["linkedid"]
        if len(linkedid) > MAX_LINKEDID_CHARS:
            raise PageError(404, NOT_FOUND)
        found = await ctx.store.list_calls(linkedid=linkedid, businesses=viewer.scope, limit=1)
        if not found or not viewer.may_see(found[0].business):
            raise PageError(404, NOT_FOUND)
        record = found[0]
        book = ctx.phone_book

        def private(text: str | None) -> str:
            """Free text that may hold a number (an endpoint, a dial string) as this viewer may see it."""
            return (text or "") if viewer.show_numbers else redact(text or "")

        return render(
            request,
            "call.html",
            call=record,
            story=call_story(record, book, viewer.number),
            answered_by=device_label(record.answered_by, book, viewer.number) if record.answered_by else "",
            phones=[
                (device_label(leg.endpoint, book, viewer.number), leg, leg_result(leg)) for leg in phone_legs(record)
            ],
            timezone=ctx.timezone_of(record.business),
            verdict=await messages.verdict(linkedid),
            texts=await messages.list_messages(linkedid=linkedid, businesses=viewer.scope, limit=MAX_TEXTS),
            clicks=await call_clicks(ctx.store, linkedid),
            private=private,
            labels=labels,
            call_back=panel(request, viewer, record.business, record.caller, f"/calls/{linkedid}/call-back")
            if record.missed and record.business
            else None,
        )

    return page(call)
