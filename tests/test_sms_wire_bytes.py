"""The octets of a text on the SMPP wire, checked against the standards rather than against our own decoder.

GSM-7 against 3GPP TS 23.038 as tests/gsm0338.py writes it out; UCS-2 against Python's UTF-16-BE codec. SMPP 3.4
leaves data_coding 0's octets to the SMSC's default alphabet; we send GSM 03.38 unpacked, one septet per octet (what
SMSCs take over SMPP; packing is the radio side's business), so every octet of a GSM-7 text is below 0x80. Long
texts go as parts behind a 6-octet user data header (`05 00 03 ref count number`, 3GPP TS 23.040 §9.2.3.24.1) with
esm_class 0x40, 153 septets or 134 octets of text each, and no part may end inside a character.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from smpplib import gsm as smpplib_gsm

from callbuddy_pbx.config import GatewayConfig
from callbuddy_pbx.message_text import encoding_of, segments
from callbuddy_pbx.sim import gsm0338 as sim_gsm0338
from callbuddy_pbx.sim.smsc import SimulatedSmsc, decode_short_message
from callbuddy_pbx.sms.gateway import DeliveryReport, InboundSms, OutgoingSms
from callbuddy_pbx.sms.smpp import SmppGateway
from callbuddy_pbx.sms.smpp_text import decode_text, encode_text
from tests.gsm0338 import DEFAULT_ALPHABET, ESCAPE, EXTENSION_TABLE, septets, text_of

# Every character of both tables once, in code order: 127 + 2 x 10 = 147 septets, one part.
ALPHABET = "".join(DEFAULT_ALPHABET.values()) + "".join(EXTENSION_TABLE.values())
GSM7, UCS2, UDHI = 0, 8, 0x40
GSM7_PART, UCS2_PART = 153, 134  # octets of text in each part of a long text
HIGH_SURROGATES = range(0xD8, 0xDC)  # first octet of a UTF-16-BE high surrogate


def parts_of(text: str) -> tuple[list[bytes], int]:
    """The text's parts as the SMPP gateway sends them, user data headers checked and taken off; and data_coding."""
    encoded = encode_text(text)
    if len(encoded.parts) == 1:
        assert encoded.esm_class == 0, "a single part has no user data header"
        return list(encoded.parts), encoded.data_coding
    assert encoded.esm_class == UDHI
    count = len(encoded.parts)
    reference = encoded.parts[0][3]
    for number, part in enumerate(encoded.parts, 1):
        assert part[:6] == bytes((0x05, 0x00, 0x03, reference, count, number)), f"user data header of part {number}"
    return [part[6:] for part in encoded.parts], encoded.data_coding


# -- the oracle itself -------------------------------------------------------------------------------------------


def test_the_spec_table_has_every_code_once() -> None:
    assert sorted(DEFAULT_ALPHABET) == [code for code in range(0x80) if code != ESCAPE]
    assert len(set(DEFAULT_ALPHABET.values())) == 127
    assert set(EXTENSION_TABLE.values()).isdisjoint(DEFAULT_ALPHABET.values())


def test_the_spec_table_agrees_with_smpplib_except_where_smpplib_is_known_wrong() -> None:
    # A second, independent reading of the standard catches a slip of typing in ours. smpplib's table has '`' where
    # it has nothing, a backtick for '§' at 0x5F, and no form feed: those three differences and no others.
    theirs = smpplib_gsm.GSM_CHARACTER_TABLE
    basic = {code: char for code, char in enumerate(theirs[:0x80]) if code != ESCAPE}
    extension = {code: char for code, char in enumerate(theirs[0x80:]) if char != "`"}
    assert {code: (char, basic[code]) for code, char in DEFAULT_ALPHABET.items() if basic[code] != char} == {
        0x5F: ("§", "`")
    }
    assert extension == {code: char for code, char in EXTENSION_TABLE.items() if char != "\f"}


# -- GSM-7, one character at a time --------------------------------------------------------------------------------


def test_every_default_alphabet_character_is_the_octet_of_its_code() -> None:
    wrong = {}
    for code, char in DEFAULT_ALPHABET.items():
        encoded = encode_text(char)
        if (encoded.parts, encoded.data_coding, encoded.esm_class) != ((bytes((code,)),), GSM7, 0):
            wrong[char] = (encoded.parts, encoded.data_coding)
    assert wrong == {}


