"""`callbuddy-pbx user add | list | remove` (commands/user.py), run as an installer would."""

from __future__ import annotations

import asyncio
import getpass
import io
import stat
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from callbuddy_pbx import cli
from callbuddy_pbx.config import load_config
from callbuddy_pbx.config.users import read_users_file
from callbuddy_pbx.passwords import hash_password, verify_password
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.sessions import SessionStore

PASSWORD = "a good long password"
CONFIG = """\
businesses:
  - name: Glow Salon
    numbers: ["+15550001000"]
  - name: Bolt Garage
    numbers: ["+15550002000"]
storage:
  path: calls.sqlite3
web:
  users_file: users.yaml
"""

Run = Callable[..., tuple[int, str, str]]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    def _run(*argv: str, stdin: str | io.StringIO = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", stdin if isinstance(stdin, io.StringIO) else io.StringIO(stdin))
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def add(run: Run, config: Path, name: str, *options: str, password: str = PASSWORD) -> tuple[int, str, str]:
    return run("user", "add", name, "--config", str(config), "--password-stdin", *options, stdin=password + "\n")


def sessions(config: Path, *names: str) -> list[str]:
    """Open a session for each name (in the configuration's database); return who has sessions afterwards."""

    async def go() -> list[str]:
        async with await CallStore.open(load_config(config).storage.path) as store:
            for name in names:
                await SessionStore(store).create(name, 2_000_000_000.0)
            async with store.connection.execute("SELECT user_name FROM web_sessions ORDER BY user_name") as cursor:
                return [row[0] for row in await cursor.fetchall()]

    return asyncio.run(go())


def test_add_an_admin_and_a_business_user(run: Run, config: Path, tmp_path: Path) -> None:
    code, out, err = add(run, config, "ann", "--role", "admin")
    assert (code, err) == (0, "")
    assert "added admin 'ann' (every business)" in out
    code, out, _ = add(run, config, "bob", "--business", "Glow Salon", "--business", "Bolt Garage")
    assert code == 0 and "added business 'bob' (Glow Salon, Bolt Garage)" in out
    code, out, _ = add(run, config, "cy", "--business", "Glow Salon", "--mask-numbers")
    assert code == 0 and "added business 'cy' (Glow Salon)" in out
    users_file = tmp_path / "users.yaml"
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert PASSWORD not in users_file.read_text(encoding="utf-8")
    ann, bob, cy = load_config(config).web.users  # the file the command wrote is a valid part of the configuration
    assert (ann.name, ann.role, ann.businesses) == ("ann", "admin", ())
    # A business's own users see its callers' numbers unless the installer masks them for that user.
    assert (bob.role, bob.businesses, bob.show_numbers) == ("business", ("Glow Salon", "Bolt Garage"), True)
    assert (cy.name, cy.show_numbers) == ("cy", False)
    assert verify_password(PASSWORD, ann.password_hash) and verify_password(PASSWORD, bob.password_hash)


def test_the_password_is_asked_twice_on_a_terminal(
    run: Run, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = [PASSWORD, PASSWORD + "x", PASSWORD, PASSWORD]
    prompts: list[str] = []

    def ask(prompt: str = "") -> str:
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr(getpass, "getpass", ask)
    code, _, err = run("user", "add", "ann", "--config", str(config), "--role", "admin", stdin=Terminal())
    assert code == 2 and "the two passwords differ" in err
    assert not (tmp_path / "users.yaml").exists()
    code, _, _ = run("user", "add", "ann", "--config", str(config), "--role", "admin", stdin=Terminal())
    assert code == 0 and len(prompts) == 4
    assert verify_password(PASSWORD, read_users_file(tmp_path / "users.yaml")[0].password_hash)


def test_no_terminal_and_no_password_stdin(run: Run, config: Path) -> None:
    code, _, err = run("user", "add", "ann", "--config", str(config), "--role", "admin", stdin="piped\n")
    assert code == 2 and "--password-stdin" in err


def test_password_stdin_takes_the_first_line_exactly(run: Run, config: Path, tmp_path: Path) -> None:
    code, _, _ = run(
        "user", "add", "ann", "--config", str(config), "--role", "admin", "--password-stdin",
        stdin="  spaces count too  \r\nsecond line\n",
    )  # fmt: skip
    assert code == 0
    (ann,) = read_users_file(tmp_path / "users.yaml")
    assert verify_password("  spaces count too  ", ann.password_hash)


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (("ann", "--role", "admin"), "short", "too short: at least 10 characters"),
        (("bob",), PASSWORD, "a business user needs --business"),
        (("bob", "--business", "Glow"), PASSWORD, "--business 'Glow' is not a configured business"),
        (("ann", "--role", "admin", "--business", "Glow Salon"), PASSWORD, "an admin sees every business"),
        (("not valid!", "--role", "admin"), PASSWORD, "is not a valid user name"),
    ],
)
def test_add_refuses(
    run: Run, config: Path, tmp_path: Path, args: tuple[str, ...], password: str, message: str
) -> None:
    code, out, err = add(run, config, *args, password=password)
    assert code == 2 and message in err and out == ""
    assert not (tmp_path / "users.yaml").exists()


