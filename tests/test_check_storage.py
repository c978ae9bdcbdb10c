"""`check` says when the service's user cannot keep its database or read its users file (issue 13).

The service runs as its own user (`callbuddy` under systemd and in the image), so these run `check` as a user that
owns nothing here: `nobody` when the tests run as root (root may write anywhere), else the tests' own user with the
permissions taken away.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from callbuddy_pbx.cli import main

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534

CONFIG = """\
asterisk: {{host: 127.0.0.1, port: 5038, username: callbuddy, secret: s3cret}}
businesses:
  - name: Glow Salon
    numbers: ["+15550001000"]
    timezone: America/New_York
web:
  users_file: {users}
storage:
  path: {database}
"""


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder every user may enter (pytest's tmp_path is private to its owner)."""
    with tempfile.TemporaryDirectory(prefix="callbuddy-check-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def write_config(folder: Path, database: Path, users: Path) -> Path:
    config = folder / "callbuddy.yaml"
    config.write_text(CONFIG.format(database=database, users=users))
    config.chmod(0o644)
    return config


def check_as_service_user(config: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "callbuddy_pbx", "check", "--offline", "--config", str(config)]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=config.parent, timeout=60, check=False)


def test_a_missing_storage_folder_is_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "var" / "lib" / "callbuddy" / "callbuddy.sqlite3"
    config = write_config(tmp_path, database, tmp_path / "users.yaml")
    assert main(["check", "--offline", "--config", str(config)]) == 0
    assert database.parent.is_dir()
    assert "error" not in capsys.readouterr().err


def test_a_storage_folder_that_cannot_be_created_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").write_text("a file where the folder should be\n")
    config = write_config(tmp_path, tmp_path / "data" / "callbuddy.sqlite3", tmp_path / "users.yaml")
    assert main(["check", "--offline", "--config", str(config)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: the storage folder {tmp_path / 'data'} (storage.path) is not writable by "
        f"user {_name()} (uid {os.geteuid()}): File exists"
    ]


def test_a_storage_folder_the_service_user_cannot_write_is_reported(folder: Path) -> None:
    state = folder / "state"
    state.mkdir(mode=0o555)
    state.chmod(0o555)  # the umask may have taken bits away, not added them
    result = check_as_service_user(write_config(folder, state / "callbuddy.sqlite3", folder / "users.yaml"))
    assert result.returncode == 1, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: the storage folder {state} (storage.path) is not writable by ")
    assert line.endswith(": Permission denied")
    assert "Traceback" not in result.stderr


def test_a_database_the_service_user_cannot_write_is_reported(folder: Path) -> None:
    state = folder / "state"
    state.mkdir()
    state.chmod(0o777)
    database = state / "callbuddy.sqlite3"
    database.write_bytes(b"")
    database.chmod(0o444)
    result = check_as_service_user(write_config(folder, database, folder / "users.yaml"))
    assert result.returncode == 1, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: the database {database} (storage.path) cannot be written by ")


def test_a_users_file_the_service_user_cannot_read_is_reported(folder: Path) -> None:
    state = folder / "state"
    state.mkdir()
    state.chmod(0o777)
    users = state / "users.yaml"
    users.write_text("[]\n")
    users.chmod(0o600)
    if os.geteuid() != 0:
        users.chmod(0o000)
    result = check_as_service_user(write_config(folder, state / "callbuddy.sqlite3", users))
    assert result.returncode != 0
    assert str(users) in result.stderr and "ermission denied" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_users_file_in_a_missing_folder_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    users = tmp_path / "no-such-folder" / "users.yaml"
    config = write_config(tmp_path, tmp_path / "callbuddy.sqlite3", users)
    assert main(["check", "--offline", "--config", str(config)]) == 1
    assert f"error: the folder of the users file {users} (web.users_file) does not exist" in capsys.readouterr().err


def test_a_usable_setup_passes_as_the_service_user(folder: Path) -> None:
    state = folder / "state"
    state.mkdir()
    state.chmod(0o777)
    result = check_as_service_user(write_config(folder, state / "callbuddy.sqlite3", state / "users.yaml"))
    assert result.returncode == 0, result.stderr


def _name() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
