"""Who gets a text after a missed call, when, saying what — and the stored reason for every caller who does not."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from callbuddy_pbx.config import Business, QuietHours, TextBack, WeeklyHours
from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.recovery.policy import Decision, Keyword, PolicyFacts, Reason, classify_inbound, decide

NY = ZoneInfo("America/New_York")
CALLER = "+15557654321"  # a fictional NANP number: its type is unknown, so it gets the benefit of the doubt

WEEKDAYS_9_TO_5 = WeeklyHours(tuple(((time(9), time(17)),) if day < 5 else () for day in range(7)))
TEXT_BACK = TextBack(
    template="Hi {caller_name}, {business} missed your call at {time}. Book: {booking_url} Reply STOP to opt out.",
    after_hours_template="{business} is closed now. Book: {booking_url} Reply STOP to opt out.",
    gateway="smsc",
)
SALON = Business(
    "Glow Salon",
    ("+15550001000", "+15550001003"),
    "America/New_York",
    booking_url="https://glow.example/book",
    text_back=TEXT_BACK,
    hours=WEEKDAYS_9_TO_5,
    holidays=(date(2026, 11, 26),),  # a Thursday
)
NO_FACTS = PolicyFacts()


def at(*parts: int) -> float:
    """Unix time of a New York wall-clock time."""
    return datetime(*parts, tzinfo=NY).timestamp()


MONDAY_2PM = at(2026, 11, 16, 14, 0)


def missed_call(
    *,
    outcome: Outcome = Outcome.NO_ANSWER,
    started_at: float = MONDAY_2PM,
    ring_s: float | None = 20.0,
    caller: str | None = CALLER,
    caller_raw: str | None = None,
    caller_name: str | None = "JANE DOE",
    did: str = "+15550001003",
    observed_from_start: bool = True,
) -> CallRecord:
    ended_at = started_at + 2 + (ring_s or 0)
    return CallRecord(
        linkedid="1763319600.42",
        business="Glow Salon",
        did=did,
        caller=caller,
        caller_raw=caller_raw if caller_raw is not None else (caller or "anonymous"),
        caller_name=caller_name,
        outcome=outcome,
        answered_by="PJSIP/101" if outcome is Outcome.ANSWERED else None,
        started_at=started_at,
        ring_at=started_at + 2 if ring_s is not None else None,
        answered_at=started_at + 10 if outcome is Outcome.ANSWERED else None,
        ended_at=ended_at,
        hangup_cause=16,
        observed_from_start=observed_from_start,
    )


def salon(**changes: object) -> Business:
    return dataclasses.replace(SALON, text_back=dataclasses.replace(TEXT_BACK, **changes))


def decide_now(call: CallRecord, business: Business | None = SALON, facts: PolicyFacts = NO_FACTS) -> Decision:
    return decide(call, business, facts, call.ended_at)


# -- the text that goes out ------------------------------------------------------------------------------------------


def test_a_missed_call_in_opening_hours_gets_the_business_hours_text_right_away():
    call = missed_call()
    decision = decide_now(call)
    assert decision == Decision(
        send=True,
        reason=Reason.SEND,
        send_at=call.ended_at,
        text="Hi Jane Doe, Glow Salon missed your call at 2:00 PM. Book: https://glow.example/book "
        "Reply STOP to opt out.",
        sender="+15550001003",  # the number the caller dialled, so a reply reaches the same line
        gateway="smsc",
        to=CALLER,
    )


def test_configured_sender_wins():
    assert decide_now(missed_call(), salon(sender="GlowSalon")).sender == "GlowSalon"


def test_after_hours_template_on_a_closed_day():
    saturday = missed_call(started_at=at(2026, 11, 21, 11, 0))
    assert (
        decide_now(saturday).text == "Glow Salon is closed now. Book: https://glow.example/book Reply STOP to opt out."
    )


def test_after_hours_template_on_a_holiday_during_usual_hours():
    thanksgiving = missed_call(started_at=at(2026, 11, 26, 11, 0))
    assert decide_now(thanksgiving).text.startswith("Glow Salon is closed now.")


def test_the_template_follows_the_time_of_the_call_not_of_the_decision():
    call = missed_call(started_at=at(2026, 11, 16, 16, 59), ring_s=90.0)  # ends after 17:00
    assert call.ended_at > at(2026, 11, 16, 17, 0)
    decision = decide(call, SALON, NO_FACTS, at(2026, 11, 16, 19, 0))
    assert decision.text.startswith("Hi Jane Doe, Glow Salon missed your call at 4:59 PM.")


def test_without_an_after_hours_template_the_usual_one_is_used_at_night():
    night = missed_call(started_at=at(2026, 11, 16, 20, 0))
    assert decide_now(night, salon(after_hours_template=None)).text.startswith("Hi Jane Doe, Glow Salon missed")


def test_hold_off_delays_the_text_from_the_end_of_the_call():
    call = missed_call()
    decision = decide(call, salon(hold_off_s=120.0), NO_FACTS, call.ended_at + 5)
    assert (decision.send, decision.reason, decision.send_at) == (True, Reason.SEND, call.ended_at + 120)


def test_a_late_decision_is_never_scheduled_in_the_past():
    call = missed_call()
    decision = decide(call, salon(hold_off_s=60.0), NO_FACTS, call.ended_at + 600)
    assert decision.send_at == call.ended_at + 600


def test_quiet_hours_across_midnight_defer_until_the_morning():
    late = missed_call(started_at=at(2026, 11, 16, 22, 30))
    decision = decide_now(late, salon(quiet_hours=QuietHours(time(21), time(8))))
    assert (decision.send, decision.reason) == (True, Reason.DEFERRED_QUIET_HOURS)
    assert decision.send_at == at(2026, 11, 17, 8, 0)
    assert decision.text.startswith("Glow Salon is closed now.")  # deferred, and written for the time of the call


def test_quiet_hours_after_midnight_defer_to_the_same_morning():
    early = missed_call(started_at=at(2026, 11, 17, 5, 0))
    assert decide_now(early, salon(quiet_hours=QuietHours(time(21), time(8)))).send_at == at(2026, 11, 17, 8, 0)


def test_quiet_hours_on_the_night_clocks_go_forward():
    # 2026-03-08, America/New_York: 02:00 EST becomes 03:00 EDT; 08:00 EDT is 12:00 UTC.
    late = missed_call(started_at=at(2026, 3, 7, 23, 0))
    decision = decide_now(late, salon(quiet_hours=QuietHours(time(21), time(8))))
    assert decision.send_at == datetime(2026, 3, 8, 12, 0, tzinfo=UTC).timestamp()


def test_quiet_hours_on_the_night_clocks_go_back():
    # 2026-11-01: 02:00 EDT becomes 01:00 EST; 08:00 EST is 13:00 UTC.
    late = missed_call(started_at=at(2026, 10, 31, 23, 0))
    decision = decide_now(late, salon(quiet_hours=QuietHours(time(21), time(8))))
    assert decision.send_at == datetime(2026, 11, 1, 13, 0, tzinfo=UTC).timestamp()


def test_hold_off_that_runs_into_quiet_hours_waits_for_the_morning():
    call = missed_call(started_at=at(2026, 11, 16, 20, 58))
    decision = decide_now(call, salon(hold_off_s=300.0, quiet_hours=QuietHours(time(21), time(8))))
    assert (decision.reason, decision.send_at) == (Reason.DEFERRED_QUIET_HOURS, at(2026, 11, 17, 8, 0))


# -- every reason not to text, one by one ------------------------------------------------------------------------


def refused(decision: Decision) -> Reason:
    assert decision.send is False
    assert decision.text == ""
    return decision.reason


def test_answered():
    assert refused(decide_now(missed_call(outcome=Outcome.ANSWERED))) == "answered"


def test_no_business():
    assert refused(decide_now(missed_call(), None)) == "no_business"


def test_text_back_disabled():
    assert refused(decide_now(missed_call(), salon(enabled=False))) == "text_back_disabled"


def test_outcome_not_enabled():
    business = salon(outcomes=("no_answer", "busy"))
    assert refused(decide_now(missed_call(outcome=Outcome.VOICEMAIL), business)) == "outcome_not_enabled"
    assert decide_now(missed_call(outcome=Outcome.BUSY), business).send


def test_withheld_number():
    call = missed_call(caller=None, caller_raw="anonymous")
    assert refused(decide_now(call)) == "withheld_number"


def test_internal_extension():
    assert refused(decide_now(missed_call(caller=None, caller_raw="101"))) == "internal_extension"


def test_invalid_number():
    assert refused(decide_now(missed_call(caller=None, caller_raw="sip:bob@example.com"))) == "invalid_number"


def test_not_a_mobile_number():
    london_landline = "+442079460018"
    assert refused(decide_now(missed_call(caller=london_landline))) == "not_a_mobile_number"
    toll_free = "+18005551234"
    assert refused(decide_now(missed_call(caller=toll_free))) == "not_a_mobile_number"
    assert decide_now(missed_call(caller="+12125551234")).send  # NANP: fixed line or mobile, cannot tell


def test_own_number():
    assert refused(decide_now(missed_call(caller="+15550001000"))) == "own_number"


def test_opted_out():
    assert refused(decide_now(missed_call(), facts=PolicyFacts(opted_out=True))) == "opted_out"


def test_already_texted_in_window():
    call = missed_call()
    recent = PolicyFacts(last_text_at=call.ended_at - 23 * 3600)
    assert refused(decide_now(call, facts=recent)) == "already_texted_in_window"
    long_ago = PolicyFacts(last_text_at=call.ended_at - 25 * 3600)
    assert decide_now(call, facts=long_ago).send


def test_a_text_still_waiting_for_the_morning_counts_as_sent():
    call = missed_call()
    scheduled = PolicyFacts(last_text_at=call.ended_at + 8 * 3600)
    assert refused(decide_now(call, facts=scheduled)) == "already_texted_in_window"


def test_rang_too_briefly_only_for_abandoned_calls():
    business = salon(min_ring_s=4.0)
    pocket_dial = missed_call(outcome=Outcome.ABANDONED, ring_s=2.0)
    assert refused(decide_now(pocket_dial, business)) == "rang_too_briefly"
    assert decide_now(missed_call(outcome=Outcome.ABANDONED, ring_s=6.0), business).send
    assert decide_now(missed_call(outcome=Outcome.BUSY, ring_s=0.0), business).send


def test_not_fully_observed():
    assert refused(decide_now(missed_call(observed_from_start=False))) == "not_fully_observed"


def test_no_gateway():
    assert refused(decide_now(missed_call(), salon(gateway=None))) == "no_gateway"


def test_reasons_are_stable_snake_case_words():
    assert {reason.value for reason in Reason} >= {
        "answered",
        "outcome_not_enabled",
        "text_back_disabled",
        "no_business",
        "withheld_number",
        "not_a_mobile_number",
        "invalid_number",
        "internal_extension",
        "own_number",
        "opted_out",
        "already_texted_in_window",
        "rang_too_briefly",
        "not_fully_observed",
    }


def test_a_refusal_still_names_the_caller():
    assert decide_now(missed_call(), facts=PolicyFacts(opted_out=True)).to == CALLER


# -- replies -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop. ",
        "STOP!!",
        "stopall",
        "Unsubscribe",
        "cancel",
        "END",
        "quit",
        "Revoke",
        "opt out",
        "Opt-Out",
        "OPTOUT",
        "ＳＴＯＰ",
        "Stop texting me",
        "stop 🙏",
        "Opt out please",
        "opt-out of these texts",
        "OPT OUT NOW",
    ],
)
def test_opt_out_words(text):
    assert classify_inbound(text) is Keyword.OPT_OUT


@pytest.mark.parametrize("text", ["START", "unstop", "Un-stop", "UN STOP", "Yes", " yes! "])
def test_opt_in_words(text):
    assert classify_inbound(text) is Keyword.OPT_IN


@pytest.mark.parametrize("text", ["HELP", "help?", "Info"])
def test_help_words(text):
    assert classify_inbound(text) is Keyword.HELP


@pytest.mark.parametrize(
    "text",
    ["", "   ", "Can I book for 3pm?", "Cancel my appointment tomorrow", "Don't stop", "yes please call me", "stopp"],
)
def test_other_messages(text):
    assert classify_inbound(text) is Keyword.OTHER


def test_a_pbx_clock_ahead_of_ours_does_not_postpone_the_text() -> None:
    business = Business(name="Glow Salon", numbers=("+15550001000",), text_back=TextBack(gateway="smsc"))
    now = 1_800_000_000.0
    call = CallRecord(
        linkedid="x", business="Glow Salon", did="+15550001000", caller="+15557654321", caller_raw="15557654321",
        caller_name=None, outcome=Outcome.NO_ANSWER, answered_by=None, started_at=now + 290, ring_at=now + 290,
        answered_at=None, ended_at=now + 300, hangup_cause=16,
    )  # fmt: skip
    decision = decide(call, business, PolicyFacts(), now)
    assert decision.send and decision.send_at == now


# -- caller ID that is no phone number ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller_raw", "reason"),
    [
        ("101", "internal_extension"),
        ("123456", "internal_extension"),  # six digits: still an extension
        ("1234567", "invalid_number"),  # seven: no extension, and no phone number either
        ("abc", "invalid_number"),  # short, but no digits at all
        ("10a", "invalid_number"),
    ],
)
def test_short_caller_ids_are_extensions_only_when_all_digits(caller_raw, reason):
    assert refused(decide_now(missed_call(caller=None, caller_raw=caller_raw))) == reason


# -- ring time ---------------------------------------------------------------------------------------------------------


def test_a_caller_who_hangs_up_as_it_starts_ringing_rang_too_briefly():
    business = salon(min_ring_s=1.0)
    assert refused(decide_now(missed_call(outcome=Outcome.ABANDONED, ring_s=0.0), business)) == "rang_too_briefly"


def test_a_call_that_never_rang_is_timed_from_its_start():
    never_rang = missed_call(outcome=Outcome.ABANDONED, ring_s=None)  # hung up 2 s after the call started
    assert never_rang.ring_at is None
    assert refused(decide_now(never_rang, salon(min_ring_s=3.0))) == "rang_too_briefly"
    assert decide_now(never_rang, salon(min_ring_s=1.5)).send


# -- the sender --------------------------------------------------------------------------------------------------------


def test_a_call_to_a_number_the_business_does_not_list_is_answered_from_its_first_number():
    decision = decide_now(missed_call(did="+15550009999"))
    assert (decision.send, decision.sender) == (True, "+15550001000")


def test_a_business_without_numbers_answers_from_the_number_dialled():
    business = dataclasses.replace(SALON, numbers=())
    assert decide_now(missed_call(did="+15550009999"), business).sender == "+15550009999"


# -- click tracking ----------------------------------------------------------------------------------------------------

PUBLIC_URL = "https://pbx.example/"  # with a trailing slash, as people write it


def tracked(**changes: object) -> Business:
    return salon(track_clicks=True, **changes)


def test_a_tracked_booking_link_points_at_the_redirect_and_names_its_target():
    call = missed_call()
    decision = decide(call, tracked(), NO_FACTS, call.ended_at, public_url=PUBLIC_URL, link_token="Tk4x")
    assert decision == Decision(
        send=True,
        reason=Reason.SEND,
        send_at=call.ended_at,
        text="Hi Jane Doe, Glow Salon missed your call at 2:00 PM. Book: https://pbx.example/r/Tk4x "
        "Reply STOP to opt out.",
        sender="+15550001003",
        gateway="smsc",
        to=CALLER,
        link_token="Tk4x",
        link_url="https://glow.example/book",
    )


@pytest.mark.parametrize(
    ("public_url", "link"),
    [
        ("https://pbx.example", "https://pbx.example/r/Tk4x"),
        ("https://example.com/CBX/", "https://example.com/CBX/r/Tk4x"),  # the dashboard under a path
        ("https://example.com/CBX", "https://example.com/CBX/r/Tk4x"),
    ],
)
def test_the_tracked_link_is_the_public_url_with_one_slash_before_r(public_url, link):
    call = missed_call()
    decision = decide(call, tracked(), NO_FACTS, call.ended_at, public_url=public_url, link_token="Tk4x")
    assert f"Book: {link} Reply STOP" in decision.text


@pytest.mark.parametrize(
    ("business", "public_url", "link_token"),
    [
        (salon(), PUBLIC_URL, "Tk4x"),  # the business does not track clicks
        (tracked(), "", "Tk4x"),  # no public URL configured
        (tracked(), PUBLIC_URL, ""),  # no token made
        (dataclasses.replace(tracked(), booking_url=""), PUBLIC_URL, "Tk4x"),  # nothing to redirect to
    ],
    ids=["not-tracked", "no-public-url", "no-token", "no-booking-url"],
)
def test_without_everything_click_tracking_needs_the_text_carries_the_plain_link(business, public_url, link_token):
    call = missed_call()
    decision = decide(call, business, NO_FACTS, call.ended_at, public_url=public_url, link_token=link_token)
    assert decision.send and "/r/" not in decision.text
    assert f"Book: {business.booking_url} Reply STOP" in decision.text
    assert (decision.link_token, decision.link_url) == ("", "")


def test_click_tracking_is_off_unless_the_caller_passes_a_public_url_and_a_token():
    call = missed_call()
    for extra in ({}, {"link_token": "Tk4x"}, {"public_url": PUBLIC_URL}):
        decision = decide(call, tracked(), NO_FACTS, call.ended_at, **extra)
        assert "Book: https://glow.example/book " in decision.text and decision.link_token == ""


def test_a_template_without_the_booking_link_uses_no_token():
    call = missed_call()
    business = tracked(template="Hi {caller_name}, {business} will call you back.")
    decision = decide(call, business, NO_FACTS, call.ended_at, public_url=PUBLIC_URL, link_token="Tk4x")
    assert decision.text == "Hi Jane Doe, Glow Salon will call you back."
    assert (decision.link_token, decision.link_url) == ("", "")


def test_the_after_hours_template_decides_whether_a_token_is_used():
    saturday = missed_call(started_at=at(2026, 11, 21, 11, 0))
    business = tracked(after_hours_template="{business} is closed now, we will call you back.")
    decision = decide(saturday, business, NO_FACTS, saturday.ended_at, public_url=PUBLIC_URL, link_token="Tk4x")
    assert decision.text == "Glow Salon is closed now, we will call you back." and decision.link_token == ""


def test_a_missed_call_found_in_cel_is_texted_only_while_it_still_helps() -> None:
    """Found in Asterisk's records after the service was away: texted within the configured age, stored after."""
    call = dataclasses.replace(missed_call(), from_cel=True)
    fresh = decide(call, SALON, NO_FACTS, call.ended_at + 29 * 60, found_late_s=30 * 60)
    late = decide(call, SALON, NO_FACTS, call.ended_at + 31 * 60, found_late_s=30 * 60)
    assert fresh.send and fresh.reason is Reason.SEND
    assert (late.send, late.reason) == (False, Reason.FOUND_LATE)
    # a call the AMI link saw is never "found late", however long it waited to be stored (a database outage)
    seen = decide(missed_call(), SALON, NO_FACTS, call.ended_at + 3 * 3600, found_late_s=30 * 60)
    assert seen.send
