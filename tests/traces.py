"""Access to the real Asterisk recordings in ../shared/traces/asterisk (test data, never edited)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _shared() -> Path:
    """../shared beside the checkout, found upwards: the copy of tests/ that mutation testing runs sits deeper."""
    here = Path(__file__).resolve()
    found = (parent / "shared" for parent in here.parents if (parent / "shared" / "traces").is_dir())
    return next(found, here.parents[2] / "shared")


TRACES_DIR = _shared() / "traces" / "asterisk"


@dataclass(frozen=True)
class ExpectedCall:
    caller: str | None  # digits as in meta.json
    missed: bool
    outcome: str | None


@dataclass(frozen=True)
class Trace:
    name: str
    path: Path
    meta: dict[str, Any]

    @property
    def raw(self) -> bytes:
        return (self.path / "ami.raw").read_bytes()

    @property
    def inbound(self) -> bool:
        return self.meta.get("expected_inbound") is not False

    def expected(self) -> list[ExpectedCall]:
        if not self.inbound:
            return []
        top_missed, top_outcome = self.meta.get("expected_missed"), self.meta.get("expected_outcome")
        calls = self.meta.get("calls") or [{"caller_number": self.meta.get("caller_number")}]
        result = []
        for call in sorted(calls, key=lambda c: c.get("order", 0)):
            number = call.get("caller_number")
            missed = top_missed.get(number) if isinstance(top_missed, dict) else top_missed
            outcome = top_outcome.get(number) if isinstance(top_outcome, dict) else top_outcome
            result.append(ExpectedCall(number, bool(missed), outcome))
        return result


def all_traces() -> list[Trace]:
    return [
        Trace(d.name, d, json.loads((d / "meta.json").read_text()))
        for d in sorted(TRACES_DIR.iterdir())
        if (d / "meta.json").exists() and (d / "ami.raw").exists()
    ]


def drop_events(raw: bytes, names: set[str]) -> bytes:
    """The same stream without the named events (e.g. CEL and Cdr, which a stock Asterisk does not send)."""
    head, sep, body = raw.partition(b"\r\n")
    out = [head + sep]
    for block in body.split(b"\r\n\r\n"):
        first = block.split(b"\r\n", 1)[0]
        if first.startswith(b"Event: ") and first[7:].decode() in names:
            continue
        if block:
            out.append(block + b"\r\n\r\n")
    return b"".join(out)


def drop_headers(raw: bytes, header: str) -> bytes:
    """The same stream without one header in every message (e.g. `Timestamp`, off in a stock Asterisk)."""
    prefix = header.encode() + b": "
    lines = raw.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.startswith(prefix))


CEL_TRACES_DIR = _shared() / "traces" / "asterisk-cel"


def cel_traces() -> list[Trace]:
    """The recordings with Asterisk's CEL rows (`master.db`) beside the AMI stream, both `eventtime` formats."""
    folders = [CEL_TRACES_DIR, CEL_TRACES_DIR / "dateformat-F-T"]
    return [
        Trace(
            d.name if folder == CEL_TRACES_DIR else f"{folder.name}/{d.name}",
            d,
            json.loads((d / "meta.json").read_text()),
        )
        for folder in folders
        for d in sorted(folder.iterdir())
        if (d / "meta.json").exists() and (d / "master.db").exists()
    ]
