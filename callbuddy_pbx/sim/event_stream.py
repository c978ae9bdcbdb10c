"""Scenarios as one stream: merging concurrent calls by time (`interleave`, the lazy `stream_events`) and encoding
events as AMI wire bytes (`encode_message`, `encode_events`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.sim.scenario_model import Scenario, ScriptedEvent


def interleave(scenarios: Sequence[Scenario], offsets: Sequence[float]) -> list[ScriptedEvent]:
    """Merge scenarios that start `offsets[i]` seconds into one stream, ordered by time (concurrent calls).

    The result's `at` is seconds from the stream start. `Timestamp` headers are rewritten to match it (stream start
    = the first scenario's `started_at` minus its offset), so a replay's clock and the headers agree.
    """
    if len(scenarios) != len(offsets):
        raise ValueError(f"{len(scenarios)} scenarios but {len(offsets)} offsets")
    if not scenarios:
        return []
    base = scenarios[0].started_at - offsets[0]
    keyed: list[tuple[float, int, int, ScriptedEvent]] = []
    for i, (scenario, offset) in enumerate(zip(scenarios, offsets, strict=True)):
        for j, event in enumerate(scenario.events):
            at = offset + event.at
            message = event.message
            if "Timestamp" in message:
                message = {**message, "Timestamp": f"{base + at:.6f}"}
            keyed.append((at, i, j, ScriptedEvent(at, message)))
    keyed.sort(key=lambda item: (item[0], item[1], item[2]))
    return [item[3] for item in keyed]


def _merge_windows(
    calls: Iterator[tuple[float, Sequence[float], Sequence[AmiMessage]]], window_s: float
) -> Iterator[list[tuple[float, AmiMessage]]]:
    """Merge calls given as (start offset, event times, payloads), in order of start, window by window: each
    yielded batch holds the events due in one `window_s` of stream time, sorted (ties keep call, then event, order).
    Only the calls in progress are looked at, so the cost per event stays small with many calls in flight."""
    pending = next(calls, None)
    active: list[list[Any]] = []  # [event times, payloads, next index, offset, time of the next event]
    window_end = 0.0
    while active or pending is not None:
        if not active and pending is not None:
            window_end = max(window_end, pending[0])
        window_end += window_s
        while pending is not None and pending[0] < window_end:
            offset, ats, payloads = pending
            if ats:
                active.append([ats, payloads, 0, offset, offset + ats[0]])
            pending = next(calls, None)
        batch: list[tuple[float, AmiMessage]] = []
        still: list[list[Any]] = []
        for entry in active:
            if entry[4] < window_end:
                ats, payloads, index, offset = entry[0], entry[1], entry[2], entry[3]
                count = len(ats)
                while index < count:
                    at = offset + ats[index]
                    if at >= window_end:
                        break
                    batch.append((at, payloads[index]))
                    index += 1
                if index == count:
                    continue
                entry[2], entry[4] = index, offset + ats[index]
            still.append(entry)
        active = still
        batch.sort(key=_first)
        yield batch


def _first(item: tuple[float, object]) -> float:
    return item[0]


def stream_events(scenarios: Iterable[Scenario], *, window_s: float = 1.0) -> Iterator[ScriptedEvent]:
    """Lazily merge scenarios into one time-ordered stream (concurrent calls); `at` is seconds from the first
    scenario's start. The scenarios must come in order of `started_at` (as `mixed_call_stream` yields them);
    messages are not copied."""
    source = iter(scenarios)
    first = next(source, None)
    if first is None:
        return
    base = first.started_at

    def calls() -> Iterator[tuple[float, Sequence[float], Sequence[AmiMessage]]]:
        for scenario in itertools.chain((first,), source):
            events = scenario.events
            yield scenario.started_at - base, [e.at for e in events], [e.message for e in events]

    make = ScriptedEvent
    for batch in _merge_windows(calls(), window_s):
        for at, message in batch:
            yield make(at, message)


def encode_message(message: AmiMessage) -> bytes:
    """One AMI message on the wire: `Key: Value` lines and a blank line. CR/LF inside a value is refused."""
    text = "".join(f"{key}: {value}\r\n" for key, value in message.items()) + "\r\n"
    if text.count("\n") != len(message) + 1 or text.count("\r") != len(message) + 1:
        raise ValueError(f"AMI message {message.get('Event', '?')!r} has a header containing CR or LF")
    return text.encode("utf-8")


def encode_events(events: Iterable[ScriptedEvent]) -> bytes:
    """AMI wire bytes (`Event: X\\r\\n...\\r\\n\\r\\n` per event), as Asterisk writes them to a client."""
    return b"".join(encode_message(event.message) for event in events)
