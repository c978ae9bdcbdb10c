"""Opening hours, holidays and quiet hours, on the business's wall clock, across midnight and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from callbuddy_pbx.config import Business, QuietHours, WeeklyHours
from callbuddy_pbx.recovery.schedule import in_quiet_hours, is_open, next_allowed

NY = ZoneInfo("America/New_York")
NIGHT = QuietHours(time(21), time(8))

# Mon 9-17; Tue 9-12 and 13-18; Fri 18-24; the rest closed.
HOURS = WeeklyHours(
    (
        ((time(9), time(17)),),
        ((time(9), time(12)), (time(13), time(18))),
        (),
        (),
        ((time(18), time.max),),
        (),
        (),
    )
)
SALON = Business("Glow Salon", ("+15550001000",), "America/New_York", hours=HOURS, holidays=(date(2026, 12, 21),))


def ny(*parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=NY, fold=fold).astimezone(UTC)


# -- is_open ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        (ny(2026, 11, 16, 9, 0), True),  # Monday, opening minute
        (ny(2026, 11, 16, 16, 59), True),
        (ny(2026, 11, 16, 17, 0), False),  # closing time is closed
        (ny(2026, 11, 16, 8, 59), False),
        (ny(2026, 11, 17, 12, 30), False),  # Tuesday lunch break
        (ny(2026, 11, 17, 13, 0), True),
        (ny(2026, 11, 18, 12, 0), False),  # Wednesday: not listed, closed
        (ny(2026, 11, 20, 23, 59), True),  # Friday until midnight
        (ny(2026, 11, 21, 0, 0), False),  # Saturday
    ],
)
def test_is_open_follows_the_local_week(when, open_):
    assert is_open(SALON, when) is open_


def test_is_open_uses_the_business_zone_not_utc():
    # Monday 10:00 in New York is 15:00 UTC; Monday 05:00 UTC is Sunday night in New York.
    assert is_open(SALON, datetime(2026, 11, 16, 15, 0, tzinfo=UTC))
    assert not is_open(SALON, datetime(2026, 11, 16, 5, 0, tzinfo=UTC))


def test_a_holiday_is_closed_all_day_even_in_opening_hours():
    assert not is_open(SALON, ny(2026, 12, 21, 10, 0))  # a Monday
    assert is_open(SALON, ny(2026, 12, 28, 10, 0))  # the Monday after


def test_without_hours_a_business_is_always_open_except_on_holidays():
    always = Business("A", ("+15550001000",), "America/New_York", holidays=(date(2026, 12, 25),))
    assert is_open(always, ny(2026, 12, 24, 3, 0))
    assert not is_open(always, ny(2026, 12, 25, 12, 0))


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        is_open(SALON, datetime(2026, 11, 16, 10, 0))  # naive on purpose


# -- quiet hours ------------------------------------------------------------------------------------------------------


def test_in_quiet_hours_across_midnight():
    assert in_quiet_hours(NIGHT, time(21, 0))
    assert in_quiet_hours(NIGHT, time(23, 59))
    assert in_quiet_hours(NIGHT, time(0, 0))
    assert in_quiet_hours(NIGHT, time(7, 59))
    assert not in_quiet_hours(NIGHT, time(8, 0))
    assert not in_quiet_hours(NIGHT, time(20, 59))


def test_in_quiet_hours_within_a_day():
    lunch = QuietHours(time(12), time(13))
    assert in_quiet_hours(lunch, time(12, 30))
    assert not in_quiet_hours(lunch, time(13, 0))
    assert not in_quiet_hours(lunch, time(0, 0))


def test_allowed_time_is_kept():
    when = ny(2026, 11, 16, 14, 0)
    assert next_allowed(NIGHT, NY, when) == when
    assert next_allowed(None, NY, when) == when


def test_evening_waits_until_the_next_morning():
    assert next_allowed(NIGHT, "America/New_York", ny(2026, 11, 16, 22, 30)) == ny(2026, 11, 17, 8, 0)


def test_early_morning_waits_until_the_same_morning():
    assert next_allowed(NIGHT, NY, ny(2026, 11, 17, 3, 0)) == ny(2026, 11, 17, 8, 0)


def test_result_is_in_utc():
    assert next_allowed(NIGHT, NY, ny(2026, 11, 17, 3, 0)).tzinfo is UTC


def test_spring_forward_night_is_one_hour_shorter():
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT. 08:00 that morning is 12:00 UTC, not 13:00.
    assert next_allowed(NIGHT, NY, ny(2026, 3, 7, 22, 0)) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_fall_back_night_is_one_hour_longer():
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST. 08:00 that morning is 13:00 UTC.
    assert next_allowed(NIGHT, NY, ny(2026, 10, 31, 22, 0)) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_an_end_inside_the_skipped_hour_gives_the_end_of_the_gap():
    # Quiet until 02:30, which does not exist on 2026-03-08: texts may go at 03:00 EDT (07:00 UTC).
    quiet = QuietHours(time(22), time(2, 30))
    assert next_allowed(quiet, NY, ny(2026, 3, 8, 1, 0)) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_an_end_inside_the_repeated_hour():
    quiet = QuietHours(time(0), time(1, 30))
    # First 01:00 (EDT): quiet until the first 01:30 (EDT).
    assert next_allowed(quiet, NY, ny(2026, 11, 1, 1, 0)) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    # Second 01:00 (EST): the first 01:30 is past; quiet until 01:30 EST.
    assert next_allowed(quiet, NY, ny(2026, 11, 1, 1, 0, fold=1)) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    # Second 01:40 (EST) is outside the window again.
    assert next_allowed(quiet, NY, ny(2026, 11, 1, 1, 40, fold=1)) == ny(2026, 11, 1, 1, 40, fold=1)


def test_quiet_hours_follow_the_zone_given():
    london = ZoneInfo("Europe/London")
    when = datetime(2026, 11, 16, 22, 0, tzinfo=UTC)  # 22:00 in London, 17:00 in New York
    assert next_allowed(NIGHT, london, when) == datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
    assert next_allowed(NIGHT, NY, when) == when


def test_a_kept_time_is_given_in_utc_too():
    when = datetime(2026, 11, 16, 14, 0, tzinfo=NY)  # handed over in the business's zone
    assert next_allowed(NIGHT, NY, when).tzinfo is UTC
    assert next_allowed(None, NY, when).tzinfo is UTC


@pytest.mark.parametrize("end", [time(2, 1), time(2, 10), time(2, 45), time(2, 59)])
def test_any_end_inside_the_skipped_hour_gives_the_exact_second_the_clocks_go_forward(end):
    # 2026-03-08, New York: 02:00 EST is 03:00 EDT, 07:00:00 UTC; not a second later, not a fraction off.
    allowed = next_allowed(QuietHours(time(22), end), NY, ny(2026, 3, 8, 1, 0))
    assert allowed == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert allowed.timestamp() == datetime(2026, 3, 8, 7, 0, tzinfo=UTC).timestamp()


def test_a_time_in_the_repeated_hour_is_given_in_utc():
    quiet = QuietHours(time(0), time(1, 30))
    allowed = next_allowed(quiet, NY, ny(2026, 11, 1, 1, 0, fold=1))  # the second 01:00: until 01:30 EST
    assert allowed == datetime(2026, 11, 1, 6, 30, tzinfo=UTC) and allowed.tzinfo is UTC