def test_every_extension_character_is_escape_then_its_code() -> None:
    wrong = {}
    for code, char in EXTENSION_TABLE.items():
        encoded = encode_text(char)
        if (encoded.parts, encoded.data_coding) != ((bytes((ESCAPE, code)),), GSM7):
            wrong[char] = (encoded.parts, encoded.data_coding)
    assert wrong == {}


def test_the_whole_alphabet_is_one_part_of_unpacked_septets() -> None:
    encoded = encode_text(ALPHABET)
    assert encoded.parts == (septets(ALPHABET),)
    assert (encoded.data_coding, encoded.esm_class) == (GSM7, 0)
    assert max(encoded.parts[0]) < 0x80


def test_characters_outside_both_tables_go_as_ucs2_and_those_in_them_never() -> None:
    # Every character of the BMP but surrogates, and a few beyond it: the set the service calls GSM-7 (to send and to
    # count segments) is exactly the standard's.
    gsm = set(ALPHABET)
    chars = [chr(code) for code in itertools.chain(range(0xD800), range(0xE000, 0x10000), (0x1F600, 0x10FFFF))]
    misfiled = {}
    for char in chars:
        encoded = encode_text(char)
        got = (encoded.parts[0], encoded.data_coding, encoding_of(char))
        if got != ((septets(char), GSM7, "GSM-7") if char in gsm else (char.encode("utf-16-be"), UCS2, "UCS-2")):
            misfiled[char] = got
    assert misfiled == {}


def test_the_service_reads_every_septet_as_the_standard_says() -> None:
    # Its decoder reads what phones send (data_coding 0 in deliver_sm).
    assert decode_text(septets(ALPHABET) or b"", GSM7) == ALPHABET


# -- GSM-7, long texts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a" * 160,  # the most one part holds
        "€" * 80,  # likewise, in escape pairs
        "a" * 161,
        "€" * 80 + "a",
        *("a" * lead + "€{}" + ALPHABET for lead in (150, 151, 152, 153)),  # an escape pair on the 153-octet edge
        (ALPHABET + "€" * 20) * 6,  # escape pairs everywhere across 8 parts, one on an edge
    ],
    ids=lambda text: f"{len(text)}chars",
)
def test_gsm7_parts_are_the_standards_septets_cut_between_characters(text: str) -> None:
    chunks, coding = parts_of(text)
    expected = septets(text)
    assert coding == GSM7 and expected is not None
    assert b"".join(chunks) == expected
    if len(expected) <= 160:
        assert len(chunks) == 1
        return
    # text_of raises for a part that ends inside an escape pair (or a part that starts with its second half).
    assert "".join(text_of(chunk) for chunk in chunks) == text
    for chunk, following in itertools.pairwise(chunks):
        # Full parts: one septet short only where the next character is an escape pair that would not fit.
        assert len(chunk) == GSM7_PART or (len(chunk) == GSM7_PART - 1 and following[0] == ESCAPE)
    assert 0 < len(chunks[-1]) <= GSM7_PART
    assert len(chunks) == segments(text), "parts sent differ from the segments the user is shown"


def test_an_escape_pair_that_would_straddle_the_edge_starts_the_next_part() -> None:
    chunks, _ = parts_of("a" * 152 + "€" + "b" * 10)
    assert chunks == [b"a" * 152, b"\x1b\x65" + b"b" * 10]
    chunks, _ = parts_of("a" * 151 + "€" + "b" * 10)
    assert chunks == [b"a" * 151 + b"\x1b\x65", b"b" * 10]


def test_consecutive_long_texts_have_different_references() -> None:
    first, second = encode_text("a" * 200), encode_text("a" * 200)
    assert first.parts[0][3] != second.parts[0][3]


# -- UCS-2 -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ç" * 70,  # the most one part holds: 140 octets
        "😀" * 35,  # likewise, in surrogate pairs
        "ç" * 71,
        *("x" * lead + "😀" + "Ça coûte 10 €, à bientôt! " * 8 for lead in (65, 66, 67)),  # a pair on the edge
        "😀ça" * 100,  # surrogate pairs everywhere across 6 parts, one on an edge
    ],
    ids=lambda text: f"{len(text)}chars",
)
def test_ucs2_parts_are_utf16_cut_between_characters(text: str) -> None:
    chunks, coding = parts_of(text)
    assert coding == UCS2
    assert b"".join(chunks) == text.encode("utf-16-be")
    if len(text.encode("utf-16-be")) <= 140:
        assert len(chunks) == 1
        return
    # The strict codec raises for a part that ends with a high surrogate or starts with a low one.
    assert "".join(chunk.decode("utf-16-be") for chunk in chunks) == text
    for chunk, following in itertools.pairwise(chunks):
        assert len(chunk) == UCS2_PART or (len(chunk) == UCS2_PART - 2 and following[0] in HIGH_SURROGATES)
    assert 0 < len(chunks[-1]) <= UCS2_PART
    assert len(chunks) == segments(text), "parts sent differ from the segments the user is shown"


