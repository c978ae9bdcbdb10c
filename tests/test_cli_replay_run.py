"""`callbuddy-pbx replay` and `run` as an installer uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callbuddy_pbx.cli import main
from tests.traces import TRACES_DIR


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]], str]:
    code = main(["replay", *args])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_replay_prints_one_json_object_per_inbound_call(capsys: pytest.CaptureFixture[str]) -> None:
    code, calls, _ = replay(capsys, str(TRACES_DIR / "09-two-concurrent-calls" / "ami.raw"))
    assert code == 0
    assert [(c["caller"], c["did"], c["outcome"], c["missed"], c["answered_by"]) for c in calls] == [
        ("+15557654321", "+15550001000", "answered", False, "PJSIP/101"),
        ("+15553334444", "+15550001004", "no_answer", True, None),
    ]
    assert all(isinstance(c["linkedid"], str) and c["linkedid"] for c in calls)


def test_replay_with_a_config_reports_only_the_businesses_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("businesses:\n  - name: Glow Salon\n    numbers: ['+1 555 000 1000']\n")
    code, calls, _ = replay(capsys, str(TRACES_DIR / "09-two-concurrent-calls" / "ami.raw"), "--config", str(config))
    assert code == 0
    assert [(c["business"], c["did"], c["outcome"]) for c in calls] == [("Glow Salon", "+15550001000", "answered")]


def test_replay_of_a_missing_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, calls, err = replay(capsys, str(tmp_path / "nope.raw"))
    assert (code, calls) == (2, [])
    assert "nope.raw" in err


def test_run_with_a_broken_config_lists_the_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("asterisk:\n  port: lots\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:2: asterisk.port" in err
