"""`callbuddy-pbx check` and `callbuddy-pbx calls`, run through the CLI entry point as a user would."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest

from callbuddy_pbx.cli import main
from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.periods import parse_since
from callbuddy_pbx.store import CallStore

CONFIG = """\
asterisk:
  host: pbx.local
  port: 5039
  username: callbuddy
  secret: ${AMI_SECRET}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000", "15550001003"]
    timezone: America/New_York
inbound:
  contexts: [from-trunk, from-pstn]
storage:
  path: data/calls.sqlite3
web:
  users:
    - name: ann
      password_hash: "scrypt$16384$8$1$ME7SorPw3iFGcaDxNdnOEQ==$ZH8wc64iri/u05JgfK7/2vm87H1VdJktsKYazEH/Sqc="
      role: admin
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("AMI_SECRET", raising=False)
    monkeypatch.delenv("CALLBUDDY_AMI_SECRET", raising=False)


def call(
    linkedid: str,
    ended_at: float,
    outcome: Outcome = Outcome.NO_ANSWER,
    *,
    caller: str | None = "+15557654321",
    caller_raw: str | None = None,
    caller_name: str | None = "Jane Doe",
) -> CallRecord:
    answered = outcome is Outcome.ANSWERED
    return CallRecord(
        linkedid=linkedid,
        business="Glow Salon",
        did="+15550001000",
        caller=caller,
        caller_raw=caller_raw if caller_raw is not None else (caller or "anonymous"),
        caller_name=caller_name,
        outcome=outcome,
        answered_by="PJSIP/101" if answered else None,
        started_at=ended_at - 40,
        ring_at=ended_at - 38,
        answered_at=ended_at - 26 if answered else None,
        ended_at=ended_at,
        hangup_cause=16,
        legs=(
            LegRecord(
                "PJSIP/101-00000001",
                "PJSIP/101",
                "ANSWER" if answered else "NOANSWER",
                16,
                answered,
                ended_at - 38,
                ended_at - 1,
            ),
        ),
    )


def fill(path: Path, records: list[CallRecord]) -> Path:
    async def _fill() -> None:
        async with await CallStore.open(path) as store:
            await store.save_calls(records)

    asyncio.run(_fill())
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- check -----------------------------------------------------------------------------------------------------------


