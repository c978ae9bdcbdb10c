"""What a caller reads and what each text costs: templates, caller names, GSM-7 / UCS-2 and segment counts."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from callbuddy_pbx.message_text import (
    GSM_BASIC,
    GSM_EXTENSION,
    TemplateError,
    clean_caller_name,
    encoding_of,
    fields_of,
    length_in_units,
    non_gsm_characters,
    render,
    segments,
    template_problem,
)

NY = ZoneInfo("America/New_York")
WHEN = datetime(2025, 11, 21, 15, 5, tzinfo=NY)


def hello(name: str | None, when: datetime = WHEN, template: str = "Hi {caller_name}!") -> str:
    return render(template, business="Glow Salon", booking_url="https://glow.example/b", caller_name=name, when=when)


# -- render ----------------------------------------------------------------------------------------------------------


def test_render_fills_every_field():
    text = render(
        "{business}: sorry we missed you, {caller_name}, on {date} at {time}. Book: {booking_url}",
        business="Glow Salon",
        booking_url="https://glow.example/b",
        caller_name="Jane Doe",
        when=WHEN,
    )
    assert text == "Glow Salon: sorry we missed you, Jane Doe, on Nov 21 at 3:05 PM. Book: https://glow.example/b"


def test_date_and_time_are_shown_in_the_zone_given():
    utc = datetime(2025, 11, 21, 4, 30, tzinfo=UTC)  # 11:30 PM the day before in New York
    assert hello(None, utc.astimezone(NY), "{date} {time}") == "Nov 20 11:30 PM"
    assert hello(None, utc, "{date} {time}") == "Nov 21 4:30 AM"


@pytest.mark.parametrize(
    ("hour", "minute", "shown"),
    [(0, 0, "12:00 AM"), (0, 7, "12:07 AM"), (9, 5, "9:05 AM"), (12, 0, "12:00 PM"), (23, 59, "11:59 PM")],
)
def test_time_format(hour, minute, shown):
    assert hello(None, datetime(2026, 1, 2, hour, minute, tzinfo=NY), "{time}") == shown


def test_literal_braces_and_repeated_fields():
    assert hello("Ann", template="{{{caller_name}}} {caller_name}") == "{Ann} Ann"


def test_a_caller_name_cannot_inject_template_fields():
    assert hello("{business} {booking_url}") == "Hi {business} {booking_url}!"


def test_render_rejects_unknown_fields():
    with pytest.raises(TemplateError):
        hello("Ann", template="Hi {name}")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (None, "there"),
        ("", "there"),
        ("   ", "there"),
        ("WIRELESS CALLER", "there"),
        ("CELL PHONE   MA", "there"),
        ("Anonymous", "there"),
        ("+15557654321", "there"),  # networks often put the number in the name field
        ("JANE DOE", "Jane Doe"),  # CNAM's capitals are not shouted at the caller
        ("Jane\r\nReply YES to win", "Jane Reply YES to win"),  # no line breaks smuggled into the text
        ("Ja\x00ne\x1b[31m", "Ja ne [31m"),  # control characters become spaces
        ("\u202eenaJ", "enaJ"),  # a bidi override cannot reverse the rest of the text
        ("Jane\u200b\u200bDoe", "Jane Doe"),  # zero-width characters
        ("  Jane \t  Doe  ", "Jane Doe"),
        ("Zoë", "Zoë"),
    ],
)
def test_hostile_and_useless_caller_names(raw, shown):
    assert clean_caller_name(raw) == shown
    assert hello(raw) == f"Hi {shown}!"


def test_long_caller_names_are_cut_at_a_word_within_40_characters():
    name = clean_caller_name("Maria Fernanda de los Santos Gonzalez Rodriguez")
    assert name == "Maria Fernanda de los Santos Gonzalez"
    assert len(clean_caller_name("x" * 10_000)) == 40
    assert len(clean_caller_name(" ".join(["Bob"] * 100))) <= 40


def test_fields_of_and_template_problem():
    assert fields_of("{business} {time} {business}") == ("business", "time")
    assert template_problem("Hi {business}") is None
    assert template_problem("Hi {nme}") == (
        "unknown field {nme} (allowed: {business} {booking_url} {caller_name} {date} {time})"
    )
    assert template_problem("Hi {business") == "unbalanced '{' at character 4 (write '{{' for a literal brace)"
    assert template_problem("{a{b}}") is not None


# -- encoding and segments ---------------------------------------------------------------------------------------------


def test_gsm_tables_are_the_real_ones():
    assert len(GSM_BASIC) == 127  # 128 codes, one of which is the escape to the extension table
    assert set("\f^{}\\[~]|€") == GSM_EXTENSION
    for char in "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r":
        assert char in GSM_BASIC
    for char in "çÈ`áíóúâ’“”–—…":
        assert char not in GSM_BASIC | GSM_EXTENSION


def test_exactly_160_gsm_characters_are_one_segment_161_are_two():
    assert (encoding_of("a" * 160), segments("a" * 160)) == ("GSM-7", 1)
    assert segments("a" * 161) == 2
    assert segments("a" * 306) == 2  # 2 x 153
    assert segments("a" * 307) == 3


def test_euro_and_other_extension_characters_count_two_septets():
    assert encoding_of("€") == "GSM-7"
    assert segments("€" * 80) == 1  # 160 septets
    assert segments("€" + "a" * 159) == 2  # 161 septets
    assert segments("a" * 158 + "[") == 1


def test_an_escape_sequence_is_never_split_between_parts():
    # 152 septets then '€': 154 would not fit in the first part's 153, so '€' starts the second part.
    assert segments("a" * 152 + "€" + "a" * 152) == 3
    assert segments("a" * 151 + "€" + "a" * 153) == 2


def test_one_emoji_makes_the_text_ucs2():
    text = "Thanks for calling 😊"
    assert encoding_of(text) == "UCS-2"
    assert non_gsm_characters(text) == ["😊"]


def test_ucs2_limits_70_and_67():
    assert segments("ç" * 70) == 1
    assert segments("ç" * 71) == 2
    assert segments("ç" * 134) == 2
    assert segments("ç" * 135) == 3


def test_characters_outside_the_bmp_count_two_code_units():
    assert segments("😊" * 35) == 1  # 70 code units
    assert segments("😊" * 35 + "a") == 2
    assert segments("😊" * 67) == 3  # 33 pairs per part: a pair is never split
    assert segments("a" * 69 + "😊") == 2  # 71 code units


def test_one_curly_quote_turns_a_long_text_into_more_segments():
    plain = "We're closed. " * 10  # 140 characters
    curly = plain.replace("'", "’", 1)
    assert (encoding_of(plain), segments(plain)) == ("GSM-7", 1)
    assert (encoding_of(curly), segments(curly)) == ("UCS-2", 3)
    assert non_gsm_characters(curly) == ["’"]


def test_non_gsm_characters_are_listed_once_in_order():
    assert non_gsm_characters("ç–ç’ a€") == ["ç", "–", "’"]
    assert non_gsm_characters("Hello {world} €5 @ 10%") == []


def test_empty_text_is_one_message():
    assert (encoding_of(""), segments("")) == ("GSM-7", 1)


# -- what a configuration's author reads when a template is wrong ------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("   ", "expected the text of the message, got an empty string"),
        ("Hi }", "unbalanced '}' at character 4 (write '}}' for a literal brace)"),
        ("Hi {business}} there", "unbalanced '}' at character 14 (write '}}' for a literal brace)"),
        ("Hi {busi{ness} at {time}", "unbalanced '{' at character 4 (write '{{' for a literal brace)"),
        ("Hi {} there", "{} is not a field name (fields are written like {business})"),
        ("Hi {Business}", "{Business} is not a field name (fields are written like {business})"),
    ],
)
def test_a_broken_template_is_reported_with_what_and_where(template, problem):
    assert template_problem(template) == problem


def test_render_names_the_unknown_field():
    with pytest.raises(TemplateError, match=r"^unknown field \{name\}$"):
        hello("Ann", template="Hi {name}")


def test_doubled_letters_and_symbols_are_kept_as_written():
    # Only '{{' and '}}' are escapes: any other character written twice stays twice.
    doubled = "".join(char * 2 for char in map(chr, range(0x20, 0x7F)) if char not in "{}")
    assert hello(None, template=doubled) == doubled
    assert hello("Ann", template="Hugs XX, {caller_name}!! See you at 10:00") == "Hugs XX, Ann!! See you at 10:00"


# -- caller names: capitals and the 40-character cut -------------------------------------------------------------------


def test_a_two_letter_name_in_capitals_is_put_in_title_case():
    assert clean_caller_name("AL") == "Al"
    assert clean_caller_name("J") == "J"  # a single initial stays as it is


# Words of known lengths, so each expected name below is written by hand from the rule: cut at the last space within
# the first 41 characters when that keeps at least 20 characters, else cut at 40.
def word(length: int, letter: str = "a") -> str:
    return letter.upper() + letter * (length - 1)


def test_a_name_of_exactly_40_characters_is_kept_whole():
    name = f"{word(30)} {word(9, 'b')}"
    assert len(name) == 40
    assert clean_caller_name(name) == name


def test_a_word_ending_at_character_40_is_kept():
    kept = f"{word(30)} {word(9, 'b')}"  # 40 characters, then a space
    assert clean_caller_name(f"{kept} {word(5, 'c')}") == kept


def test_a_word_ending_at_character_41_is_dropped():
    assert clean_caller_name(f"{word(25)} {word(15, 'b')} {word(5, 'c')}") == word(25)


def test_a_cut_keeping_exactly_20_characters_is_at_the_word():
    assert clean_caller_name(f"{word(20)} {word(30, 'b')}") == word(20)


def test_a_cut_that_would_keep_fewer_than_20_characters_is_at_40_instead():
    assert clean_caller_name(f"{word(15)} {word(30, 'b')}") == f"{word(15)} {word(30, 'b')[:24]}"
    assert clean_caller_name(f"{word(19)} {word(30, 'b')}") == f"{word(19)} {word(30, 'b')[:20]}"


def test_a_first_word_longer_than_40_characters_is_cut_at_40():
    assert clean_caller_name(f"{word(41)} {word(5, 'b')}") == word(41)[:40]
    assert clean_caller_name(f"{word(45)} {word(5, 'b')}") == word(45)[:40]


# -- length in units, judged by the spec and by Python's UTF-16 codec --------------------------------------------------

SPEC_EXTENSION = "\f^{}\\[~]|€"  # 3GPP TS 23.038 §6.2.1.1: sent as escape + code, two septets each


@pytest.mark.parametrize(
    "text",
    ["", "Hello", "a" * 160, "€", SPEC_EXTENSION, "Price: 10€ [incl. VAT] ~ {approx}", "Åse & Søren, Ñoño @ 5$ ¿Qué?"],
)
def test_gsm7_length_is_septets_with_extension_characters_counting_two(text):
    assert encoding_of(text) == "GSM-7"
    assert length_in_units(text) == len(text) + sum(text.count(char) for char in SPEC_EXTENSION)


@pytest.mark.parametrize(
    "text",
    ["ç", "Thanks 😊", "\ufffd", "\uffff", "\U00010000", "日本語のテキスト", "😊" * 35, "a€ç😊\U0010ffff"],
)
def test_ucs2_length_is_utf16_code_units(text):
    assert encoding_of(text) == "UCS-2"
    assert length_in_units(text) == len(text.encode("utf-16-le")) // 2


def test_the_last_bmp_character_is_one_unit_and_the_first_beyond_it_two():
    assert segments("\uffff" * 70) == 1  # U+FFFF: one UTF-16 unit
    assert segments("\U00010000" * 35) == 1  # U+10000: a surrogate pair, 70 units
    assert segments("\U00010000" * 36) == 2
