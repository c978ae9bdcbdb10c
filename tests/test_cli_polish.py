"""The CLI's rough edges (issue 13, item 6), through the real entry point: a problem the user can fix is one line on
stderr naming it, never a traceback, and a non-zero exit code; `--version`; a description on every `--help` page."""

from __future__ import annotations

import argparse
import importlib.metadata
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callbuddy_pbx.cli import build_parser, main
from callbuddy_pbx.model import CallRecord, Outcome
from tests.test_cli_calls_check import fill

EXE = Path(sys.executable).with_name("callbuddy-pbx")
GOLDEN_SALON = Path(__file__).resolve().parent / "golden" / "salon" / "callbuddy.yaml"

CONFIG = """\
asterisk:
  host: 127.0.0.1
  port: {ami_port}
  username: callbuddy
  secret: not-a-real-secret
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
    timezone: America/New_York
  - name: Bright Dental
    numbers: ["+1 555 000 2000"]
    timezone: America/New_York
inbound:
  contexts: [from-trunk]
storage:
  path: {storage}
web:
  host: 127.0.0.1
  port: {web_port}
"""


def write_config(folder: Path, storage: str = "data/calls.sqlite3", ami_port: int = 1) -> Path:
    config = folder / "site.yaml"
    config.write_text(CONFIG.format(storage=storage, ami_port=ami_port, web_port=free_port()))
    return config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def one_line(err: str) -> str:
    """The single line a problem must come out as."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def call(linkedid: str, ended_at: float, business: str = "Glow Salon") -> CallRecord:
    return CallRecord(
        linkedid=linkedid,
        business=business,
        did="+15550001000",
        caller="+15557654321",
        caller_raw="+15557654321",
        caller_name="A caller with a long enough name to fill the pipe",
        outcome=Outcome.NO_ANSWER,
        answered_by=None,
        started_at=ended_at - 40,
        ring_at=ended_at - 38,
        answered_at=None,
        ended_at=ended_at,
        hangup_cause=16,
        legs=(),
    )


# -- tracebacks become one line --------------------------------------------------------------------------------------


def test_calls_into_a_pipe_closed_early_exits_quietly(tmp_path: Path) -> None:
    now = time.time()
    db = fill(tmp_path / "calls.sqlite3", [call(f"1700000000.{i}", now - i) for i in range(2000)])
    # `callbuddy-pbx calls | head -n 1`: 2,000 rows are far more than a pipe's buffer, so the writer meets the
    # closed pipe while it still prints.
    with subprocess.Popen(
        [EXE, "calls", "--db", str(db), "--limit", "2000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith(b"Ended")
        process.stdout.close()
        err = process.stderr.read().decode()
        assert process.wait(timeout=30) == 141  # 128 + SIGPIPE, as a shell reports `yes | head`
    assert err == ""


def test_render_to_a_folder_it_cannot_create_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    code, out, err = run_cli(capsys, "render", "--config", str(GOLDEN_SALON), "--out", str(blocker / "asterisk"))
    assert code == 1
    assert out == ""
    line = one_line(err)
    assert line.startswith("callbuddy-pbx render: cannot create the output folder ")
    assert str(blocker / "asterisk") in line


def test_render_to_a_file_says_it_is_not_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    code, _, err = run_cli(capsys, "render", "--config", str(GOLDEN_SALON), "--out", str(blocker))
    assert code == 1
    assert "cannot create the output folder" in one_line(err)
    assert str(blocker) in err


def test_render_over_a_file_it_cannot_replace_says_which(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pjsip.conf").mkdir()  # where render would write a file: neither readable nor replaceable
    code, _, err = run_cli(capsys, "render", "--config", str(GOLDEN_SALON), "--out", str(tmp_path))
    assert code == 1
    line = one_line(err)
    assert line.startswith("callbuddy-pbx render: cannot read ")
    assert str(tmp_path / "pjsip.conf") in line


def test_run_with_a_storage_folder_it_cannot_create_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").write_text("a file where the folder should be\n")
    config = write_config(tmp_path, storage="data/calls.sqlite3")
    code, out, err = run_cli(capsys, "run", "--config", str(config))
    assert code == 1
    assert out == ""
    assert one_line(err) == (
        f"callbuddy-pbx run: cannot write the database folder {tmp_path / 'data'}: it is a file, not a folder"
    )


def test_run_with_a_storage_folder_below_a_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "data").write_text("a file\n")
    config = write_config(tmp_path, storage="data/callbuddy/calls.sqlite3")
    code, _, err = run_cli(capsys, "run", "--config", str(config))
    assert code == 1
    assert one_line(err).startswith(f"callbuddy-pbx run: cannot write the database folder {tmp_path / 'data'}")


def test_an_os_error_naming_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A command that does not check its folder itself (demo): the entry point still names the file and the reason.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    code, _, err = run_cli(capsys, "demo", "--data-dir", str(blocker / "demo"), "--calls", "1", "--port", "0")
    assert code == 1
    assert one_line(err).startswith(f"callbuddy-pbx demo: {blocker}")


# -- --version and --help --------------------------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata() -> None:
    result = subprocess.run([EXE, "--version"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0
    assert result.stdout == f"callbuddy-pbx {importlib.metadata.version('callbuddy-pbx')}\n"
    assert result.stderr == ""


def _subcommands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((*prefix, name))
                    walk(sub, (*prefix, name))

    walk(build_parser(), ())
    return found


@pytest.mark.parametrize("command", _subcommands(), ids=" ".join)
def test_every_subcommand_help_has_a_description(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    usage, _, rest = out.partition("\n\n")
    assert usage.startswith(f"usage: callbuddy-pbx {' '.join(command)}")
    description = rest.split("\n\n")[0]
    assert not description.startswith(("positional arguments", "options")), out
    assert len(description.split()) >= 4


def test_a_command_help_opens_with_its_module_docstring(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "`callbuddy-pbx replay FILE`: classify the inbound calls of a recorded AMI stream" in out


# -- an unknown business ---------------------------------------------------------------------------------------------


def test_stats_for_a_misspelt_business_names_the_closest_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill(tmp_path / "data" / "calls.sqlite3", [call("1700000000.1", time.time() - 60)])
    code, out, err = run_cli(capsys, "stats", "--config", str(config), "--business", "Glow Salonn")
    assert code == 2
    assert out == ""
    assert one_line(err) == (
        "callbuddy-pbx stats: --business: 'Glow Salonn' is not a business configured (did you mean 'Glow Salon'?)"
    )


def test_stats_for_a_configured_business_still_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    fill(tmp_path / "data" / "calls.sqlite3", [call("1700000000.1", time.time() - 60)])
    code, out, err = run_cli(capsys, "stats", "--config", str(config), "--business", "Glow Salon")
    assert (code, err) == (0, "")
    assert "Inbound calls 1" in out


def test_stats_with_only_a_database_knows_its_businesses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = fill(tmp_path / "calls.sqlite3", [call("1700000000.1", time.time() - 60, business="Bright Dental")])
    code, _, err = run_cli(capsys, "stats", "--db", str(db), "--business", "Nowhere At All")
    assert code == 2
    assert one_line(err) == (
        "callbuddy-pbx stats: --business: 'Nowhere At All' is not a business in the database (known: 'Bright Dental')"
    )


# -- replay ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", bytes(range(256)) * 8], ids=["empty", "binary"])
def test_replay_of_something_that_is_not_an_ami_stream_says_so(
    data: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "random.raw"
    raw.write_bytes(data)
    code, out, err = run_cli(capsys, "replay", str(raw))
    assert code == 1
    assert out == ""
    assert one_line(err) == (
        f"callbuddy-pbx replay: no AMI events in {raw} (expected a stream recorded from the AMI socket)"
    )


# -- run logs its start and its stop ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_run_logs_its_start_and_why_it_stopped(sig: signal.Signals, tmp_path: Path) -> None:
    config = write_config(tmp_path)  # AMI on port 1: nothing answers, the service keeps retrying
    with subprocess.Popen(
        [EXE, "run", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stderr is not None
        lines: list[str] = []
        while line := process.stderr.readline():  # the service logs a retry now and then: never silent for long
            lines.append(line)
            if "watching Asterisk" in line:
                break
        else:
            pytest.fail("".join(lines))
        process.send_signal(sig)
        _, rest = process.communicate(timeout=30)
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    version = importlib.metadata.version("callbuddy-pbx")
    assert f"callbuddy-pbx {version} starting with {config}: Asterisk AMI at 127.0.0.1:1, database " in log
    assert f"{sig.name} received: stopping" in log
    assert f"stopped on {sig.name}: calls drained to {tmp_path / 'data' / 'calls.sqlite3'}, database closed" in log
    assert "Traceback" not in log
