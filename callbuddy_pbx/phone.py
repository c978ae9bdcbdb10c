"""Phone numbers: E.164 normalisation with `phonenumbers`, and masking for logs (numbers are personal data)."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

# What callers' networks put in CallerIDNum when the number is withheld.
_WITHHELD = frozenset({"", "anonymous", "unknown", "<unknown>", "restricted", "private", "unavailable", "withheld"})
MAX_NUMBER_CHARS = 64


def is_withheld(raw: str | None) -> bool:
    return raw is None or raw.strip().lower() in _WITHHELD


@lru_cache(maxsize=8192)  # a business's DIDs and its regular callers come back all day; parsing is the costly part
def to_e164(raw: str | None, region: str) -> str | None:
    """E.164 form of a dialable number, or None when it is withheld, too short to be public, or not a number.

    Trunks send national formats, `00`/`011` international prefixes, or digits without `+`; phonenumbers knows the
    rules per region. A bare number that only becomes valid with a leading `+` (e.g. 15557654321 seen from a
    non-NANP region) is tried that way too. Only "possible" is required, not "valid": fictional 555 numbers
    and freshly allocated ranges must still work.
    """
    if is_withheld(raw):
        return None
    assert raw is not None
    text = raw.strip()[:MAX_NUMBER_CHARS]
    if sum(ch.isdigit() for ch in text) < 7:  # internal extensions and short codes are not textable numbers
        return None
    candidates = [text] if text.startswith("+") else [text, "+" + text.lstrip("0")]
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return None


def mask(number: str | None) -> str:
    """Mask a number for logs: keep the country prefix and the last two digits (`+1555*****21`)."""
    if not number:
        return "<none>"
    text = str(number)[:MAX_NUMBER_CHARS]
    if len(text) <= 4:
        return "*" * len(text)
    keep_head = 4 if text.startswith("+") else 2
    return text[:keep_head] + "*" * (len(text) - keep_head - 2) + text[-2:]


_DIGIT_RUN = re.compile(r"\+?\d{6,}")


def redact(text: str) -> str:
    """Mask every phone-number-like run of digits in free text (a malformed AMI line quoted in a log)."""
    return _DIGIT_RUN.sub(lambda m: mask(m.group(0)), text)
