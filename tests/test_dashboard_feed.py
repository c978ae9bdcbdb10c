"""The missed-call feed (GET /calls) and its CSV (GET /calls.csv): filters, pages, scope, numbers, escaping.

The rows expected are worked out from the scenario in Python (`feed_expected`); the CSV is parsed and compared
with them cell by cell for the cells that matter (numbers, names, injection prefixes).
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from callbuddy_pbx.phone import mask
from callbuddy_pbx.web import export
from tests.test_dashboard_helpers import (  # noqa: F401 (fixtures)
    BOLT,
    FORMULA_NAME,
    GLOW,
    GONE,
    VIEWERS,
    XSS_NAME,
    Site,
    feed_expected,
    filled_fixture,
    in_scope,
    row_ids,
    site_fixture,
)

PAGE_SIZE = 50
NEXT_LINK = re.compile(r'<a href="([^"]+)" rel="next">')


async def all_pages(site: Site, user: str, **params: str) -> tuple[list[str], list[str]]:
    """Follow the "Older" links from the first page: (every row id in order, every page's HTML)."""
    status, html = await site.page("/calls", user, **params)
    assert status == 200, html
    ids, pages = row_ids(html), [html]
    while link := NEXT_LINK.search(html):
        assert len(row_ids(html)) == PAGE_SIZE
        response = await site.client.get(html_lib.unescape(link.group(1)), headers={"X-Test-User": user})
        assert response.status == 200
        html = await response.text()
        ids += row_ids(html)
        pages.append(html)
    return ids, pages


@pytest.mark.parametrize("user", ["admin", "glow", "both"])
@pytest.mark.parametrize("everything", [False, True])
async def test_pages_hold_every_call_in_scope_once(site: Site, user: str, everything: bool) -> None:
    scope = VIEWERS[user].scope
    params = {"all": "1"} if everything else {}
    ids, pages = await all_pages(site, user, **params)
    want = feed_expected(site.scenario, scope, missed_only=not everything)
    assert ids == want and len(pages) == -(-len(want) // PAGE_SIZE)
    assert ("live" in pages[0]) and all('data-live-url="' not in page for page in pages[1:])  # live: first page only
    if user != "admin":
        others = {c.record.linkedid for c in site.scenario.calls if not in_scope(c.record.business, scope)}
        assert others and not others & set(ids)
        joined = "".join(pages)
        hidden = [c for c in site.scenario.calls if c.record.linkedid in others]
        assert not any(c.record.caller_name and f">{c.record.caller_name}<" in joined for c in hidden)


async def test_filters(site: Site) -> None:
    ny = ZoneInfo("America/New_York")
    cases: list[tuple[str, dict[str, str], dict[str, object]]] = [
        ("admin", {"business": BOLT}, {"business": BOLT}),
        ("admin", {"outcome": "busy"}, {"outcome": "busy"}),
        ("admin", {"outcome": "answered", "all": "1"}, {"outcome": "answered", "missed_only": False}),
        ("glow", {"from": "2024-03-01", "to": "2024-03-10"},
         {"since": datetime(2024, 3, 1, tzinfo=ny).timestamp(), "until": datetime(2024, 3, 11, tzinfo=ny).timestamp()}),
        ("admin", {"q": "555000"}, {"digits": "555000"}),
        ("both", {"q": "+1 (555) 0000-1"}, {"digits": "155500001"}),  # matches callers 100..199
        ("both", {"business": GLOW, "text": "delivered", "all": "1"},
         {"business": GLOW, "text": "delivered", "missed_only": False}),
    ]  # fmt: skip
    for state in ("none", "queued", "sent", "delivered", "failed", "cancelled", "expired"):
        cases.append(("admin", {"text": state}, {"text": state}))
    for user, query, want in cases:
        status, html = await site.page("/calls", user, **query)
        assert status == 200, (query, html)
        expected = feed_expected(site.scenario, VIEWERS[user].scope, **want)  # type: ignore[arg-type]
        assert row_ids(html) == expected[:PAGE_SIZE], query
        if query.get("text") not in ("expired",):
            assert expected, f"the scenario has rows for {query}"
        for key, value in query.items():  # the form shows the filters it applied
            if key in ("business", "outcome", "text"):
                assert f'<option value="{value}" selected>' in html
    _, html = await site.page("/calls", "admin", q="99999")
    assert "No calls match." in html and row_ids(html) == []


@pytest.mark.parametrize(
    ("user", "query", "status", "message"),
    [
        ("glow", {"business": BOLT}, 403, "You may not see that business."),
        ("glow", {"business": GONE}, 403, "You may not see that business."),
        ("admin", {"outcome": "lost"}, 400, "outcome: not a known outcome."),
        ("admin", {"text": "read"}, 400, "text: expected one of"),
        ("admin", {"from": "March"}, 400, "from: expected a date"),
        ("admin", {"from": "2024-03-02", "to": "2024-03-01"}, 400, "to: before from."),
        ("admin", {"q": "abc"}, 400, "type some digits"),
        ("admin", {"q": "1" * 21}, 400, "at most 20 digits"),
        ("admin", {"older": "yesterday"}, 400, "older: not a page"),
        ("admin", {"older": "nan~x"}, 400, "older: not a page"),
    ],
)
async def test_bad_filters(site: Site, user: str, query: dict[str, str], status: int, message: str) -> None:
    for path in ("/calls", "/calls.csv", "/calls/live"):
        got, html = await site.page(path, user, **query)
        assert (got, message in html) == (status, True), path
        assert "<tr id=" not in html


async def test_numbers_as_the_viewer_may_see_them(site: Site) -> None:
    glow_calls = [c for c in site.scenario.calls if c.record.business == GLOW and c.record.missed]
    _, masked = await site.page("/calls", "glow", **{"from": "2024-02-01"})
    _, full = await site.page("/calls", "both", business=GLOW, **{"from": "2024-02-01"})
    shown = set(row_ids(masked))
    assert shown == set(row_ids(full)) and len(shown) > 20
    for call in glow_calls:
        if call.record.linkedid not in shown:
            continue
        caller = call.record.caller
        if caller is None:
            continue
        assert caller not in masked and mask(caller) in masked
        assert caller in full
    assert "withheld" in masked  # a call without a number


ROW_TIME = re.compile(r'<tr id="call-([^"]+)".*?<td data-label="Time" class="time"><a href="[^"]+">([^<]+)</a>', re.S)


@pytest.mark.parametrize(("user", "zone"), [("admin", "UTC"), ("glow", "America/New_York"), ("both", "UTC")])
async def test_one_clock_per_feed_so_rows_read_in_time_order(site: Site, user: str, zone: str) -> None:
    _, html = await site.page("/calls", user, all="1")
    assert f"Times in {zone}." in html
    shown = ROW_TIME.findall(html)
    assert len(shown) == PAGE_SIZE
    if user != "glow":  # rows of several businesses (and their clocks) on one page
        assert len({site.scenario.call(linkedid).record.business for linkedid, _ in shown}) > 1
    for linkedid, text in shown:  # every row on the page's clock, whichever business it belongs to
        ended = site.scenario.call(linkedid).record.ended_at
        assert text == datetime.fromtimestamp(ended, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    times = [text for _, text in shown]
    assert times == sorted(times, reverse=True)  # newest first, as read


async def test_hostile_caller_names_are_escaped(site: Site) -> None:
    _, html = await site.page("/calls", "glow", **{"from": "2024-03-01"})
    assert XSS_NAME not in html and "<script>alert" not in html
    assert html_lib.escape(XSS_NAME) in html.replace("&#34;", "&quot;").replace("&#39;", "&#x27;")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;" in html
    assert "rejected: &lt;b&gt;bad&lt;/b&gt; =SUM(A1)" in html  # a gateway's error, escaped too


def parse_csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


async def get_csv(site: Site, user: str, **params: str) -> list[dict[str, str]]:
    response = await site.client.get("/calls.csv", params=params, headers={"X-Test-User": user})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="calls-\d{8}-\d{4}\.csv"', response.headers["Content-Disposition"])
    body = await response.read()
    assert body.startswith(b"\xef\xbb\xbf" + ",".join(export.HEADER).encode() + b"\r\n")
    return parse_csv(body)


@pytest.mark.parametrize("user", ["admin", "glow"])
async def test_csv_has_the_feeds_rows(site: Site, user: str) -> None:
    rows = await get_csv(site, user, all="1")
    scope = VIEWERS[user].scope
    want = feed_expected(site.scenario, scope, missed_only=False)
    assert [row["linkedid"] for row in rows] == want and len(want) > PAGE_SIZE  # every page, not just the first
    tz = {"admin": "UTC", "glow": "America/New_York"}[user]  # one clock per export: the admin's businesses differ
    for row in rows:
        call = site.scenario.call(row["linkedid"])
        record = call.record
        shown = VIEWERS[user].number(record.caller)
        assert row["caller"] == ("'" + shown if shown.startswith("+") else shown)  # injection prefix on "+"
        assert row["timezone"] == tz and row["business"] == (record.business or "")
        assert row["ended_at"] == datetime.fromtimestamp(record.ended_at, ZoneInfo(tz)).isoformat(timespec="seconds")
        assert row["number_called"] == "'" + record.did
        assert row["missed"] == ("yes" if record.missed else "no")
        assert row["clicks"] == str(call.clicks)
        assert row["text_state"] == {"none": "No text", "queued": "Queued", "sent": "Sent", "delivered": "Delivered",
                                     "failed_report": "Failed", "failed_send": "Failed",
                                     "cancelled": "Cancelled"}[call.fate]  # fmt: skip
        if user == "glow":
            assert record.caller is None or record.caller not in row["caller"]
    if user == "glow":
        names = {row["caller_name"] for row in rows}
        assert XSS_NAME in names  # plain text in a CSV: a spreadsheet does not run HTML
        assert "'" + FORMULA_NAME in names and FORMULA_NAME not in names
        errors = {row["text_error"] for row in rows}
        assert "rejected: <b>bad</b> =SUM(A1)" in errors


async def test_csv_follows_the_filters_and_the_cap(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = await get_csv(site, "both", business=BOLT, text="delivered")
    assert [row["linkedid"] for row in rows] == feed_expected(site.scenario, [GLOW, BOLT], business=BOLT,
                                                              text="delivered")  # fmt: skip
    monkeypatch.setattr(export, "MAX_ROWS", 7)
    monkeypatch.setattr(export, "BATCH", 3)
    rows = await get_csv(site, "admin")
    assert [row["linkedid"] for row in rows] == feed_expected(site.scenario, None)[:7]


def test_csv_cells_never_start_a_formula() -> None:
    for value in ("=1+1", "+1555", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert export.cell(value) == "'" + value
    for value in ("Ann", "'quoted", " =spaced", "1+1", ""):
        assert export.cell(value) == value
    assert export.cell(None) == "" and export.cell(3) == "3"
