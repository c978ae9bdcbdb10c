"""`callbuddy-pbx demo`: the real service against the simulated PBX, end to end, as a user runs it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from callbuddy_pbx.cli import main
from callbuddy_pbx.store.db import CallStore


def test_demo_prints_every_call_and_stores_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--data-dir", str(tmp_path), "--calls", "20", "--speed", "400", "--seed", "7", "--port", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"^dashboard: http://127\.0\.0\.1:\d+/$", out, re.MULTILINE), out
    assert re.search(r"log in as admin / \S{12}", out) and re.search(r"or glow / \S{12}", out), out
    lines = [line for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d  ", line)]
    summary = re.search(r"(\d+) inbound calls, (\d+) missed", out)
    assert summary is not None, out
    assert len(lines) == int(summary.group(1)) > 0
    assert sum("MISSED (" in line for line in lines) == int(summary.group(2))
    texts = re.search(r"(\d+) texts sent to missed callers, (\d+) delivered", out)
    assert texts is not None, out
    sms_lines = [line for line in out.splitlines() if line.strip().startswith("SMS to +1 ")]
    assert 0 < len(sms_lines) == int(texts.group(1)) == int(texts.group(2))  # each text printed once, each delivered
    assert all("Sorry we missed your call!" in line for line in sms_lines)

    async def stored() -> int:
        async with await CallStore.open(tmp_path / "callbuddy.sqlite3") as store:
            return await store.count_calls()

    assert asyncio.run(stored()) == len(lines)


def test_demo_rejects_nonsense_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--calls", "0"]) == 2
    assert "--calls" in capsys.readouterr().err
    assert main(["demo", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
