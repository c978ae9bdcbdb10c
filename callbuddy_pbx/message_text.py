"""What a text says and what it costs: templates, the caller's name, GSM-7 / UCS-2 encoding and segment counts.

Templates use `{field}` for a value and `{{` / `}}` for a literal brace; nothing else (no format specs, no
attribute access), so a template from a configuration file cannot reach into Python objects. Values are put in
once: a caller name containing `{business}` stays those characters.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

# Fields of the missed-call templates, and of the replies (HELP, opt-out confirmation) that answer no call.
TEMPLATE_FIELDS: tuple[str, ...] = ("business", "booking_url", "caller_name", "date", "time")
REPLY_FIELDS: tuple[str, ...] = ("business", "booking_url")

CALLER_NAME_MAX = 40  # characters of a caller's name put in a text
NO_NAME = "there"  # the caller's name when the network gave none usable: "Hi there, ..." reads naturally

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1), in code order; 0x1B (escape to the extension table) left out.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}
# Its extension table: each character is sent as escape + code, two septets.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153  # septets in one text / in each part of a concatenated text (7-septet UDH)
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units likewise (6-octet UDH)

_FIELD = re.compile(r"[a-z_]+")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# What networks put in the caller-name (CNAM) field when they know no name: no one is called "Wireless Caller".
_PLACEHOLDER_NAMES = frozenset(
    {
        "anonymous",
        "blocked",
        "caller id blocked",
        "cell phone",
        "name unavailable",
        "no caller id",
        "out of area",
        "private",
        "private caller",
        "private name",
        "private number",
        "restricted",
        "toll free call",
        "unavailable",
        "unknown",
        "unknown caller",
        "unknown name",
        "withheld",
        "wireless caller",
    }
)
_PLACEHOLDER_PREFIXES = ("cell phone ", "wireless caller ")  # CNAM often appends a state: "CELL PHONE   MA"


class TemplateError(ValueError):
    """A template that cannot be rendered; the message says what and where, for the configuration's problems."""


def _parse(template: str) -> list[tuple[str, bool]]:
    """The template as (literal text, False) and (field name, True) pieces; TemplateError when malformed."""
    pieces: list[tuple[str, bool]] = []
    literal: list[str] = []
    index = 0
    while index < len(template):
        char = template[index]
        if char in "{}" and template.startswith(char * 2, index):
            literal.append(char)
            index += 2
            continue
        if char == "}":
            raise TemplateError(f"unbalanced '}}' at character {index + 1} (write '}}}}' for a literal brace)")
        if char == "{":
            end = template.find("}", index + 1)
            opening = template.find("{", index + 1)
            if end < 0 or 0 <= opening < end:
                raise TemplateError(f"unbalanced '{{' at character {index + 1} (write '{{{{' for a literal brace)")
            name = template[index + 1 : end]
            if not _FIELD.fullmatch(name):
                raise TemplateError(f"{{{name}}} is not a field name (fields are written like {{business}})")
            pieces.append(("".join(literal), False))
            literal = []
            pieces.append((name, True))
            index = end + 1
            continue
        literal.append(char)
        index += 1
    pieces.append(("".join(literal), False))
    return [piece for piece in pieces if piece[1] or piece[0]]


def fields_of(template: str) -> tuple[str, ...]:
    """The fields a template uses, in order of first use. TemplateError when it is malformed."""
    seen: dict[str, None] = {}
    for value, is_field in _parse(template):
        if is_field:
            seen.setdefault(value)
    return tuple(seen)


def template_problem(template: str, allowed: Sequence[str] = TEMPLATE_FIELDS) -> str | None:
    """Why a template cannot be used (malformed, unknown field, empty), or None when it is fine."""
    if not template.strip():
        return "expected the text of the message, got an empty string"
    try:
        fields = fields_of(template)
    except TemplateError as exc:
        return str(exc)
    for name in fields:
        if name not in allowed:
            return f"unknown field {{{name}}} (allowed: {' '.join('{' + field + '}' for field in allowed)})"
    return None


