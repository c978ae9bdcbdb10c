"""The feed's filters as they come in a query string (the form on /calls, and the same on /calls/live and
/calls.csv), checked and turned into a `FeedFilter` within the viewer's scope.

    all=1            every inbound call (default: missed calls only)
    business=NAME    one business (a business user: one of theirs, else 403)
    outcome=NAME     one outcome (answered, no_answer, ...)
    text=STATE       the missed-call text's state, or "none" for calls without one
    from=, to=       dates (YYYY-MM-DD, inclusive) on the clock of the business (or of the viewer's businesses)
    q=DIGITS         digits found anywhere in the caller's number
    older=CURSOR     the next page: calls strictly older than this (set by the "Older" link)
"""

from __future__ import annotations

import datetime
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from callbuddy_pbx.model import Outcome
from callbuddy_pbx.store.dashboard_queries import TEXT_FILTERS, FeedFilter
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.page import PageError
from callbuddy_pbx.web.viewer import Viewer

FORM_KEYS: tuple[str, ...] = ("all", "business", "outcome", "text", "from", "to", "q")
MAX_DIGITS = 20
MAX_NAME_CHARS = 100
_CURSOR_SEP = "~"


@dataclass(frozen=True, slots=True)
class FeedQuery:
    filter: FeedFilter
    older: tuple[float, str] | None  # the keyset cursor of this page (None: the newest calls)
    timezone: str  # the clock of the dates in the form
    form: Mapping[str, str]  # the filters as given, to fill the form again and build links

    def query_string(self, **extra: str) -> str:
        """The filters (plus `extra`) as a query string, without the page cursor: for live, CSV and paging links."""
        pairs = {key: value for key, value in self.form.items() if value} | extra
        return urllib.parse.urlencode(pairs)


def business_choices(ctx: DashboardContext, viewer: Viewer) -> list[str]:
    """The businesses a viewer may pick: an admin every configured one, a business user their own."""
    return [b.name for b in ctx.businesses] if viewer.is_admin else list(viewer.businesses)


def chosen_business(ctx: DashboardContext, viewer: Viewer, text: str) -> str | None:
    """The `business` of a query: "" = every business the viewer may see; another's is a 403."""
    if not text:
        return None
    if len(text) > MAX_NAME_CHARS or not viewer.may_see(text):
        raise PageError(403, "You may not see that business.")
    return text


def local_day_start(day: datetime.date, timezone: str) -> float:
    """Epoch seconds of the day's first moment on that clock."""
    return datetime.datetime.combine(day, datetime.time(), tzinfo=zoneinfo.ZoneInfo(timezone)).timestamp()


def parse_day(text: str, name: str) -> datetime.date | None:
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise PageError(400, f"{name}: expected a date such as 2024-05-31.") from None


def format_cursor(cursor: tuple[float, str]) -> str:
    return f"{cursor[0]!r}{_CURSOR_SEP}{cursor[1]}"  # repr: the float reads back exactly


def parse_cursor(text: str) -> tuple[float, str] | None:
    if not text:
        return None
    ended, sep, linkedid = text.partition(_CURSOR_SEP)
    try:
        value = float(ended)
    except ValueError:
        value = float("nan")
    if not sep or value != value or not linkedid or len(linkedid) > 200:  # value != value: NaN
        raise PageError(400, "older: not a page of this feed.")
    return value, linkedid


def feed_query(ctx: DashboardContext, viewer: Viewer, query: Mapping[str, str]) -> FeedQuery:
    """Check the filters of a feed request; a bad one is a PageError (400, or 403 for another's business)."""
    form = {key: query.get(key, "").strip() for key in FORM_KEYS}
    form["all"] = "1" if form["all"] in ("1", "true", "yes", "on") else ""
    business = chosen_business(ctx, viewer, form["business"])
    outcome = form["outcome"] or None
    if outcome is not None and outcome not in {o.value for o in Outcome}:
        raise PageError(400, "outcome: not a known outcome.")
    text = form["text"] or None
    if text is not None and text not in TEXT_FILTERS:
        raise PageError(400, f"text: expected one of {', '.join(TEXT_FILTERS)}.")
    digits = "".join(ch for ch in form["q"] if ch.isascii() and ch.isdigit())
    if form["q"] and not digits:
        raise PageError(400, "Search: type some digits of the number.")
    if len(digits) > MAX_DIGITS:
        raise PageError(400, f"Search: at most {MAX_DIGITS} digits.")
    form["q"] = digits
    timezone = ctx.timezone_of(business) if business else ctx.common_timezone(viewer.scope)
    first, last = parse_day(form["from"], "from"), parse_day(form["to"], "to")
    if first is not None and last is not None and last < first:
        raise PageError(400, "to: before from.")
    feed = FeedFilter(
        missed_only=not form["all"],
        business=business,
        outcome=outcome,
        text=text,
        since=None if first is None else local_day_start(first, timezone),
        until=None if last is None else local_day_start(last + datetime.timedelta(days=1), timezone),
        digits=digits or None,
    )
    return FeedQuery(feed, parse_cursor(query.get("older", "")), timezone, form)
