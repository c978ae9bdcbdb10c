"""Hostile or mistaken configuration files get one clear problem each, never a traceback, a hang or a leaked secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from callbuddy_pbx.config import ConfigError, load_config
from callbuddy_pbx.config.reader import MAX_DEPTH, MAX_FILE_BYTES


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_yaml_nested_thousands_of_levels_is_one_clear_problem(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problems_of(path) == [f"{path}: YAML error: nested more than {MAX_DEPTH} levels deep"]


def test_nesting_just_past_the_limit_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("asterisk:\n  host: 127.0.0.1\nweb:\n  users: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:4: ") and f"nested more than {MAX_DEPTH} levels deep" in problem


def test_nesting_at_the_limit_is_read(tmp_path: Path) -> None:
    """The limit refuses only what is deeper: a file exactly MAX_DEPTH deep reaches the section checks."""
    path = tmp_path / "ok.yaml"
    path.write_text("web:\n  users: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n")
    assert not any("nested" in problem for problem in problems_of(path))


def test_a_file_larger_than_the_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    assert problems_of(path) == [
        f"{path}: cannot read: larger than {MAX_FILE_BYTES // 1024} KiB (is it the right file?)"
    ]


def test_a_users_file_that_never_ends_is_a_problem_of_that_file(tmp_path: Path) -> None:
    config = tmp_path / "callbuddy.yaml"
    config.write_text("web:\n  users_file: /dev/zero\n")
    problems = problems_of(config)
    assert problems == [f"/dev/zero: cannot read: larger than {MAX_FILE_BYTES // 1024} KiB (is it the right file?)"]


def test_an_environment_value_that_fails_a_check_is_never_printed(tmp_path: Path, monkeypatch) -> None:
    secret = "hunter2-not-a-port"
    monkeypatch.setenv("CB_PORT", secret)
    monkeypatch.setenv("CB_USER", "x" * 200)  # long: `shown` would cut it, and the cut form must not leak either
    path = tmp_path / "callbuddy.yaml"
    path.write_text("asterisk:\n  port: ${CB_PORT}\n  username: ${CB_USER}\nweb:\n  port: ${CB_PORT:-8080}\n")
    problems = problems_of(path)
    text = "\n".join(problems)
    assert secret not in text and "hunter2" not in text
    assert f"{path}:2: asterisk.port: (the value of $CB_PORT) is not a whole number" in text
    assert f"{path}:5: web.port: (the value of $CB_PORT) is not a whole number" in text


def test_check_says_it_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "callbuddy_pbx", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert f"{path}: YAML error: nested more than {MAX_DEPTH} levels deep" in done.stderr + done.stdout