def test_check_ok_prints_summary_without_secret(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AMI_SECRET", "very-secret-pw")
    config = tmp_path / "site.yaml"
    config.write_text(CONFIG)
    code, out, err = run(capsys, "check", "--config", str(config))
    assert code == 0
    assert "pbx.local:5039" in out
    assert "callbuddy" in out
    assert "Glow Salon: +15550001000, +15550001003 (time zone America/New_York" in out
    assert "from-trunk, from-pstn" in out
    assert str(tmp_path / "data" / "calls.sqlite3") in out
    assert "very-secret-pw" not in out + err
    assert err == ""


def test_check_warns_when_no_secret(tmp_path, capsys):
    config = tmp_path / "site.yaml"
    config.write_text("businesses: []\n")
    code, out, err = run(capsys, "check", "-c", str(config))
    assert code == 0
    assert "secret NOT set" in out
    assert "CALLBUDDY_AMI_SECRET" in err


def test_check_warns_when_nobody_can_log_in_to_the_dashboard(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AMI_SECRET", "very-secret-pw")
    config = tmp_path / "site.yaml"
    config.write_text(CONFIG.split("web:\n")[0], encoding="utf-8")  # the same site with no dashboard user
    code, _, err = run(capsys, "check", "--config", str(config))
    assert code == 0  # a warning: the service runs, only the dashboard is unusable
    assert err.splitlines() == [
        "warning: nobody can log in to the dashboard yet: add a user with "
        f"`callbuddy-pbx user add NAME --config {config} --role admin`"
    ]


def test_check_lists_every_problem_one_per_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            asterisk:
              port: 99999
              hots: pbx
            businesses:
              - name: Glow Salon
                numbers: ["555-01"]
            """
        )
    )
    code, out, err = run(capsys, "check", "--config", str(config))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"{config}:2: asterisk.port: 99999 is out of range (expected a whole number from 1 to 65535)",
        f"{config}:3: asterisk.hots: unknown key (did you mean 'host'?)",
        f"{config}:6: businesses[0].numbers[0]: '555-01' is not a phone number "
        "(expected e.g. +15550001000 or a number valid in region US)",
    ]


def test_check_missing_file(tmp_path, capsys):
    code, out, err = run(capsys, "check", "--config", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert out == ""
    assert err == f"{tmp_path / 'nope.yaml'}: no such file\n"


# -- calls -----------------------------------------------------------------------------------------------------------


def test_calls_table_newest_first(tmp_path, capsys):
    now = time.time()
    db = fill(
        tmp_path / "c.sqlite3",
        [
            call("old", now - 3600, Outcome.ANSWERED, caller_name="Alice"),
            call("new", now - 60, caller=None, caller_raw="anonymous", caller_name=None),
        ],
    )
    code, out, _ = run(capsys, "calls", "--db", str(db))
    assert code == 0
    header, first, second = out.splitlines()
    assert header.split()[:3] == ["Ended", "Business", "DID"]
    assert "withheld" in first and "no_answer" in first
    assert "+15557654321" in second and "Alice" in second and "answered" in second and "PJSIP/101" in second
    assert datetime.fromtimestamp(now - 60).strftime("%Y-%m-%d %H:%M:%S") in first
    # Ring and duration seconds, right-aligned at the end: answered after 12 s of ringing, 40 s long.
    assert second.split()[-2:] == ["12", "40"]
    assert first.split()[-2:] == ["38", "40"]
    # Aligned: the outcome column starts at the same place on every line.
    assert header.index("Outcome") == first.index("no_answer") == second.index("answered")


def test_calls_table_escapes_and_bounds_caller_names(tmp_path, capsys):
    hostile = "\x1b[2J\x1b[31mEvil\u202eCorp\r\nInjected line" + "x" * 80
    db = fill(tmp_path / "c.sqlite3", [call("h", time.time(), caller_name=hostile)])
    code, out, _ = run(capsys, "calls", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2  # the CR/LF in the name did not start a line of its own
    assert "\x1b" not in out and "\u202e" not in out and "\r" not in out
    assert "\\x1b[2J\\x1b[31mEvil\\u202eCorp\\r\\nInject…" in lines[1]
    name_cell = lines[1][lines[0].index("Caller name") :].split("  ")[0]
    assert name_cell.endswith("…")
    assert len(name_cell) == 40


def test_calls_missed_filter_and_limit(tmp_path, capsys):
    now = time.time()
    db = fill(
        tmp_path / "c.sqlite3",
        [
            call("a", now - 300, Outcome.ANSWERED, caller_name="Answered Annie"),
            call("b", now - 200, Outcome.BUSY, caller_name="Busy Bob"),
            call("c", now - 100, Outcome.ABANDONED, caller_name="Gone Gina"),
        ],
    )
    _, out, _ = run(capsys, "calls", "--db", str(db), "--missed")
    assert "Busy Bob" in out and "Gone Gina" in out and "Answered Annie" not in out
    _, out, _ = run(capsys, "calls", "--db", str(db), "--limit", "1")
    assert len(out.splitlines()) == 2 and "Gone Gina" in out


def test_calls_json_lines(tmp_path, capsys):
    now = time.time()
    name = 'Robert"); DROP TABLE calls;-- <b>'
    db = fill(
        tmp_path / "c.sqlite3",
        [call("a", now - 100, Outcome.ANSWERED, caller_name=name), call("b", now - 10, caller=None, caller_name=None)],
    )
    code, out, err = run(capsys, "calls", "--db", str(db), "--json")
    assert code == 0 and err == ""
    first, second = (json.loads(line) for line in out.splitlines())
    assert list(first) == [
        "linkedid", "business", "did", "caller", "caller_raw", "caller_name", "outcome", "missed", "answered_by",
        "started_at", "ring_at", "answered_at", "ended_at", "hangup_cause", "observed_from_start", "from_cel", "legs",
    ]  # fmt: skip
    assert first["linkedid"] == "b" and first["missed"] is True and first["caller"] is None
    assert first["outcome"] == "no_answer" and first["answered_at"] is None
    assert second["caller_name"] == name and second["missed"] is False and second["answered_by"] == "PJSIP/101"
    assert second["ended_at"] == pytest.approx(now - 100)
    assert second["legs"] == [
        {
            "channel": "PJSIP/101-00000001",
            "endpoint": "PJSIP/101",
            "dial_status": "ANSWER",
            "hangup_cause": 16,
            "answered": True,
            "started_at": pytest.approx(now - 138),
            "ended_at": pytest.approx(now - 101),
        }
    ]


def test_calls_since_age_and_iso(tmp_path, capsys):
    now = time.time()
    db = fill(tmp_path / "c.sqlite3", [call("recent", now - 3600), call("older", now - 3 * 3600)])
    _, out, _ = run(capsys, "calls", "--db", str(db), "--since", "2h", "--json")
    assert [json.loads(line)["linkedid"] for line in out.splitlines()] == ["recent"]
    boundary = datetime.fromtimestamp(now - 2 * 3600).replace(microsecond=0).isoformat()  # naive = local time
    _, out, _ = run(capsys, "calls", "--db", str(db), "--since", boundary, "--json")
    assert [json.loads(line)["linkedid"] for line in out.splitlines()] == ["recent"]


@pytest.mark.parametrize(
    ("text", "seconds_ago"), [("30m", 1800), ("6h", 6 * 3600), ("2d", 2 * 86400), ("1w", 7 * 86400), ("90s", 90)]
)
def test_parse_since_ages(text, seconds_ago):
    assert parse_since(text, now=1_000_000.0) == 1_000_000.0 - seconds_ago


@pytest.fixture
def new_york_time(monkeypatch):
    """Run with a local time zone that is not UTC, so "naive means local" is really tested."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_parse_since_iso_forms(new_york_time):
    assert parse_since("2024-05-01T09:30:00") == 1_714_570_200.0  # 09:30 EDT is 13:30 UTC
    assert parse_since("2024-05-01 09:30") == 1_714_570_200.0
    assert parse_since("2024-05-01") == 1_714_536_000.0  # local midnight, 04:00 UTC
    assert parse_since("2024-05-01T09:30:00+00:00") == 1_714_555_800.0  # an explicit offset wins


@pytest.mark.parametrize("text", ["yesterday", "2h ago", "-2h", "2024-13-01", "6 hours"])
def test_calls_bad_since_is_exit_2(tmp_path, capsys, text):
    db = fill(tmp_path / "c.sqlite3", [call("a", time.time())])
    code, out, err = run(capsys, "calls", "--db", str(db), f"--since={text}")
    assert code == 2
    assert out == ""
    assert err.startswith("callbuddy-pbx calls: --since:") and "30m, 6h, 2d, 1w" in err


def test_calls_missing_database_is_an_error_and_not_created(tmp_path, capsys):
    db = tmp_path / "nothing.sqlite3"
    code, out, err = run(capsys, "calls", "--db", str(db))
    assert code == 1
    assert out == ""
    assert str(db) in err and "no such database" in err
    assert not db.exists()


def test_calls_default_database_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "calls")
    assert code == 1 and "data/callbuddy.sqlite3" in err
    fill(tmp_path / "data" / "callbuddy.sqlite3", [call("a", time.time(), caller_name="Default Dana")])
    code, out, _ = run(capsys, "calls")
    assert code == 0 and "Default Dana" in out


def test_calls_database_from_config(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AMI_SECRET", "x")
    config = tmp_path / "site.yaml"
    config.write_text(CONFIG)
    fill(tmp_path / "data" / "calls.sqlite3", [call("a", time.time(), caller_name="Configured Carl")])
    monkeypatch.chdir(tmp_path.parent)
    code, out, _ = run(capsys, "calls", "--config", str(config))
    assert code == 0 and "Configured Carl" in out


def test_calls_bad_config_is_exit_2(tmp_path, capsys):
    config = tmp_path / "site.yaml"
    config.write_text("storage:\n  paht: x\n")
    code, _, err = run(capsys, "calls", "--config", str(config))
    assert code == 2
    assert err == f"{config}:2: storage.paht: unknown key (did you mean 'path'?)\n"


def test_calls_no_match(tmp_path, capsys):
    db = fill(tmp_path / "c.sqlite3", [call("a", time.time() - 7200, Outcome.ANSWERED)])
    code, out, _ = run(capsys, "calls", "--db", str(db), "--missed")
    assert code == 0 and out == "No calls match.\n"
    code, out, err = run(capsys, "calls", "--db", str(db), "--since", "1h", "--json")
    assert code == 0 and out == "" and err == "No calls match.\n"


def test_calls_limit_must_be_positive(tmp_path, capsys):
    db = fill(tmp_path / "c.sqlite3", [call("a", time.time())])
    code, _, err = run(capsys, "calls", "--db", str(db), "--limit", "0")
    assert code == 2 and "--limit" in err


def test_calls_table_aligns_wide_characters(tmp_path, capsys):
    def columns(text: str) -> int:  # terminal columns: CJK ideographs take two
        return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)

    now = time.time()
    db = fill(
        tmp_path / "c.sqlite3", [call("a", now - 10, caller_name="山田太郎"), call("b", now - 20, caller_name="Bob")]
    )
    _, out, _ = run(capsys, "calls", "--db", str(db))
    header, first, second = out.splitlines()
    starts = {
        columns(line[: line.index(word)]) for line, word in ((header, "Outcome"), (first, "no_"), (second, "no_"))
    }
    assert len(starts) == 1
