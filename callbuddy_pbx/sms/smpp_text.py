"""What a text looks like on the SMPP wire: GSM-7 or UCS-2 parts with a concatenation header, and back again.

The layout is smpplib.gsm.make_parts' (unpacked GSM-7 or UTF-16BE, a 6-byte UDH `05 00 03 ref count number`,
esm_class 0x40, 153 or 134 bytes of text per part), but make_parts itself is not used, for three defects seen here:
- its GSM table maps a backtick to 0x5F, which phones show as '§', and lacks '§' and form feed (sent as UCS-2);
- it cuts every 153 bytes, which can split an escape pair ('€', '{', ...) across two parts (its own FIXME);
- it cuts UCS-2 every 134 bytes, which can split a surrogate pair (most emoji) across two parts.
So the GSM 03.38 table below encodes, and long texts are cut on character edges, as sms.text.segments() counts them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass

from smpplib import consts as smpp_consts  # type: ignore[import-untyped]

GSM7 = int(smpp_consts.SMPP_ENCODING_DEFAULT)  # data_coding 0: SMSC default alphabet, taken as GSM 03.38 (unpacked)
ASCII = int(smpp_consts.SMPP_ENCODING_IA5)
LATIN1 = int(smpp_consts.SMPP_ENCODING_ISO88591)
UCS2 = int(smpp_consts.SMPP_ENCODING_ISO10646)
UDHI = int(smpp_consts.SMPP_GSMFEAT_UDHI)  # esm_class bit: short_message starts with a user data header
SINGLE_BYTES = {GSM7: int(smpp_consts.SEVENBIT_LENGTH), UCS2: int(smpp_consts.UCS2_LENGTH)}  # 160 septets, 140 bytes
PART_BYTES = {GSM7: int(smpp_consts.SEVENBIT_PART_SIZE), UCS2: int(smpp_consts.UCS2_PART_SIZE)}  # 153, 134
ESCAPE = 0x1B
MAX_PARTS = 255  # the concatenation header counts parts in one byte

# GSM 03.38 basic table (16 characters a row) and extension table (after ESC), for decoding.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_GSM7_CODES = {char: code for code, char in enumerate(GSM7_BASIC) if code != ESCAPE} | {
    char: 0x80 | code for code, char in GSM7_EXTENSION.items()
}
_CODECS = {ASCII: "ascii", LATIN1: "latin-1", 0x02: "latin-1", 0x04: "latin-1", 0x06: "iso8859-5", 0x07: "iso8859-8"}
_references = itertools.count(random.randrange(256))  # concatenation reference: consecutive texts get different ones


class TextTooLong(ValueError):
    """More parts than one concatenated SMS can have."""


@dataclass(frozen=True, slots=True)
class EncodedText:
    parts: tuple[bytes, ...]  # the short_message of each submit_sm, user data header included
    data_coding: int
    esm_class: int


def encode_text(text: str) -> EncodedText:
    """The submit_sm payloads of a text: one part when it fits, else concatenated parts with a 6-byte UDH each."""
    payload = encode_gsm7(text)
    coding, unit = (GSM7, _gsm7_unit) if payload is not None else (UCS2, _ucs2_unit)
    if payload is None:
        payload = text.encode("utf-16-be")
    if len(payload) <= SINGLE_BYTES[coding]:
        return EncodedText((payload,), coding, 0)
    chunks = _split(payload, PART_BYTES[coding], unit)
    if len(chunks) > MAX_PARTS:
        raise TextTooLong(f"{len(text)} characters need {len(chunks)} parts (at most {MAX_PARTS})")
    header = bytes((0x05, 0x00, 0x03, next(_references) % 256, len(chunks)))
    return EncodedText(tuple(header + bytes((number,)) + chunk for number, chunk in enumerate(chunks, 1)), coding, UDHI)


def encode_gsm7(text: str) -> bytes | None:
    """Unpacked GSM 03.38 septets (extension characters as ESC + code); None when a character is not in it."""
    out = bytearray()
    for char in text:
        code = _GSM7_CODES.get(char)
        if code is None:
            return None
        if code > 0x7F:
            out.append(ESCAPE)
        out.append(code & 0x7F)
    return bytes(out)


def _gsm7_unit(payload: bytes, at: int) -> int:
    return 2 if payload[at] == ESCAPE and at + 1 < len(payload) else 1


def _ucs2_unit(payload: bytes, at: int) -> int:
    high_surrogate = 0xD8 <= payload[at] <= 0xDB
    return 4 if high_surrogate and at + 3 < len(payload) else 2


def _split(payload: bytes, size: int, unit: Callable[[bytes, int], int]) -> list[bytes]:
    """Cut payload into chunks of at most `size` bytes, never inside a character (escape or surrogate pair)."""
    chunks: list[bytes] = []
    start = at = 0
    while at < len(payload):
        width = unit(payload, at)
        if at + width - start > size:
            chunks.append(payload[start:at])
            start = at
        at += width
    chunks.append(payload[start:])
    return chunks


def decode_gsm7(data: bytes) -> str:
    """Unpacked GSM 03.38 septets to text; an unknown escape shows as a space, a trailing ESC is dropped."""
    out: list[str] = []
    escaped = False
    for byte in data:
        if escaped:
            out.append(GSM7_EXTENSION.get(byte, " "))
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        else:
            out.append(GSM7_BASIC[byte & 0x7F])
    return "".join(out)


def strip_udh(data: bytes) -> bytes:
    """The user data after a user data header (first byte: the header's length)."""
    return data[1 + data[0] :] if data else data


def decode_text(data: bytes, data_coding: int, *, has_udh: bool = False) -> str:
    """A short_message (or message_payload) as text, per data_coding; never raises on odd input."""
    if has_udh:
        data = strip_udh(data)
    alphabet = _alphabet(data_coding)
    if alphabet == UCS2:
        return data[: len(data) // 2 * 2].decode("utf-16-be", errors="replace")
    if alphabet == GSM7:
        # Bytes above 0x7F are no unpacked septets: some SMSCs mean Latin-1 by their "default alphabet".
        return decode_gsm7(data) if all(byte < 0x80 for byte in data) else data.decode("latin-1")
    return data.decode(_CODECS.get(alphabet, "latin-1"), errors="replace")


def _alphabet(data_coding: int) -> int:
    """SMPP's own data_coding values, and the GSM 03.38 coding groups SMSCs pass through from handsets."""
    if data_coding < 0x10:
        return data_coding
    if data_coding & 0xC0 == 0x00:  # general data coding: bits 3-2 pick the alphabet
        return {0: GSM7, 1: LATIN1, 2: UCS2}.get((data_coding >> 2) & 0x03, LATIN1)
    if data_coding & 0xF0 == 0xF0:  # data coding / message class: bit 2 is 8-bit data
        return LATIN1 if data_coding & 0x04 else GSM7
    if data_coding & 0xF0 == 0xE0:  # message waiting, UCS-2 text
        return UCS2
    return GSM7
