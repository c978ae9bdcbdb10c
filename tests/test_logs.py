"""One record is one safe line: untrusted text cannot forge a line, and other libraries never print a number."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from callbuddy_pbx.config import load_config
from callbuddy_pbx.service.logs import setup_logging
from tests.config_files import problems_of

NUMBER = "+15550001234"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    assert logging.getLogger("callbuddy_pbx").level == logging.NOTSET  # nothing left behind on our loggers


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_newline_in_untrusted_text_cannot_forge_a_line(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    setup_logging("INFO", fmt)
    caller_name = "Jane\n12:00:00 ERROR    callbuddy_pbx.service.app: forged\r\x1b[2J\u2028"
    logging.getLogger("callbuddy_pbx.asterisk.tracker").info("caller %s rang", caller_name)
    (line,) = lines(capsys)
    message = json.loads(line)["msg"] if fmt == "json" else line
    assert "\\n12:00:00 ERROR" in message and "\\r\\x1b[2J\\u2028" in message


def test_other_libraries_stay_at_warning_when_ours_log_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("DEBUG")
    logging.getLogger("aiosqlite").debug("executing %s with (%r,)", "INSERT INTO calls", NUMBER)
    logging.getLogger("callbuddy_pbx.recovery.outbox").debug("sending")
    (line,) = lines(capsys)
    assert line.endswith("callbuddy_pbx.recovery.outbox: sending")


def test_other_libraries_asked_for_debug_still_never_print_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("DEBUG", library_level="DEBUG")
    logging.getLogger("aiosqlite").debug("executing %s with (%r,)", "INSERT INTO calls", NUMBER)
    (line,) = lines(capsys)
    assert "INSERT INTO calls" in line and NUMBER not in line and "+155******34" in line


def test_library_level_is_read_from_the_config(write) -> None:
    config = load_config(write("logging:\n  level: debug\n  library_level: info\n"))
    assert (config.logging.level, config.logging.library_level) == ("DEBUG", "INFO")
    assert load_config(write("logging:\n  level: debug\n")).logging.library_level == "WARNING"
    (problem,) = problems_of(write("logging:\n  library_level: loud\n"))
    assert ":2: logging.library_level: " in problem
