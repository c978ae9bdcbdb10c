"""`callbuddy-pbx demo` tells the truth: one clock (events stamped with the moment they are sent), `--calls N` places
N inbound calls, and a second run sums up that run only (a fresh database by default)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from callbuddy_pbx.cli import main
from callbuddy_pbx.commands.demo import CEL_FILE, PREVIOUS_RUN, restamped, run_demo

DB = "callbuddy.sqlite3"


def demo(data_dir: Path, calls: int, seed: int, capsys: pytest.CaptureFixture[str]) -> str:
    args = ["demo", "--data-dir", str(data_dir), "--calls", str(calls), "--speed", "400", "--seed", str(seed)]
    code = main([*args, "--port", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def summary(out: str) -> tuple[int, int, int]:
    """(inbound calls, texts, delivered) as the summary prints them."""
    calls = re.search(r"^(\d+) inbound calls, \d+ missed", out, re.MULTILINE)
    texts = re.search(r"^(\d+) texts sent to missed callers, (\d+) delivered", out, re.MULTILINE)
    assert calls is not None and texts is not None, out
    return int(calls.group(1)), int(texts.group(1)), int(texts.group(2))


def printed_calls(out: str) -> int:
    return sum(1 for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d  ", line))


def printed_texts(out: str) -> int:
    return sum(1 for line in out.splitlines() if line.strip().startswith("SMS to +1 "))


def test_calls_end_in_the_past_texts_follow_them_and_calls_5_means_5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = demo(tmp_path, 5, 18, capsys)  # seed 18: the first 5 calls drawn hold only 3 inbound ones
    now = time.time()
    assert "placing 5 inbound calls" in out
    assert summary(out)[0] == 5 == printed_calls(out)
    with sqlite3.connect(tmp_path / DB) as db:
        started, ended, count = db.execute("SELECT MIN(started_at), MAX(ended_at), COUNT(*) FROM calls").fetchone()
        assert count == 5
        assert now - 120 < started and ended <= now  # nothing in the future (was ~10x ahead of the wall clock)
        latencies = [
            row[0]
            for row in db.execute(
                "SELECT m.sent_at - c.ended_at FROM messages AS m JOIN calls AS c USING (linkedid)"
                " WHERE m.sent_at IS NOT NULL"
            )
        ]
        assert latencies and min(latencies) >= 0, latencies  # hang-up to text (was -21390 ms)
        assert all(s <= e for s, e in db.execute("SELECT started_at, ended_at FROM calls"))
    with sqlite3.connect(tmp_path / CEL_FILE) as cel:
        first, last = cel.execute(
            "SELECT MIN(CAST(eventtime AS REAL)), MAX(CAST(eventtime AS REAL)) FROM cel"
        ).fetchone()
        assert now - 120 < first and last <= now
    assert main(["stats", "--db", str(tmp_path / DB), "--since", "1h", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["latency"]["samples"] > 0 and stats["latency"]["median_s"] >= 0, stats


def test_a_second_run_on_the_same_folder_sums_up_that_run_and_gets_its_receipts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An explicit --data-dir is used as it is: the second run's summary counts its own calls and texts, and every
    text of it is delivered though the SMSC numbers its messages from 1000001 again (ids reused)."""
    first = demo(tmp_path, 6, 21, capsys)
    calls1, texts1, delivered1 = summary(first)
    assert texts1 == delivered1 == printed_texts(first) > 0
    second = demo(tmp_path, 6, 22, capsys)
    calls2, texts2, delivered2 = summary(second)
    assert calls2 == 6 == printed_calls(second)
    assert texts2 == delivered2 == printed_texts(second) > 0, second  # this run's texts, each delivered
    assert f"(and {calls1} from earlier runs)" in second
    with sqlite3.connect(tmp_path / DB) as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == calls1 + calls2
        states = dict(db.execute("SELECT state, COUNT(*) FROM messages GROUP BY state").fetchall())
    assert states == {"delivered": texts1 + texts2}, states  # none left `sent` for ever


async def test_the_default_folder_starts_a_fresh_database_each_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_demo(tmp_path, 3, 400.0, seed=5, port=0, fresh=True) == 0
    capsys.readouterr()
    assert await run_demo(tmp_path, 3, 400.0, seed=6, port=0, fresh=True) == 0
    out = capsys.readouterr().out
    assert summary(out)[0] == 3 and "from earlier runs" not in out
    assert f"previous run's files are in {tmp_path / PREVIOUS_RUN}" in out
    for folder in (tmp_path, tmp_path / PREVIOUS_RUN):
        with sqlite3.connect(folder / DB) as db:
            assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 3
        with sqlite3.connect(folder / CEL_FILE) as cel:
            assert cel.execute("SELECT COUNT(*) FROM cel").fetchone()[0] > 0


def test_a_cdr_is_restamped_to_end_now_and_last_as_long_as_it_was_played() -> None:
    cdr = {
        "Event": "Cdr",
        "Timestamp": "1796540700.000000",
        "StartTime": "2026-12-06 10:00:00",
        "AnswerTime": "2026-12-06 10:00:10",
        "EndTime": "2026-12-06 10:01:40",
        "Duration": "100",
        "BillableSeconds": "90",
    }
    now = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
    out = restamped(cdr, now, speed=10.0)
    assert out["Timestamp"] == "1800000000.000000" and cdr["Timestamp"] == "1796540700.000000"  # a copy
    assert (out["StartTime"], out["AnswerTime"], out["EndTime"]) == (
        "2027-01-15 07:59:50",
        "2027-01-15 07:59:51",
        "2027-01-15 08:00:00",
    )
    assert (out["Duration"], out["BillableSeconds"]) == ("10", "9")
    cel = restamped({"Event": "CEL", "Timestamp": "1.0", "EventTime": "2026-12-06 10:00:00"}, now, 10.0)
    assert cel["EventTime"] == "2027-01-15 08:00:00"
