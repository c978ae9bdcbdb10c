"""The overview page (GET /): every figure on it matches the rows, for each viewer, business choice and period.

The expected figures are worked out in Python from the scenario (tests/test_dashboard_helpers.py), and the period
bounds from the calendar with zoneinfo, never with the code under test.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from callbuddy_pbx.store.stats import recovery_stats
from tests.test_dashboard_helpers import (  # noqa: F401 (fixtures)
    BOLT,
    GLOW,
    NOW,
    Site,
    expected,
    figures,
    filled_fixture,
    site_fixture,
)

NY, LONDON, UTC = "America/New_York", "Europe/London", "UTC"

# (user, business asked for, the businesses counted (None: all), the clock of the page)
VIEWS = [
    ("admin", "", None, UTC),  # Glow and Bolt keep different clocks: the page uses UTC
    ("admin", GLOW, {GLOW}, NY),
    ("admin", BOLT, {BOLT}, LONDON),
    ("glow", "", {GLOW}, NY),
    ("both", "", {GLOW, BOLT}, UTC),
    ("both", BOLT, {BOLT}, LONDON),
]


def midnight(day: str, tz: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(tz)).timestamp()


def bounds(period: str, tz: str) -> tuple[float, float]:
    """NOW is 15:30 UTC on Friday 15 March 2024 (11:30 in New York, on summer time since the 10th)."""
    return {
        "today": (midnight("2024-03-15", tz), NOW),
        "yesterday": (midnight("2024-03-14", tz), midnight("2024-03-15", tz)),
        "7d": (midnight("2024-03-09", tz), NOW),
        "30d": (midnight("2024-02-15", tz), NOW),  # 2024 is a leap year
        "dates": (midnight("2024-02-20", tz), midnight("2024-03-06", tz)),
    }[period]


async def test_every_figure_matches_the_rows(site: Site) -> None:
    checked = 0
    for user, business, scope, tz in VIEWS:
        for period in ("today", "yesterday", "7d", "30d", "dates"):
            dates = {"from": "2024-02-20", "to": "2024-03-05"} if period == "dates" else {}
            status, html = await site.page("/", user, business=business, period=period, **dates)
            assert status == 200, html
            since, until = bounds(period, tz)
            want = expected(site.scenario, since, until, scope, tz)
            got = figures(html)
            assert set(got) == set(want), "every figure on the page is checked"
            for name, value in want.items():
                assert got[name] == pytest.approx(value), (user, business, period, name)
            assert f"({tz})" in html
            checked += 1
    assert checked == len(VIEWS) * 5
    # The scenario exercises every figure in the widest view.
    busy = expected(site.scenario, *bounds("30d", UTC), None, UTC)
    assert all(busy[name] for name in ("texted", "delivered", "failed", "clicked", "opted_out", "replies", "recovered"))
    assert busy["latency_samples"] > 5  # type: ignore[operator]


async def test_default_period_is_the_last_seven_days(site: Site) -> None:
    _, html = await site.page("/", "glow")
    want = expected(site.scenario, *bounds("7d", NY), {GLOW}, NY)
    assert figures(html)["missed"] == want["missed"]
    assert '<option value="7d" selected>' in html


async def test_business_choices_are_the_viewers(site: Site) -> None:
    _, admin = await site.page("/", "admin")
    assert "All businesses" in admin and f'<option value="{GLOW}">' in admin and f'<option value="{BOLT}">' in admin
    _, glow = await site.page("/", "glow")
    assert f'<option value="{GLOW}">' in glow and BOLT not in glow
    _, both = await site.page("/", "both", business=GLOW)
    assert f'<option value="{GLOW}" selected>' in both and f'<option value="{BOLT}">' in both


async def test_another_business_is_refused(site: Site) -> None:
    for user, business in (("glow", BOLT), ("glow", "Nobody"), ("bolt", GLOW)):
        status, html = await site.page("/", user, business=business)
        assert status == 403 and "You may not see that business." in html
        assert 'data-figure="calls"' not in html
    status, html = await site.page("/", "admin", business="Nobody")  # an admin may ask for any name: all zero
    assert status == 200 and figures(html)["calls"] == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"period": "fortnight"}, "period: expected one of"),
        ({"period": "dates", "from": "2024-03-05", "to": "2024-03-01"}, "to: before from."),
        ({"period": "dates", "from": "yesterday"}, "from: expected a date"),
        ({"period": "dates", "from": "2020-01-01", "to": "2024-01-01"}, "at most 400 days"),
    ],
)
async def test_bad_periods(site: Site, query: dict[str, str], message: str) -> None:
    status, html = await site.page("/", "admin", **query)
    assert status == 400 and message in html


async def test_recovery_stats_counts_several_businesses_together(site: Site) -> None:
    since, until = bounds("30d", UTC)
    both = await recovery_stats(site.store, since=since, until=until, businesses=[GLOW, BOLT], timezone=NY)
    want = expected(site.scenario, since, until, {GLOW, BOLT}, NY)
    assert (both.calls, both.missed, both.texted, both.opted_out, both.replies, both.businesses) == (
        want["calls"], want["missed"], want["texted"], want["opted_out"], want["replies"], (GLOW, BOLT))  # fmt: skip
    assert both.to_dict()["businesses"] == [GLOW, BOLT] and both.business is None
    one = await recovery_stats(site.store, since=since, until=until, business=GLOW)
    assert (one.business, one.businesses, one.calls) == (GLOW, (GLOW,), expected(site.scenario, since, until,
                                                                                    {GLOW}, UTC)["calls"])  # fmt: skip
    none = await recovery_stats(site.store, since=since, until=until, businesses=[])
    assert none.calls == 0
    with pytest.raises(ValueError, match="not both"):
        await recovery_stats(site.store, since=since, until=until, business=GLOW, businesses=[BOLT])
