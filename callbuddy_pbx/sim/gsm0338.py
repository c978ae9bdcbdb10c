"""The simulated SMSC's own GSM 7-bit default alphabet (3GPP TS 23.038 §6.2.1 and its extension table §6.2.1.1).

The simulator is a peer that must not share the service's tables (sms/smpp_text): an encoder and a decoder wrong
together would read back what they wrote and pass. Septets are unpacked, one octet each, as SMPP carries them.
"""

from __future__ import annotations

ESCAPE = 0x1B
REPLACEMENT = "\N{REPLACEMENT CHARACTER}"  # what is no septet, or an escape with nothing after it (a split part)

# §6.2.1, 16 codes a row; 0x1B is ESCAPE, not a character.
_DEFAULT = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"  # 0x00
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"  # 0x10
    " !\"#\u00a4%&'()*+,-./"  # 0x20
    "0123456789:;<=>?"  # 0x30
    "\u00a1ABCDEFGHIJKLMNO"  # 0x40
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"  # 0x50
    "\u00bfabcdefghijklmno"  # 0x60
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"  # 0x70
)
# §6.2.1.1: ESCAPE then the code.
_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "\u20ac",
}
_CODES = {char: bytes((code,)) for code, char in enumerate(_DEFAULT) if code != ESCAPE} | {
    char: bytes((ESCAPE, code)) for code, char in _EXTENSION.items()
}


def encode(text: str) -> bytes | None:
    """Unpacked septets, or None when a character is not in the alphabet."""
    try:
        return b"".join(_CODES[char] for char in text)
    except KeyError:
        return None


def decode(data: bytes) -> str:
    """Unpacked septets as a phone shows them. Per §6.2.1.1 an escape to a code the extension table lacks shows
    the default alphabet's character, and ESCAPE ESCAPE a space; a byte above 0x7F (no septet) and an escape at
    the very end (an escape pair cut between two parts) show as U+FFFD, so that they stand out."""
    out: list[str] = []
    escaped = False
    for byte in data:
        if byte > 0x7F:
            out.append(REPLACEMENT)
            escaped = False
        elif escaped:
            out.append(" " if byte == ESCAPE else _EXTENSION.get(byte, _DEFAULT[byte]))
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        else:
            out.append(_DEFAULT[byte])
    if escaped:
        out.append(REPLACEMENT)
    return "".join(out)