def clean_caller_name(raw: str | None) -> str:
    """A caller's name from the phone network, safe and polite to put in a text.

    The name is untrusted and often not a name: control and invisible formatting characters (including bidi
    overrides) become spaces, whitespace runs collapse, and it is cut to 40 characters at a word boundary when it
    can be. Names written all in capitals (CNAM's convention) are put in title case. When nothing usable is left —
    no name, no letters (a number), or a network placeholder such as "WIRELESS CALLER" — the result is "there", so
    "Hi {caller_name}," reads "Hi there,".
    """
    if not raw:
        return NO_NAME
    text = unicodedata.normalize("NFC", raw[: CALLER_NAME_MAX * 8])
    text = "".join(" " if unicodedata.category(char).startswith("C") else char for char in text)
    text = " ".join(text.split())
    if not any(char.isalpha() for char in text):
        return NO_NAME
    folded = text.casefold()
    if folded in _PLACEHOLDER_NAMES or folded.startswith(_PLACEHOLDER_PREFIXES):
        return NO_NAME
    if text.isupper() and sum(char.isalpha() for char in text) > 1:
        text = text.title()
    if len(text) > CALLER_NAME_MAX:
        cut = text[: CALLER_NAME_MAX + 1].rsplit(" ", 1)[0] if " " in text[: CALLER_NAME_MAX + 1] else ""
        text = (cut if len(cut) >= CALLER_NAME_MAX // 2 else text[:CALLER_NAME_MAX]).rstrip()
    return text


def format_date(when: datetime) -> str:
    """'Nov 21' (English month names, whatever the machine's locale)."""
    return f"{_MONTHS[when.month - 1]} {when.day}"


def format_time(when: datetime) -> str:
    """'3:05 PM', '12:00 AM' for midnight."""
    hour = when.hour % 12 or 12
    return f"{hour}:{when.minute:02d} {'AM' if when.hour < 12 else 'PM'}"


def render(template: str, *, business: str, booking_url: str, caller_name: str | None, when: datetime) -> str:
    """The text of a message. `when` is shown as is: pass it in the business's time zone
    (`when.astimezone(ZoneInfo(business.timezone))`). `caller_name` is the raw network name (see clean_caller_name).
    Raises TemplateError for a malformed template or an unknown field (configurations are checked when loaded).
    """
    values = {
        "business": business,
        "booking_url": booking_url,
        "caller_name": clean_caller_name(caller_name),
        "date": format_date(when),
        "time": format_time(when),
    }
    parts: list[str] = []
    for value, is_field in _parse(template):
        if not is_field:
            parts.append(value)
        elif value in values:
            parts.append(values[value])
        else:
            raise TemplateError(f"unknown field {{{value}}}")
    return "".join(parts)


def non_gsm_characters(text: str) -> list[str]:
    """The characters outside the GSM 7-bit alphabet (basic and extension), each once, in order of appearance."""
    seen: dict[str, None] = {}
    for char in text:
        if char not in GSM_BASIC and char not in GSM_EXTENSION:
            seen.setdefault(char)
    return list(seen)


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM alphabet, else UCS-2 (one character is enough)."""
    return "UCS-2" if non_gsm_characters(text) else "GSM-7"


def _units(text: str, encoding: Encoding) -> list[int]:
    """Each character's size: septets for GSM-7 (2 for the extension table), UTF-16 code units for UCS-2."""
    if encoding == "GSM-7":
        return [2 if char in GSM_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def length_in_units(text: str) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) the text takes, in its own encoding."""
    return sum(_units(text, encoding_of(text)))


def segments(text: str) -> int:
    """How many SMS the text is sent as (what a carrier bills). At least 1: an empty text is still one message.

    GSM-7: 160 septets in one, 153 per part; UCS-2: 70 code units in one, 67 per part. A part never splits an
    escape sequence (€, [, ...) or a surrogate pair (most emoji), so a part can hold one unit less than its size.
    """
    encoding = encoding_of(text)
    units = _units(text, encoding)
    single, part = (GSM7_SINGLE, GSM7_PART) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for size in units:
        if used + size > part:
            count, used = count + 1, 0
        used += size
    return count
