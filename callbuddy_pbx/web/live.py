"""GET /calls/live?<the feed's filters>&since=EPOCH : the feed's changes as Server-Sent Events.

Every `live_poll_s` the stream asks the database for the calls recorded, and the texts updated, after its position
(within the viewer's scope and the filters) and sends one `event: row` per changed call, whose data is the rendered
`<tr id="call-LINKEDID">` on one line. A comment every HEARTBEAT_S keeps proxies from closing an idle stream.

The stream keeps a position, (change time, linkedid) of the last row it read, and each poll reads forward from it
in batches (at most MAX_BATCHES a poll, so a burst is sent over a few polls rather than lost or repeated). The
position starts at `since` (the time the page was rendered; at most MAX_CATCH_UP_S back) or, when the browser
reconnects, at its Last-Event-ID. A writer stamps a row before its transaction commits (behind the write lock, or a
retried batch of send results), so a row may appear behind the position: each poll also reads the OVERLAP_S before
the position again and sends what it had not sent in that version.
At most MAX_STREAMS streams are open at once (503 beyond); each ends when its client leaves or the app stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Protocol

from aiohttp import web

from callbuddy_pbx.store.dashboard_queries import FeedRow, changed_since
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.feed import render_row
from callbuddy_pbx.web.feed_query import FeedQuery, feed_query
from callbuddy_pbx.web.page import Handler, PageError, page
from callbuddy_pbx.web.viewer import Viewer

MAX_STREAMS = 100
HEARTBEAT_S = 15.0
OVERLAP_S = 10.0
MAX_CATCH_UP_S = 3600.0
RETRY_MS = 3000  # how long a browser waits before reconnecting
BATCH = 200  # rows a query
MAX_BATCHES = 5  # queries forward a poll; more changes than this wait for the next poll
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass events on at once
}


class Poller(Protocol):
    """One client's stream: the events to send since its last poll (this feed's `_Stream`, a conversation's)."""

    async def poll(self) -> list[bytes]: ...


class LiveFeeds:
    """The open streams: their count (for the cap) and the signal that the app is stopping."""

    def __init__(self) -> None:
        self.open = 0
        self.stopping = asyncio.Event()

    async def stop(self, app: web.Application) -> None:
        self.stopping.set()


def sse_event(event: str, data: str, event_id: str | None = None) -> bytes:
    """One event; every line of `data` is its own `data:` line (an SSE data line cannot hold a newline)."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def start_cursor(request: web.Request, now: float) -> float:
    """Where the stream starts: Last-Event-ID (a reconnect), else `since`, else now; never before the catch-up."""
    text = request.headers.get("Last-Event-ID") or request.query.get("since", "")
    try:
        value = float(text) if text else now
    except ValueError:
        value = now
    if not math.isfinite(value):
        value = now
    return min(now, max(value, now - MAX_CATCH_UP_S))


class _Stream:
    """One client's stream: how far it has read, and what it has sent in the overlap (to send each change once)."""

    def __init__(self, ctx: DashboardContext, viewer: Viewer, query: FeedQuery, start: float) -> None:
        self.ctx, self.viewer, self.query = ctx, viewer, query
        self.position: tuple[float, str] = (start, "")  # the last row read, as (changed_at, linkedid)
        self.sent: dict[str, float] = {}  # linkedid -> the changed_at last sent, within the overlap

    async def poll(self) -> list[bytes]:
        # Late rows first: stamped at or before the position, committed after a poll read past that time.
        late_from = (self.position[0] - OVERLAP_S, "")
        events = self._fresh(await self._read(late_from, self.position))
        for _ in range(MAX_BATCHES):
            rows = await self._read(self.position, None)
            if rows:
                self.position = rows[-1].change_key
            events += self._fresh(rows)
            if len(rows) < BATCH:
                break
        horizon = self.position[0] - OVERLAP_S
        self.sent = {key: at for key, at in self.sent.items() if at >= horizon}
        return events

    async def _read(self, after: tuple[float, str], up_to: tuple[float, str] | None) -> list[FeedRow]:
        return await changed_since(
            self.ctx.store, self.query.filter, self.viewer.scope, after=after, up_to=up_to, limit=BATCH
        )

    def _fresh(self, rows: list[FeedRow]) -> list[bytes]:
        """The events of the rows not sent yet in this version."""
        events = []
        for row in rows:
            if self.sent.get(row.linkedid) != row.changed_at:
                self.sent[row.linkedid] = row.changed_at
                events.append(
                    sse_event("row", render_row(self.viewer, row, self.query.timezone), repr(self.position[0]))
                )
        return events


def live_handler(ctx: DashboardContext, feeds: LiveFeeds) -> Handler:
    async def live(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        query = feed_query(ctx, viewer, request.query)
        stream = _Stream(ctx, viewer, query, start_cursor(request, ctx.clock()))
        return await serve_stream(request, stream, ctx.live_poll_s, feeds)

    return page(live)


async def serve_stream(request: web.Request, stream: Poller, poll_s: float, feeds: LiveFeeds) -> web.StreamResponse:
    """An event stream of what `stream` finds, counted against MAX_STREAMS (a 503 beyond), until the client leaves."""
    if feeds.open >= MAX_STREAMS:
        raise PageError(503, "Too many live feeds are open; the page will try again.")
    response = web.StreamResponse(headers=SSE_HEADERS)
    feeds.open += 1
    try:
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n: live\n\n".encode())
        await run_stream(request, response, stream, poll_s, feeds.stopping)
    except ConnectionError:  # the client left between two writes
        pass
    finally:
        feeds.open -= 1
    return response


async def run_stream(
    request: web.Request, response: web.StreamResponse, stream: Poller, poll_s: float, stopping: asyncio.Event
) -> None:
    """Send what `stream` finds every `poll_s`, and a heartbeat when idle, until the client leaves or the app stops."""
    loop = asyncio.get_running_loop()
    last_write = loop.time()
    while not stopping.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        events = await stream.poll()
        if events:
            await response.write(b"".join(events))
            last_write = loop.time()
        elif loop.time() - last_write >= HEARTBEAT_S:
            await response.write(b": keepalive\n\n")
            last_write = loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=poll_s)
