"""GET /calls.csv?<the feed's filters> : the feed's rows as a CSV download (UTF-8 with a BOM, for spreadsheets).

The same rows as the page (every page of them, newest first, at most MAX_ROWS), with numbers as the viewer may see
them and times on the page's one clock (named in the `timezone` column). A cell that a spreadsheet would read as a
formula (starting with = + - @, a tab or a carriage return) is prefixed with an apostrophe: a caller ID name such
as `=HYPERLINK(...)` stays text.
"""

from __future__ import annotations

import csv
import datetime
import io
import zoneinfo
from collections.abc import Iterable, Sequence

from aiohttp import web

from callbuddy_pbx.store.dashboard_queries import FeedRow, feed_page
from callbuddy_pbx.web import labels
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.feed_query import feed_query
from callbuddy_pbx.web.page import Handler, page
from callbuddy_pbx.web.templating import clip
from callbuddy_pbx.web.viewer import Viewer

MAX_ROWS = 100_000
BATCH = 1000
HEADER: tuple[str, ...] = (
    "ended_at",
    "timezone",
    "business",
    "number_called",
    "caller",
    "caller_name",
    "outcome",
    "missed",
    "rang_s",
    "text_state",
    "text_sent_at",
    "text_done_at",
    "text_error",
    "clicks",
    "linkedid",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """A value as a CSV cell that no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _local(epoch: float | None, zone: zoneinfo.ZoneInfo) -> str:
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch, tz=zone).isoformat(timespec="seconds")


def csv_row(row: FeedRow, viewer: Viewer, timezone: str) -> list[str]:
    zone = zoneinfo.ZoneInfo(timezone)
    rang = row.ring_s
    values: Sequence[object] = (
        _local(row.ended_at, zone),
        timezone,
        row.business or "",
        row.did,
        viewer.number(row.caller),
        clip(row.caller_name, 200),
        labels.outcome(row.outcome),
        "yes" if row.missed else "no",
        "" if rang is None else f"{rang:.1f}",
        labels.text_state(row.text_state),
        _local(row.text_sent_at, zone),
        _local(row.text_done_at, zone),
        clip(row.text_error, 200),
        row.clicks,
        row.linkedid,
    )
    return [cell(value) for value in values]


def _encode(rows: Iterable[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def export_handler(ctx: DashboardContext) -> Handler:
    async def calls_csv(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        query = feed_query(ctx, viewer, request.query)
        stamp = datetime.datetime.fromtimestamp(ctx.clock(), tz=zoneinfo.ZoneInfo(query.timezone))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="calls-{stamp:%Y%m%d-%H%M}.csv"',
                "Cache-Control": "no-store",
            }
        )
        await response.prepare(request)
        await response.write("\ufeff".encode() + _encode([HEADER]))
        written, before = 0, None
        while written < MAX_ROWS:
            rows = await feed_page(
                ctx.store, query.filter, viewer.scope, before=before, limit=min(BATCH, MAX_ROWS - written)
            )
            if not rows:
                break
            await response.write(_encode(csv_row(row, viewer, query.timezone) for row in rows))
            written += len(rows)
            before = rows[-1].cursor
        await response.write_eof()
        return response

    return page(calls_csv)