def test_a_surrogate_pair_that_would_straddle_the_edge_starts_the_next_part() -> None:
    chunks, _ = parts_of("x" * 66 + "😀" + "y" * 10)
    assert chunks == ["x".encode("utf-16-be") * 66, "😀".encode("utf-16-be") + "y".encode("utf-16-be") * 10]
    assert chunks[1][:4] == b"\xd8\x3d\xde\x00"  # U+1F600 as its surrogate pair


# -- the simulated SMSC reads with the standard too ----------------------------------------------------------------


def test_the_simulated_smsc_reads_and_writes_every_septet_as_the_standard_says() -> None:
    for code, char in DEFAULT_ALPHABET.items():
        assert decode_short_message(bytes((code,)), GSM7) == char, hex(code)
    for code, char in EXTENSION_TABLE.items():
        assert decode_short_message(bytes((ESCAPE, code)), GSM7) == char, hex(code)
    assert sim_gsm0338.encode(ALPHABET) == septets(ALPHABET)
    assert sim_gsm0338.encode("`") is None


def test_the_simulated_smsc_shows_a_cut_character_as_damage() -> None:
    assert decode_short_message(b"ab\x1b", GSM7) == "ab\ufffd"  # an escape pair's first half
    assert decode_short_message("a😀".encode("utf-16-be")[:4], UCS2) == "a\ufffd"  # a surrogate pair's
    assert decode_short_message(b"\x05\x00\x03\x01\x02\x01" + b"\x5f\x60", GSM7, has_udh=True) == "§¿"


# -- through the SMPP gateway to the simulated SMSC, and back from a phone ---------------------------------------------


@pytest.fixture
async def link() -> AsyncIterator[tuple[SimulatedSmsc, SmppGateway, asyncio.Queue[InboundSms]]]:
    smsc = SimulatedSmsc(system_id="callbuddy", password="pw", receipt_delay_s=None)
    await smsc.start()
    gateway = SmppGateway(
        GatewayConfig(name="smsc", kind="smpp", port=smsc.port, system_id="callbuddy", password="pw", window=10)
    )
    inbound: asyncio.Queue[InboundSms] = asyncio.Queue()

    async def on_report(report: DeliveryReport) -> None:
        pass

    async def on_inbound(sms: InboundSms) -> None:
        inbound.put_nowait(sms)

    await gateway.start(on_report, on_inbound)
    yield smsc, gateway, inbound
    await gateway.close()
    await smsc.stop()


@pytest.mark.parametrize(
    "text", [ALPHABET, "a" * 152 + "€" + ALPHABET, "😀 " + ALPHABET], ids=["gsm7", "gsm7-long", "ucs2"]
)
async def test_submit_sm_carries_the_standards_octets(
    link: tuple[SimulatedSmsc, SmppGateway, asyncio.Queue[InboundSms]], text: str
) -> None:
    smsc, gateway, _ = link

    assert (await gateway.send(OutgoingSms(key="k", to="+15557654321", sender="+15550001000", text=text))).accepted

    [message] = smsc.messages()
    payload = b"".join(part.short_message[6:] if part.part else part.short_message for part in message.parts)
    gsm = septets(text)
    assert (payload, message.data_coding) == ((gsm, GSM7) if gsm is not None else (text.encode("utf-16-be"), UCS2))
    assert message.complete and message.text == text


async def test_a_phones_text_in_the_whole_alphabet_is_read_as_written(
    link: tuple[SimulatedSmsc, SmppGateway, asyncio.Queue[InboundSms]],
) -> None:
    smsc, _, inbound = link

    assert await smsc.send_mo("+15557654321", "+15550001000", ALPHABET) == 0

    sms = await asyncio.wait_for(inbound.get(), 5.0)
    assert sms.text == ALPHABET
