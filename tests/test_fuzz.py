"""Property-based fuzzing of what comes from outside (seeded and bounded, so each run is the same and quick):
AMI bytes however they are cut, any AMI event sequence into the tracker, any text as a configuration file."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callbuddy_pbx.asterisk.ami_protocol import MAX_VALUE_CHARS, FrameSplitter, parse_message
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.config import ConfigError, load_config

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

AMI_BYTES = st.binary(max_size=600) | st.lists(
    st.sampled_from([b"Event: Newchannel", b"Linkedid: 1.1", b"Key:Value", b"\r\n", b"\r\n\r\n", b": ", b"\xff\xfe"]),
    max_size=40,
).map(b"".join)


@FUZZ
@given(stream=AMI_BYTES, cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_ami_framing_does_not_depend_on_how_the_bytes_arrive(stream: bytes, cuts: list[int]) -> None:
    whole = FrameSplitter(expect_banner=False).feed(stream)
    assert whole == [block for block in stream.split(b"\r\n\r\n")[:-1] if block]  # the wire format, plainly
    splitter = FrameSplitter(expect_banner=False)
    pieces: list[bytes] = []
    edges = [0, *sorted(min(cut, len(stream)) for cut in cuts), len(stream)]
    for start, end in itertools.pairwise(edges):
        pieces += splitter.feed(stream[start:end])
    assert pieces == whole


@FUZZ
@given(block=st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_any_ami_block_parses_to_bounded_text_without_raising(block: bytes) -> None:
    message = parse_message(block)
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in message.items())
    assert all(len(value) <= MAX_VALUE_CHARS or "\n" in value for value in message.values())


CHANNELS = [("PJSIP/trunk-1", "1.1", "1.1"), ("PJSIP/100-2", "1.2", "1.1"), ("Local/100@x-3;1", "1.3", "1.1"),
            ("Local/100@x-3;2", "1.4", "1.1"), ("PJSIP/101-5", "2.5", "2.5")]  # fmt: skip
EVENTS = ["Newchannel", "Newstate", "Newexten", "NewCallerid", "DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave",
          "BridgeDestroy", "Hangup", "HangupRequest", "Rename", "AgentConnect", "QueueCallerAbandon",
          "Cdr"]  # fmt: skip
ODD = st.sampled_from(["", "nan", "inf", "1e20", "-1", "6", "4", "ANSWER", "BUSY", "NOANSWER", "from-trunk",
                       "15550001000", "PJSIP/100-2", "2.5", "x" * 300, "\x00\r"])  # fmt: skip


@st.composite
def ami_event(draw: st.DrawFn) -> dict[str, str]:
    name, uniqueid, linkedid = draw(st.sampled_from(CHANNELS))
    other = draw(st.sampled_from(CHANNELS))
    event = {"Event": draw(st.sampled_from(EVENTS)), "Channel": name, "Uniqueid": uniqueid, "Linkedid": linkedid}
    event |= {"DestChannel": other[0], "DestUniqueid": other[1], "DestLinkedid": other[2]}
    for key in draw(st.lists(st.sampled_from(["ChannelState", "Context", "Exten", "CallerIDNum", "DialStatus",
                                              "BridgeUniqueid", "Cause", "Timestamp", "Application", "Newname"]),
                             max_size=6)):  # fmt: skip
        event[key] = draw(ODD)
    return event


INBOUND = {"Event": "Newchannel", "Channel": "PJSIP/trunk-1", "Uniqueid": "1.1", "Linkedid": "1.1",
           "ChannelState": "4", "Context": "from-trunk", "Exten": "15550001000",
           "CallerIDNum": "15557654321"}  # fmt: skip
CALLER_HANGS_UP = {"Event": "Hangup", "Channel": "PJSIP/trunk-1", "Uniqueid": "1.1", "Linkedid": "1.1", "Cause": "16"}


@FUZZ
@given(
    events=st.lists(ami_event(), max_size=40),
    snapshot=st.lists(ami_event(), max_size=4),
    stamps=st.lists(ODD, min_size=2, max_size=2),
)
def test_any_event_sequence_is_judged_without_raising_and_with_finite_times(
    events: list[dict[str, str]], snapshot: list[dict[str, str]], stamps: list[str]
) -> None:
    """Around a real inbound call (so that calls are judged), anything may happen, in any order."""
    events = [{**INBOUND, "Timestamp": stamps[0]}, *events, {**CALLER_HANGS_UP, "Timestamp": stamps[1]}]
    tracker = CallTracker(InboundMatcher(), grace_s=1.0)
    records = []
    for index, event in enumerate(events[: len(events) // 2]):
        records += tracker.feed(event, 1_700_000_000.0 + index)
    tracker.disconnected()
    records += tracker.reconcile(snapshot, now=1_700_000_100.0)
    for index, event in enumerate(events[len(events) // 2 :]):
        records += tracker.feed(event, 1_700_000_200.0 + index)
    records += tracker.tick(1_700_001_000.0)
    records += tracker.flush()
    for record in records:
        times = [record.started_at, record.ended_at, *(leg.started_at for leg in record.legs)]
        assert all(math.isfinite(value) for value in times)
    assert len({record.linkedid for record in records}) == len(records)  # one verdict per call


YAML_BITS = st.sampled_from(["asterisk:", "  host: ", "businesses:", "  - name: ", "numbers: [", "]", "{", "}",
                             "&a ", "*a", "!!python/object ", "${HOME}", "${NOPE", "\t", "- ", ": ", "'", '"', "\n",
                             "web:", "  users_file: ", "/dev/null", "gateways:", "kind: smpp",
                             "port: 99999"])  # fmt: skip


@FUZZ
@given(text=st.lists(YAML_BITS | st.text(max_size=12), max_size=30).map("".join))
def test_any_configuration_text_is_a_config_or_a_clear_config_error(text: str, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    path: Path = tmp_path_factory.mktemp("fuzz") / "callbuddy.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as error:
        assert error.problems and all(problem.startswith(str(path)) for problem in error.problems)
