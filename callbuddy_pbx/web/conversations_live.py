"""Conversations as they change, as Server-Sent Events, with the missed-call feed's mechanism (web/live.py: the cap
on streams, the heartbeat, the start position from `since` or Last-Event-ID, the end when the app stops).

    GET /conversations/live?since=&unread=&business=   `event: row`, a thread's rendered `<tr id="thread-ID">`
    GET /conversations/{thread}/live?since=            `event: item`, a rendered `<li id="call-|text-|reply-...">`

Each poll reads what changed at or after its position less OVERLAP_S (a row is stamped before its transaction
commits, so it may appear behind the position) and sends each (entry, change) once. A thread's stream shows the
replies to a user of its business as they come: the thread is read up to them, as if the page had been opened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from callbuddy_pbx.store.conversations import Thread, ThreadItem, find_thread, list_threads, mark_read, thread_items
from callbuddy_pbx.web import conversation_words, labels
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.feed_query import chosen_business
from callbuddy_pbx.web.live import (
    OVERLAP_S,
    LiveFeeds,
    serve_stream,
    sse_event,
    start_cursor,
)
from callbuddy_pbx.web.page import Handler, PageError, page
from callbuddy_pbx.web.templating import environment
from callbuddy_pbx.web.viewer import Viewer

NO_THREAD = "There is no such conversation."  # the same for an unknown thread and another business's


async def visible_thread(ctx: DashboardContext, viewer: Viewer, thread_id: str) -> Thread:
    """The thread `thread_id` names, if the viewer may see it; else the 404 of no thread."""
    thread = await find_thread(ctx.store, thread_id, viewer.scope)
    if thread is None or not viewer.may_see(thread.business):
        raise PageError(404, NO_THREAD)
    return thread


@dataclass(frozen=True, slots=True)
class Change:
    key: str  # the entry's element id
    changed_at: float
    html: str


class _ChangeStream:
    """One client's stream: reads the changes from its position, sends each (key, change time) once."""

    def __init__(self, read: Callable[[float], Awaitable[Sequence[Change]]], event: str, start: float) -> None:
        self._read, self._event = read, event
        self.position = start
        self._sent: dict[str, float] = {}  # key -> the change last sent, within the overlap

    async def poll(self) -> list[bytes]:
        events = []
        for change in sorted(await self._read(self.position - OVERLAP_S), key=lambda c: c.changed_at):
            if self._sent.get(change.key) != change.changed_at:
                self._sent[change.key] = change.changed_at
                self.position = max(self.position, change.changed_at)
                events.append(sse_event(self._event, change.html, repr(self.position)))
        horizon = self.position - OVERLAP_S
        self._sent = {key: at for key, at in self._sent.items() if at >= horizon}
        return events


def one_line(template: str, **values: object) -> str:
    """A partial on one line: the stream sends it as one SSE data line."""
    html = environment().get_template(template).render(**values)
    return " ".join(line.strip() for line in html.splitlines() if line.strip())


def render_thread_row(viewer: Viewer, thread: Thread, zone: str) -> str:
    return one_line("_thread_row.html", thread=thread, viewer=viewer, zone=zone)


def render_item(viewer: Viewer, item: ThreadItem, zone: str) -> str:
    return one_line("_thread_item.html", item=item, viewer=viewer, zone=zone, words=conversation_words, labels=labels)


def thread_list_stream(ctx: DashboardContext, feeds: LiveFeeds) -> Handler:
    async def live(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        business = chosen_business(ctx, viewer, request.query.get("business", ""))
        unread_only = request.query.get("unread") == "1"
        zone = ctx.timezone_of(business) if business else ctx.common_timezone(viewer.scope)

        async def read(since: float) -> list[Change]:
            threads = await list_threads(
                ctx.store, viewer.scope, business=business, unread_only=unread_only, changed_since=since
            )
            return [
                Change(f"thread-{t.id}", t.changed_at, render_thread_row(viewer, t, zone))
                for t in threads
                if viewer.may_see(t.business)
            ]

        return await serve_stream(
            request, _ChangeStream(read, "row", start_cursor(request, ctx.clock())), ctx.live_poll_s, feeds
        )

    return page(live)


def thread_stream(ctx: DashboardContext, feeds: LiveFeeds) -> Handler:
    async def live(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        thread = await visible_thread(ctx, viewer, request.match_info["thread"])
        zone = ctx.timezone_of(thread.business)
        reads = not viewer.is_admin and thread.business in viewer.businesses
        read_to = [0.0]  # the newest reply marked read by this stream: each is written once, not every poll

        async def read(since: float) -> list[Change]:
            items = await thread_items(ctx.store, thread.number, thread.business, changed_since=since)
            newest = max((item.at for item in items if item.kind == "reply"), default=0.0)
            if reads and newest > read_to[0]:  # the user has the thread open: what arrives is read
                read_to[0] = newest
                await mark_read(ctx.store, thread.number, thread.business, newest, viewer.name)
            return [Change(item.ref, item.changed_at, render_item(viewer, item, zone)) for item in items]

        return await serve_stream(
            request, _ChangeStream(read, "item", start_cursor(request, ctx.clock())), ctx.live_poll_s, feeds
        )

    return page(live)
