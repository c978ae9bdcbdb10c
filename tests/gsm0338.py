"""The GSM 7-bit default alphabet as 3GPP TS 23.038 writes it: the tests' oracle for bytes on the SMPP wire.

Typed by hand from the standard's tables, one entry per code, each character by its Unicode name so that look-alikes
(Greek capital delta and the increment sign, omega and the ohm sign) cannot be confused. Never built from the
project's tables: an encoder and a decoder that are wrong together still disagree with this.
"""

from __future__ import annotations

ESCAPE = 0x1B  # §6.2.1: escape to the extension table (§6.2.1.1); not a character

# §6.2.1: the default alphabet, codes 0x00..0x7F (0x1B is ESCAPE above).
DEFAULT_ALPHABET: dict[int, str] = {
    0x00: "\N{COMMERCIAL AT}",
    0x01: "\N{POUND SIGN}",
    0x02: "\N{DOLLAR SIGN}",
    0x03: "\N{YEN SIGN}",
    0x04: "\N{LATIN SMALL LETTER E WITH GRAVE}",
    0x05: "\N{LATIN SMALL LETTER E WITH ACUTE}",
    0x06: "\N{LATIN SMALL LETTER U WITH GRAVE}",
    0x07: "\N{LATIN SMALL LETTER I WITH GRAVE}",
    0x08: "\N{LATIN SMALL LETTER O WITH GRAVE}",
    0x09: "\N{LATIN CAPITAL LETTER C WITH CEDILLA}",
    0x0A: "\N{LINE FEED}",
    0x0B: "\N{LATIN CAPITAL LETTER O WITH STROKE}",
    0x0C: "\N{LATIN SMALL LETTER O WITH STROKE}",
    0x0D: "\N{CARRIAGE RETURN}",
    0x0E: "\N{LATIN CAPITAL LETTER A WITH RING ABOVE}",
    0x0F: "\N{LATIN SMALL LETTER A WITH RING ABOVE}",
    0x10: "\N{GREEK CAPITAL LETTER DELTA}",
    0x11: "\N{LOW LINE}",
    0x12: "\N{GREEK CAPITAL LETTER PHI}",
    0x13: "\N{GREEK CAPITAL LETTER GAMMA}",
    0x14: "\N{GREEK CAPITAL LETTER LAMDA}",
    0x15: "\N{GREEK CAPITAL LETTER OMEGA}",
    0x16: "\N{GREEK CAPITAL LETTER PI}",
    0x17: "\N{GREEK CAPITAL LETTER PSI}",
    0x18: "\N{GREEK CAPITAL LETTER SIGMA}",
    0x19: "\N{GREEK CAPITAL LETTER THETA}",
    0x1A: "\N{GREEK CAPITAL LETTER XI}",
    # 0x1B: ESCAPE
    0x1C: "\N{LATIN CAPITAL LETTER AE}",
    0x1D: "\N{LATIN SMALL LETTER AE}",
    0x1E: "\N{LATIN SMALL LETTER SHARP S}",
    0x1F: "\N{LATIN CAPITAL LETTER E WITH ACUTE}",
    0x20: "\N{SPACE}",
    0x21: "\N{EXCLAMATION MARK}",
    0x22: "\N{QUOTATION MARK}",
    0x23: "\N{NUMBER SIGN}",
    0x24: "\N{CURRENCY SIGN}",
    0x25: "\N{PERCENT SIGN}",
    0x26: "\N{AMPERSAND}",
    0x27: "\N{APOSTROPHE}",
    0x28: "\N{LEFT PARENTHESIS}",
    0x29: "\N{RIGHT PARENTHESIS}",
    0x2A: "\N{ASTERISK}",
    0x2B: "\N{PLUS SIGN}",
    0x2C: "\N{COMMA}",
    0x2D: "\N{HYPHEN-MINUS}",
    0x2E: "\N{FULL STOP}",
    0x2F: "\N{SOLIDUS}",
    0x30: "\N{DIGIT ZERO}",
    0x31: "\N{DIGIT ONE}",
    0x32: "\N{DIGIT TWO}",
    0x33: "\N{DIGIT THREE}",
    0x34: "\N{DIGIT FOUR}",
    0x35: "\N{DIGIT FIVE}",
    0x36: "\N{DIGIT SIX}",
    0x37: "\N{DIGIT SEVEN}",
    0x38: "\N{DIGIT EIGHT}",
    0x39: "\N{DIGIT NINE}",
    0x3A: "\N{COLON}",
    0x3B: "\N{SEMICOLON}",
    0x3C: "\N{LESS-THAN SIGN}",
    0x3D: "\N{EQUALS SIGN}",
    0x3E: "\N{GREATER-THAN SIGN}",
    0x3F: "\N{QUESTION MARK}",
    0x40: "\N{INVERTED EXCLAMATION MARK}",
    0x41: "\N{LATIN CAPITAL LETTER A}",
    0x42: "\N{LATIN CAPITAL LETTER B}",
    0x43: "\N{LATIN CAPITAL LETTER C}",
    0x44: "\N{LATIN CAPITAL LETTER D}",
    0x45: "\N{LATIN CAPITAL LETTER E}",
    0x46: "\N{LATIN CAPITAL LETTER F}",
    0x47: "\N{LATIN CAPITAL LETTER G}",
    0x48: "\N{LATIN CAPITAL LETTER H}",
    0x49: "\N{LATIN CAPITAL LETTER I}",
    0x4A: "\N{LATIN CAPITAL LETTER J}",
    0x4B: "\N{LATIN CAPITAL LETTER K}",
    0x4C: "\N{LATIN CAPITAL LETTER L}",
    0x4D: "\N{LATIN CAPITAL LETTER M}",
    0x4E: "\N{LATIN CAPITAL LETTER N}",
    0x4F: "\N{LATIN CAPITAL LETTER O}",
    0x50: "\N{LATIN CAPITAL LETTER P}",
    0x51: "\N{LATIN CAPITAL LETTER Q}",
    0x52: "\N{LATIN CAPITAL LETTER R}",
    0x53: "\N{LATIN CAPITAL LETTER S}",
    0x54: "\N{LATIN CAPITAL LETTER T}",
    0x55: "\N{LATIN CAPITAL LETTER U}",
    0x56: "\N{LATIN CAPITAL LETTER V}",
    0x57: "\N{LATIN CAPITAL LETTER W}",
    0x58: "\N{LATIN CAPITAL LETTER X}",
    0x59: "\N{LATIN CAPITAL LETTER Y}",
    0x5A: "\N{LATIN CAPITAL LETTER Z}",
    0x5B: "\N{LATIN CAPITAL LETTER A WITH DIAERESIS}",
    0x5C: "\N{LATIN CAPITAL LETTER O WITH DIAERESIS}",
    0x5D: "\N{LATIN CAPITAL LETTER N WITH TILDE}",
    0x5E: "\N{LATIN CAPITAL LETTER U WITH DIAERESIS}",
    0x5F: "\N{SECTION SIGN}",
    0x60: "\N{INVERTED QUESTION MARK}",
    0x61: "\N{LATIN SMALL LETTER A}",
    0x62: "\N{LATIN SMALL LETTER B}",
    0x63: "\N{LATIN SMALL LETTER C}",
    0x64: "\N{LATIN SMALL LETTER D}",
    0x65: "\N{LATIN SMALL LETTER E}",
    0x66: "\N{LATIN SMALL LETTER F}",
    0x67: "\N{LATIN SMALL LETTER G}",
    0x68: "\N{LATIN SMALL LETTER H}",
    0x69: "\N{LATIN SMALL LETTER I}",
    0x6A: "\N{LATIN SMALL LETTER J}",
    0x6B: "\N{LATIN SMALL LETTER K}",
    0x6C: "\N{LATIN SMALL LETTER L}",
    0x6D: "\N{LATIN SMALL LETTER M}",
    0x6E: "\N{LATIN SMALL LETTER N}",
    0x6F: "\N{LATIN SMALL LETTER O}",
    0x70: "\N{LATIN SMALL LETTER P}",
    0x71: "\N{LATIN SMALL LETTER Q}",
    0x72: "\N{LATIN SMALL LETTER R}",
    0x73: "\N{LATIN SMALL LETTER S}",
    0x74: "\N{LATIN SMALL LETTER T}",
    0x75: "\N{LATIN SMALL LETTER U}",
    0x76: "\N{LATIN SMALL LETTER V}",
    0x77: "\N{LATIN SMALL LETTER W}",
    0x78: "\N{LATIN SMALL LETTER X}",
    0x79: "\N{LATIN SMALL LETTER Y}",
    0x7A: "\N{LATIN SMALL LETTER Z}",
    0x7B: "\N{LATIN SMALL LETTER A WITH DIAERESIS}",
    0x7C: "\N{LATIN SMALL LETTER O WITH DIAERESIS}",
    0x7D: "\N{LATIN SMALL LETTER N WITH TILDE}",
    0x7E: "\N{LATIN SMALL LETTER U WITH DIAERESIS}",
    0x7F: "\N{LATIN SMALL LETTER A WITH GRAVE}",
}

