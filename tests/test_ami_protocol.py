"""AMI wire format (ami_protocol.py) against the real Asterisk 22 recordings and hand-made edge cases."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.ami_protocol import (
    MAX_MESSAGE_BYTES,
    AmiProtocolError,
    FrameSplitter,
    encode_action,
    iter_stream,
    parse_message,
)

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces" / "asterisk"
SCENARIOS = sorted(path.parent for path in TRACES.glob("*/meta.json"))
ACTIONS = TRACES / "actions"


def _timing(path: Path) -> list[tuple[int, int]]:
    return [(item["off"], item["len"]) for item in map(json.loads, path.read_text().splitlines()) if item]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda path: path.name)
def test_recorded_stream_event_counts_match_meta(scenario: Path) -> None:
    meta = json.loads((scenario / "meta.json").read_text())
    messages = list(iter_stream((scenario / "ami.raw").read_bytes()))
    counts = Counter(message["Event"] for message in messages if "Event" in message)
    assert dict(counts) == meta["ami_event_counts"]
    # Besides the events there is exactly our Login response.
    responses = [message for message in messages if "Event" not in message]
    assert responses == [{"Response": "Success", "ActionID": "login-1", "Message": "Authentication accepted"}]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda path: path.name)
def test_recorded_socket_reads_give_the_same_messages(scenario: Path) -> None:
    """Fed in the recorded read boundaries (which split messages anywhere), the splitter loses and adds nothing."""
    raw = (scenario / "ami.raw").read_bytes()
    splitter = FrameSplitter()
    blocks: list[bytes] = []
    for offset, length in _timing(scenario / "ami.timing.jsonl"):
        blocks += splitter.feed(raw[offset : offset + length])
    assert splitter.banner == "Asterisk Call Manager/11.0.0"
    assert [parse_message(block) for block in blocks] == list(iter_stream(raw))


def test_byte_by_byte_feeding_equals_one_feed() -> None:
    raw = (TRACES / "09-two-concurrent-calls" / "ami.raw").read_bytes()
    splitter = FrameSplitter()
    blocks = [block for i in range(len(raw)) for block in splitter.feed(raw[i : i + 1])]
    assert blocks == FrameSplitter().feed(raw)
    assert len(blocks) == 1 + 174  # login response + events


def test_recorded_core_show_channels_list_shape() -> None:
    messages = list(iter_stream((ACTIONS / "coreshowchannels-during-call.raw").read_bytes()))
    start, *items, complete, goodbye = messages[1:]
    assert start["EventList"] == "start"
    assert [item["Event"] for item in items] == ["CoreShowChannel"] * 3
    assert {item["ActionID"] for item in items} == {start["ActionID"]}
    assert complete["Event"] == "CoreShowChannelsComplete"
    assert complete["EventList"] == "Complete"
    assert complete["ListItems"] == "3"
    assert items[0]["AccountCode"] == ""  # empty value kept
    assert items[1]["ApplicationData"] == "(Outgoing Line)"
    assert goodbye == {"Response": "Goodbye", "ActionID": "logoff-1", "Message": "Thanks for all the fish."}


def test_recorded_login_failure() -> None:
    (response,) = iter_stream((ACTIONS / "login-failure.raw").read_bytes())
    assert response == {"Response": "Error", "ActionID": "login-1", "Message": "Authentication failed"}


def test_recorded_value_containing_colon_space() -> None:
    raw = (TRACES / "03-answered" / "ami.raw").read_bytes()
    noop = next(m for m in iter_stream(raw) if m.get("Event") == "Newexten" and m.get("Application") == "NoOp")
    assert noop["AppData"] == 'CallBuddy main line: "Jane Caller" <15557654321> -> 15550001000'


def test_value_with_colon_space_empty_value_and_no_space() -> None:
    message = parse_message(b"Event: Newexten\r\nAppData: a: b: c\r\nAccountCode: \r\nBare:\r\nTight:value")
    assert message == {"Event": "Newexten", "AppData": "a: b: c", "AccountCode": "", "Bare": "", "Tight": "value"}


def test_repeated_keys_keep_every_value() -> None:
    block = b"Event: Newchannel\r\nChanVariable: A=1\r\nChanVariable: B=2: x\r\nChannel: PJSIP/100-1"
    message = parse_message(block)
    assert message["ChanVariable"].split("\n") == ["A=1", "B=2: x"]
    assert message["Channel"] == "PJSIP/100-1"


def test_line_without_colon_is_logged_and_the_rest_kept(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        message = parse_message(b"Event: Hangup\r\ngarbage line\r\nCause: 16", where="test")
    assert message == {"Event": "Hangup", "Cause": "16"}
    assert any("garbage line" in record.getMessage() for record in caplog.records)


def test_utf8_character_split_across_feeds() -> None:
    data = "Asterisk Call Manager/11.0.0\r\nEvent: Newchannel\r\nCallerIDName: José\r\n\r\n".encode()
    cut = data.index("é".encode()) + 1  # between the two bytes of é
    splitter = FrameSplitter()
    blocks = splitter.feed(data[:cut]) + splitter.feed(data[cut:])
    assert [parse_message(block) for block in blocks] == [{"Event": "Newchannel", "CallerIDName": "José"}]


def test_banner_split_across_feeds() -> None:
    splitter = FrameSplitter()
    assert splitter.feed(b"Asterisk Call Man") == []
    assert splitter.feed(b"ager/11.0.0\r\nResponse: Success\r\n\r\n") == [b"Response: Success"]
    assert splitter.banner == "Asterisk Call Manager/11.0.0"


def test_oversized_message_in_one_feed_is_dropped_and_the_next_survives(caplog: pytest.LogCaptureFixture) -> None:
    big = b"Event: Huge\r\nData: " + b"x" * (MAX_MESSAGE_BYTES + 10) + b"\r\n\r\n"
    splitter = FrameSplitter(expect_banner=False)
    with caplog.at_level(logging.ERROR):
        blocks = splitter.feed(big + b"Event: Small\r\n\r\n")
    assert blocks == [b"Event: Small"]
    assert any("dropped a message" in record.getMessage() for record in caplog.records)


def test_oversized_message_over_many_feeds_is_dropped_and_memory_stays_bounded() -> None:
    splitter = FrameSplitter(expect_banner=False, max_message_bytes=1000)
    blocks = splitter.feed(b"Event: Huge\r\nData: ")
    for _ in range(50):
        blocks += splitter.feed(b"y" * 999)
        assert len(splitter._buffer) <= 1000 + 999
    blocks += splitter.feed(b"\r\n\r")  # the terminator split across feeds
    blocks += splitter.feed(b"\nEvent: Small\r\n\r\n")
    assert blocks == [b"Event: Small"]


def test_encode_action_order_and_none_skipped() -> None:
    data = encode_action("Login", {"ActionID": "1", "Username": "u", "Secret": "s", "Events": None, "N": 5})
    assert data == b"Action: Login\r\nActionID: 1\r\nUsername: u\r\nSecret: s\r\nN: 5\r\n\r\n"


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("Originate", {"Channel": "PJSIP/100\r\nAction: Command"}),
        ("Originate", {"Data": "x\nCommand: core stop now"}),
        ("Originate", {"Bad\r\nKey": "x"}),
        ("Ping\r\nAction: Command", {}),
    ],
)
def test_encode_action_refuses_line_break_injection(action: str, fields: dict[str, str]) -> None:
    with pytest.raises(AmiProtocolError, match="line break"):
        encode_action(action, fields)


def test_a_malformed_line_is_logged_without_the_phone_number_it_holds(caplog: pytest.LogCaptureFixture) -> None:
    from callbuddy_pbx.asterisk.ami_protocol import parse_message

    message = parse_message(b"Event: Newchannel\r\nCallerIDNum 15557654321\r\nExten: 100")
    assert message == {"Event": "Newchannel", "Exten": "100"}
    assert "15557654321" not in caplog.text
    assert "15*******21" in caplog.text
