"""GET / : the recovery figures of a period for one business or every business the viewer may see.

Query: `business` (empty: all of the viewer's), `period` (today, yesterday, 7d, 30d, or dates with `from` and `to`,
inclusive). Days are those of the business's clock (for several businesses: their shared clock, else UTC). Every
figure carries `data-figure="<name>"` and `data-value` (the raw number) for tests and scripts.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from callbuddy_pbx.store.stats import WEEKDAYS, recovery_stats
from callbuddy_pbx.web import labels
from callbuddy_pbx.web.charts import BarChart, bar_chart
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.feed_query import business_choices, chosen_business, local_day_start, parse_day
from callbuddy_pbx.web.page import Handler, PageError, page, render
from callbuddy_pbx.web.viewer import Viewer

PERIODS: dict[str, str] = {
    "today": "Today",
    "yesterday": "Yesterday",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "dates": "Dates",
}
DEFAULT_PERIOD = "7d"
MAX_DAYS = 400  # a longer custom period is refused rather than scanning years of calls
# The funnel's steps and the ways a caller was got back, in an owner's words (store/recovery.py defines them).
FUNNEL_WORDS: dict[str, str] = {
    "missed": "Missed",
    "texted": "Texted",
    "delivered": "Delivered",
    "replied": "Replied",
    "clicked": "Opened the booking link",
    "called_back": "Called back",
    "recovered": "Got back",
}
RECOVERED_WORDS: dict[str, str] = {
    "called_back": "Called back",
    "called_again": "Called again and got through",
    "replied": "Replied",
    "booked": "Booked",
}


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    since: float
    until: float
    first: datetime.date  # the first and last day shown in the form
    last: datetime.date


def period_of(query: Mapping[str, str], now: float, timezone: str) -> Period:
    """The period asked for, on the clock of `timezone` ("today" and the last-n-days periods end now)."""
    name = query.get("period", "") or DEFAULT_PERIOD
    if name not in PERIODS:
        raise PageError(400, f"period: expected one of {', '.join(PERIODS)}.")
    today = datetime.datetime.fromtimestamp(now, tz=zoneinfo.ZoneInfo(timezone)).date()
    day = datetime.timedelta(days=1)
    if name == "dates":
        first = parse_day(query.get("from", ""), "from") or today
        last = parse_day(query.get("to", ""), "to") or first
        if last < first:
            raise PageError(400, "to: before from.")
        if (last - first).days >= MAX_DAYS:
            raise PageError(400, f"Choose at most {MAX_DAYS} days.")
        return Period(name, local_day_start(first, timezone), local_day_start(last + day, timezone), first, last)
    if name == "yesterday":
        return Period(name, local_day_start(today - day, timezone), local_day_start(today, timezone), today - day,
                      today - day)  # fmt: skip
    days = {"today": 1, "7d": 7, "30d": 30}[name]
    first = today - (days - 1) * day
    return Period(name, local_day_start(first, timezone), max(now, local_day_start(first, timezone)), first, today)


def _charts(by_hour: tuple[int, ...], by_weekday: tuple[int, ...]) -> tuple[BarChart, BarChart]:
    hours = bar_chart(
        "Missed calls by hour of day",
        by_hour,
        [f"{h:02d}" for h in range(24)],
        [f"missed_hour_{h:02d}" for h in range(24)],
        bar_width=14,
    )
    weekdays = bar_chart(
        "Missed calls by day of week",
        by_weekday,
        list(WEEKDAYS),
        [f"missed_weekday_{d.lower()}" for d in WEEKDAYS],
        bar_width=36,
    )
    return hours, weekdays


def overview_handler(ctx: DashboardContext) -> Handler:
    async def overview(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        business = chosen_business(ctx, viewer, request.query.get("business", "").strip())
        scope = [business] if business is not None else viewer.scope
        timezone = ctx.timezone_of(business) if business is not None else ctx.common_timezone(viewer.scope)
        period = period_of(request.query, ctx.clock(), timezone)
        stats = await recovery_stats(
            ctx.store, since=period.since, until=period.until, businesses=scope, timezone=timezone
        )
        hours, weekdays = _charts(stats.missed_by_hour, stats.missed_by_weekday)
        return render(
            request,
            "overview.html",
            stats=stats,
            period=period,
            periods=PERIODS,
            business=business or "",
            choices=business_choices(ctx, viewer),
            timezone=timezone,
            outcomes=[(code, labels.outcome(code)) for code in labels.MISSED_OUTCOMES],
            charts=(hours, weekdays),
            funnel_words=FUNNEL_WORDS,
            recovered_words=RECOVERED_WORDS,
        )

    return page(overview)
