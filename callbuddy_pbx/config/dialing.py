"""Numbering plans: what a desk phone may dial out, per region, as data the dialplan is rendered from.

A plan lists its emergency numbers (dialled as they are, always allowed) and its dialling rules: an Asterisk
extension pattern, the kind of call it is (national, international, premium) and how the dialled digits become
E.164 (drop `strip` leading characters, put `prefix` in front). Adding a country is one more entry in `PLANS`.
A business's plan comes from its `default_region`; a region without an entry has no plan (the PBX reader says so).

Patterns of one plan may overlap: Asterisk takes the most specific one (a literal digit beats N or X), so
`_1900NXXXXXX` (premium) wins over `_1NXXNXXXXXX` (national) for 1-900 numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

NATIONAL, INTERNATIONAL, PREMIUM = "national", "international", "premium"
CALL_KINDS: tuple[str, ...] = (NATIONAL, INTERNATIONAL, PREMIUM)


@dataclass(frozen=True, slots=True)
class DialRule:
    pattern: str  # Asterisk extension pattern, e.g. "_1NXXNXXXXXX"
    kind: str  # NATIONAL | INTERNATIONAL | PREMIUM
    strip: int  # leading characters of the dialled number dropped ...
    prefix: str  # ... and replaced by this, giving E.164 ("+1" + "2125551234")

    def e164(self, dialled: str) -> str:
        return self.prefix + dialled[self.strip :]


@dataclass(frozen=True, slots=True)
class NumberingPlan:
    name: str  # "NANP"
    emergency: tuple[str, ...]  # dialled as is, with no prefix, from every phone
    rules: tuple[DialRule, ...]
    note: str = ""  # what the plan leaves out, said in `check`


def _nanp() -> NumberingPlan:
    """North America: 10 or 11 digits (or +1...); 011 or + abroad; 1-900, 1-976 and local 976 exchanges premium.
    933 is the carriers' test number: it reads back the caller ID and the address the carrier holds for it."""
    national = [("_NXXNXXXXXX", 0, "+1"), ("_1NXXNXXXXXX", 1, "+1"), ("_+1NXXNXXXXXX", 0, "")]
    premium = [
        ("_900NXXXXXX", 0, "+1"),
        ("_1900NXXXXXX", 1, "+1"),
        ("_+1900NXXXXXX", 0, ""),
        ("_976NXXXXXX", 0, "+1"),
        ("_1976NXXXXXX", 1, "+1"),
        ("_+1976NXXXXXX", 0, ""),
        ("_NXX976XXXX", 0, "+1"),
        ("_1NXX976XXXX", 1, "+1"),
        ("_+1NXX976XXXX", 0, ""),
    ]
    rules = [
        *(DialRule(pattern, NATIONAL, strip, prefix) for pattern, strip, prefix in national),
        *(DialRule(pattern, PREMIUM, strip, prefix) for pattern, strip, prefix in premium),
        DialRule("_011X.", INTERNATIONAL, 3, "+"),
        DialRule("_+X.", INTERNATIONAL, 0, ""),
    ]
    note = "Caribbean +1 area codes (876, 809, ...) are dialled like national numbers and not refused"
    return NumberingPlan("NANP", ("911", "933"), tuple(rules), note)


def _gb() -> NumberingPlan:
    """United Kingdom: 0 and 9 or 10 digits (or +44...); 00 or + abroad; 09 premium rate. 999 and 112 both work."""
    rules = (
        DialRule("_0ZXXXXXXXX", NATIONAL, 1, "+44"),
        DialRule("_0ZXXXXXXXXX", NATIONAL, 1, "+44"),
        DialRule("_+44ZXXXXXXXX", NATIONAL, 0, ""),
        DialRule("_+44ZXXXXXXXXX", NATIONAL, 0, ""),
        DialRule("_09XXXXXXXXX", PREMIUM, 1, "+44"),
        DialRule("_+449XXXXXXXXX", PREMIUM, 0, ""),
        DialRule("_00X.", INTERNATIONAL, 2, "+"),
        DialRule("_+X.", INTERNATIONAL, 0, ""),
    )
    return NumberingPlan("GB", ("999", "112"), rules, "118 directory numbers are not dialled")


def _eu(country_code: str) -> NumberingPlan:
    """A European country whose national dialling this table does not know: 112, its own numbers as +<code>...,
    00 or + abroad. National formats (a trunk prefix 0 or none) and premium ranges differ per country: not listed."""
    rules = (
        DialRule(f"_+{country_code}X.", NATIONAL, 0, ""),
        DialRule("_00X.", INTERNATIONAL, 2, "+"),
        DialRule("_+X.", INTERNATIONAL, 0, ""),
    )
    note = f"national numbers only as +{country_code}...; premium ranges are not refused"
    return NumberingPlan(f"EU (+{country_code})", ("112",), rules, note)


_NANP = _nanp()
_EU_COUNTRY_CODES = {"DE": "49", "FR": "33", "ES": "34", "IT": "39", "NL": "31", "BE": "32", "AT": "43", "PT": "351"}
PLANS: dict[str, NumberingPlan] = {
    **{region: _NANP for region in ("US", "CA", "PR")},
    "GB": _gb(),
    **{region: _eu(code) for region, code in _EU_COUNTRY_CODES.items()},
}


def plan_for(region: str) -> NumberingPlan | None:
    return PLANS.get(region.upper())