# §6.2.1.1: the extension table, each character sent as ESCAPE then its code (two septets).
EXTENSION_TABLE: dict[int, str] = {
    0x0A: "\N{FORM FEED}",
    0x14: "\N{CIRCUMFLEX ACCENT}",
    0x28: "\N{LEFT CURLY BRACKET}",
    0x29: "\N{RIGHT CURLY BRACKET}",
    0x2F: "\N{REVERSE SOLIDUS}",
    0x3C: "\N{LEFT SQUARE BRACKET}",
    0x3D: "\N{TILDE}",
    0x3E: "\N{RIGHT SQUARE BRACKET}",
    0x40: "\N{VERTICAL LINE}",
    0x65: "\N{EURO SIGN}",
}


_SEPTETS = {char: bytes((code,)) for code, char in DEFAULT_ALPHABET.items()} | {
    char: bytes((ESCAPE, code)) for code, char in EXTENSION_TABLE.items()
}


def septets(text: str) -> bytes | None:
    """The text as unpacked septets (one octet each, as SMPP carries data_coding 0); None if it is not GSM-7."""
    try:
        return b"".join(_SEPTETS[char] for char in text)
    except KeyError:
        return None


def text_of(data: bytes) -> str:
    """Unpacked septets back to text; ValueError for anything but whole characters of the two tables (an escape
    pair cut in two, an octet above 0x7F)."""
    out: list[str] = []
    at = 0
    while at < len(data):
        if data[at] == ESCAPE:
            if at + 1 == len(data) or data[at + 1] not in EXTENSION_TABLE:
                raise ValueError(f"escape at octet {at} is not followed by an extension table code")
            out.append(EXTENSION_TABLE[data[at + 1]])
            at += 2
        elif data[at] in DEFAULT_ALPHABET:
            out.append(DEFAULT_ALPHABET[data[at]])
            at += 1
        else:
            raise ValueError(f"octet {at} is 0x{data[at]:02X}, no septet")
    return "".join(out)
