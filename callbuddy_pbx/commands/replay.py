"""`callbuddy-pbx replay FILE`: classify the inbound calls of a recorded AMI stream, one JSON object per line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from callbuddy_pbx.asterisk.ami_protocol import iter_stream
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.config import load_config
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.serialize import call_to_dict


def replay_bytes(data: bytes, matcher: InboundMatcher, *, where: str = "AMI stream") -> list[CallRecord]:
    """Feed a whole recorded stream through a tracker; events without `Timestamp` get a 1 ms synthetic clock."""
    return replay_stream(data, matcher, where=where)[0]


def replay_stream(data: bytes, matcher: InboundMatcher, *, where: str = "AMI stream") -> tuple[list[CallRecord], int]:
    """`replay_bytes`, and how many AMI events (messages with `Event:`) the stream held."""
    tracker = CallTracker(matcher)
    records: list[CallRecord] = []
    clock = 0.0
    events = 0
    for message in iter_stream(data, where=where):
        if message.get("Event"):
            events += 1
        stamp = message.get("Timestamp")
        try:
            clock = float(stamp) if stamp else clock + 0.001
        except ValueError:
            clock += 0.001
        records += tracker.feed(message, clock)
    records += tracker.flush()
    return records, events


def main(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"callbuddy-pbx replay: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    matcher = InboundMatcher.from_config(load_config(args.config)) if args.config else InboundMatcher()
    records, events = replay_stream(data, matcher, where=str(path))
    if not events:
        # Random bytes, an empty file, or a recording of something else: nothing to classify is not a result.
        print(f"callbuddy-pbx replay: no AMI events in {path} (expected a stream recorded from the AMI socket)",
              file=sys.stderr)  # fmt: skip
        return 1
    for record in records:
        print(json.dumps(call_to_dict(record), ensure_ascii=False))
    return 0