def test_an_existing_name_needs_replace_which_ends_their_sessions(run: Run, config: Path, tmp_path: Path) -> None:
    assert add(run, config, "bob", "--business", "Glow Salon")[0] == 0
    before = read_users_file(tmp_path / "users.yaml")
    code, _, err = add(run, config, "BOB", "--business", "Bolt Garage", password="another password")
    assert code == 2 and "'bob' already exists (add --replace" in err
    assert read_users_file(tmp_path / "users.yaml") == before
    assert sessions(config, "bob", "bob", "ann") == ["ann", "bob", "bob"]
    code, out, _ = add(run, config, "bob", "--business", "Bolt Garage", "--replace", password="another password")
    assert code == 0 and "replaced business 'bob' (Bolt Garage)" in out and "ended 2 dashboard sessions" in out
    (bob,) = read_users_file(tmp_path / "users.yaml")
    assert bob.businesses == ("Bolt Garage",) and verify_password("another password", bob.password_hash)
    assert sessions(config) == ["ann"]


def test_list_shows_users_without_their_hashes(run: Run, config: Path) -> None:
    code, out, _ = run("user", "list", "--config", str(config))
    assert code == 0 and "no dashboard users yet" in out
    add(run, config, "ann", "--role", "admin")
    add(run, config, "bob", "--business", "Glow Salon")
    code, out, _ = run("user", "list", "--config", str(config))
    assert code == 0
    assert out.splitlines() == [
        "NAME  ROLE      BUSINESSES  NUMBERS  FROM",
        "ann   admin     all         full     users file",
        "bob   business  Glow Salon  full     users file",
    ]
    assert "scrypt" not in out


def test_remove_a_user_and_their_sessions(run: Run, config: Path, tmp_path: Path) -> None:
    add(run, config, "ann", "--role", "admin")
    add(run, config, "bob", "--business", "Glow Salon")
    sessions(config, "bob", "ann")
    code, out, _ = run("user", "remove", "bob", "--config", str(config))
    assert code == 0 and "removed 'bob'" in out and "ended 1 dashboard session of 'bob'" in out
    assert [user.name for user in read_users_file(tmp_path / "users.yaml")] == ["ann"]
    assert sessions(config) == ["ann"]
    code, _, err = run("user", "remove", "bob", "--config", str(config))
    assert code == 2 and "there is no user 'bob'" in err


def test_users_written_in_the_configuration_are_changed_there(run: Run, config: Path) -> None:
    entry = f'  users: [{{name: ann, password_hash: "{hash_password(PASSWORD)}", role: admin}}]\n'
    config.write_text(CONFIG + entry, encoding="utf-8")
    code, _, err = add(run, config, "Ann", "--role", "admin", "--replace")
    assert code == 2 and "defined under web.users" in err
    code, _, err = run("user", "remove", "ann", "--config", str(config))
    assert code == 2 and "defined under web.users" in err
    code, out, _ = run("user", "list", "--config", str(config))
    assert code == 0 and "web.users" in out


def test_without_a_users_file_the_entry_is_printed_to_paste(run: Run, tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(CONFIG.replace("  users_file: users.yaml\n", "  host: 127.0.0.1\n"), encoding="utf-8")
    code, out, err = add(run, config, "bob", "--business", "Glow Salon")
    assert code == 2
    assert "users_file: users.yaml" in err
    assert list(tmp_path.iterdir()) == [config]
    # What was printed is an entry to paste under web.users as it is.
    pasted = CONFIG.replace("  users_file: users.yaml\n", "  users:\n" + textwrap.indent(out, "    "))
    config.write_text(pasted, encoding="utf-8")
    (bob,) = load_config(config).web.users
    assert bob.businesses == ("Glow Salon",) and verify_password(PASSWORD, bob.password_hash)
    assert yaml.safe_load(out)[0]["name"] == "bob"


def test_a_configuration_with_problems_is_reported(run: Run, tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("web:\n  users_file: users.yaml\n  session_hours: -1\n", encoding="utf-8")
    code, _, err = run("user", "list", "--config", str(config))
    assert code == 2 and f"{config}:3: web.session_hours" in err


def test_user_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["user"])
    assert info.value.code == 2
