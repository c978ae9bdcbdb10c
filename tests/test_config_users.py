"""Dashboard users in the configuration (config_users.py): web.users, web.users_file and the login settings."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from callbuddy_pbx.config import WebConfig, WebUser, load_config
from callbuddy_pbx.config.users import (
    UsersFileError,
    read_users_file,
    write_users_file,
)
from callbuddy_pbx.config.web import LiveUsers
from callbuddy_pbx.passwords import hash_password
from tests.config_files import Write
from tests.config_files import problems_of as config_problems

HASH = hash_password("first password")
OTHER = hash_password("second password")
SALT = HASH.split("$")[4]

HEAD = """\
businesses:
  - name: Glow Salon
    numbers: ["+15550001000"]
  - name: Bolt Garage
    numbers: ["+15550002000"]
"""


def problems_of(path: Path) -> list[str]:
    problems = config_problems(path)
    assert all(SALT not in problem for problem in problems)  # hashes are never quoted
    return problems


def test_inline_users_and_the_users_file(write: Write, tmp_path: Path) -> None:
    write(
        f"""\
        - name: bob
          password_hash: "{OTHER}"
          businesses: [Bolt Garage]
          show_numbers: yes
        """,
        "conf/users.yaml",
    )
    path = write(
        HEAD
        + f"""\
web:
  users:
    - {{name: ann, password_hash: "{HASH}", role: admin}}
  users_file: users.yaml
  session_hours: 8
  secure_cookies: ALWAYS
""",
        "conf/site.yaml",
    )
    web = load_config(path).web
    assert web.users == (
        WebUser("ann", HASH, "admin"),
        WebUser("bob", OTHER, "business", ("Bolt Garage",), show_numbers=True),
    )
    assert web.users_file == tmp_path / "conf" / "users.yaml"  # next to the configuration, wherever we run
    assert (web.session_hours, web.secure_cookies) == (8.0, "always")
    assert HASH not in repr(web)


def test_defaults_and_a_users_file_that_does_not_exist_yet(write: Write, tmp_path: Path) -> None:
    assert load_config(write(HEAD)).web == WebConfig()
    web = load_config(write(HEAD + "web:\n  users_file: /nonexistent-dir/users.yaml\n")).web
    assert web.users == () and web.users_file == Path("/nonexistent-dir/users.yaml")


def test_user_problems(write: Write) -> None:
    path = write(
        HEAD
        + f"""\
web:
  users:
    - {{name: ann, password_hash: "{HASH}", role: admin, businesses: [Glow Salon]}}
    - {{name: bob, password_hash: "{HASH}"}}
    - {{name: carl, password_hash: "{HASH}", businesses: [Glow Salom, Bolt Garage]}}
    - {{name: dee, password_hash: "{HASH}x!", businesses: [Glow Salon]}}
    - {{name: eve, password_hash: "{HASH}", role: boss, businesses: [Glow Salon]}}
    - {{password_hash: "{HASH}"}}
    - {{name: "has space", password_hash: "{HASH}", role: admin}}
    - {{name: Ann, password_hash: "{HASH}", role: admin}}
    - {{name: fay, password_hash: "{HASH}", role: admin, password: x}}
    - {{name: gus, password_hash: "{HASH}", businesses: []}}
    - {{name: hal, password_hash: "{HASH}", role: admin, show_numbers: maybe}}
    - {{name: ivy, password_hash: "scrypt$1$2$3$4$5", role: admin}}
  session_hours: 721
  secure_cookies: sometimes
"""
    )
    assert problems_of(path) == [
        f"{path}:8: web.users[0].businesses: an admin sees every business (leave businesses out)",
        f"{path}:9: web.users[1]: a business user needs `businesses` (the businesses whose calls they see)",
        f"{path}:10: web.users[2].businesses[0]: 'Glow Salom' is not a configured business "
        "(did you mean 'Glow Salon'?)",
        f"{path}:11: web.users[3].password_hash: the salt or the hash is not valid base64",
        f"{path}:12: web.users[4].role: 'boss' is not allowed (expected one of: admin, business)",
        f"{path}:13: web.users[5]: missing required key 'name'",
        f"{path}:13: web.users[5]: a business user needs `businesses` (the businesses whose calls they see)",
        f"{path}:14: web.users[6].name: 'has space' is not a valid user name "
        "(letters, digits, '.', '_', '-', '@', '+'; at most 64)",
        f"{path}:15: web.users[7].name: 'Ann' is already used (line 8)",
        f"{path}:16: web.users[8].password: unknown key (did you mean 'password_hash'?)",
        f"{path}:17: web.users[9]: a business user needs `businesses` (the businesses whose calls they see)",
        f"{path}:18: web.users[10].show_numbers: 'maybe' is not true or false",
        f"{path}:19: web.users[11].password_hash: the scrypt parameter N must be a power of two from 16384 to 1048576",
        f"{path}:20: web.session_hours: 721 is too long (at most 720)",
        f"{path}:21: web.secure_cookies: 'sometimes' is not allowed (expected one of: auto, always, never)",
    ]


def test_a_business_user_sees_full_numbers_unless_mask_numbers(write: Write) -> None:
    path = write(
        HEAD
        + f"""\
web:
  users:
    - {{name: owner, password_hash: "{HASH}", businesses: [Glow Salon]}}
    - {{name: desk, password_hash: "{HASH}", businesses: [Glow Salon], mask_numbers: true}}
    - {{name: old, password_hash: "{HASH}", businesses: [Glow Salon], show_numbers: false}}
    - {{name: both, password_hash: "{HASH}", businesses: [Glow Salon], mask_numbers: false, show_numbers: true}}
    - {{name: ann, password_hash: "{HASH}", role: admin, show_numbers: false}}
"""
    )
    shown = {user.name: user.show_numbers for user in load_config(path).web.users}
    # `show_numbers: false` (the older key) still masks; an admin's old entry keeps full numbers.
    assert shown == {"owner": True, "desk": False, "old": False, "both": True, "ann": True}


def test_mask_numbers_problems(write: Write) -> None:
    path = write(
        HEAD
        + f"""\
web:
  users:
    - {{name: a, password_hash: "{HASH}", businesses: [Glow Salon], mask_numbers: true, show_numbers: true}}
    - {{name: b, password_hash: "{HASH}", role: admin, mask_numbers: true}}
    - {{name: c, password_hash: "{HASH}", businesses: [Glow Salon], mask_numbers: sometimes}}
"""
    )
    assert problems_of(path) == [
        f"{path}:8: web.users[0].show_numbers: contradicts mask_numbers (keep one)",
        f"{path}:9: web.users[1].mask_numbers: an admin always sees full numbers",
        f"{path}:10: web.users[2].mask_numbers: 'sometimes' is not true or false",
    ]


def test_missing_password_hash_and_zero_hours(write: Write) -> None:
    path = write(HEAD + "web:\n  users: [{role: admin}]\n  session_hours: 0\n")
    assert problems_of(path) == [
        f"{path}:7: web.users[0]: missing required keys 'name', 'password_hash'",
        f"{path}:8: web.session_hours: 0 is not allowed (expected a positive number of hours)",
    ]


def test_problems_in_the_users_file_name_that_file(write: Write, tmp_path: Path) -> None:
    users = write(
        f"""\
        - name: ann
          password_hash: "{HASH}"
          role: admin
        - name: ANN
          password_hash: "{HASH}"
          role: admin
        - {{name: bob, password_hash: nope, businesses: [Nowhere]}}
        """,
        "users.yaml",
    )
    path = write(
        HEAD
        + f"""\
web:
  users:
    - {{name: ann, password_hash: "{HASH}", role: admin}}
  users_file: users.yaml
  secure_cookies: maybe
"""
    )
    assert problems_of(path) == [
        f"{users}:1: users[0].name: 'ann' is already used ({path}:8)",
        f"{users}:4: users[1].name: 'ANN' is already used ({path}:8)",
        f"{users}:7: users[2].password_hash: not a password hash "
        "(expected scrypt$N$r$p$salt$hash, as written by `callbuddy-pbx user add`)",
        f"{users}:7: users[2].businesses[0]: 'Nowhere' is not a configured business "
        "(expected one of: Bolt Garage, Glow Salon)",
        f"{path}:10: web.secure_cookies: 'maybe' is not allowed (expected one of: auto, always, never)",
    ]


def test_a_users_file_that_cannot_be_read_or_parsed(write: Write, tmp_path: Path) -> None:
    (tmp_path / "folder.yaml").mkdir()
    path = write(HEAD + "web:\n  users_file: folder.yaml\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{tmp_path / 'folder.yaml'}: cannot read: ")
    write("- name: ann\n  password_hash: [unclosed\n", "users.yaml")
    path = write(HEAD + "web:\n  users_file: users.yaml\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{tmp_path / 'users.yaml'}:3: YAML syntax error:")
    write("name: ann\n", "users.yaml")
    assert problems_of(path) == [f"{tmp_path / 'users.yaml'}:1: users: expected a list, got a mapping"]
    write("# nobody yet\n", "users.yaml")
    assert load_config(path).web.users == ()


def test_api_tokens_may_only_name_configured_businesses(write: Write) -> None:
    token = "t" * 30
    path = write(HEAD + f"web:\n  api_tokens:\n    - {{name: a, token: {token}, businesses: [Glow Salon, Bolt]}}\n")
    assert problems_of(path) == [
        f"{path}:8: web.api_tokens[0].businesses[1]: 'Bolt' is not a configured business "
        "(expected one of: Bolt Garage, Glow Salon)"
    ]
    path = write(f"web:\n  api_tokens:\n    - {{name: a, token: {token}, businesses: [Glow Salon]}}\n")
    assert problems_of(path) == [
        f"{path}:3: web.api_tokens[0].businesses[0]: 'Glow Salon' is not a configured business "
        "(no businesses are configured)"
    ]


# -- the users file on its own -----------------------------------------------------------------------------------


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    users = [
        WebUser("ann", HASH, "admin"),
        WebUser("bob", OTHER, "business", ("Glow Salon", "Bolt Garage")),
        WebUser("zoë", OTHER, "business", ("Glow Salon",), show_numbers=False),
    ]
    write_users_file(path, users)
    assert read_users_file(path) == users
    assert path.read_text(encoding="utf-8").count("mask_numbers: true") == 1  # zoë's, in the key people write
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["users.yaml"]  # no temporary file left behind
    write_users_file(path, [])
    assert read_users_file(path) == []
    assert read_users_file(tmp_path / "missing.yaml") == []


def test_read_users_file_checks_businesses_when_given(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    write_users_file(path, [WebUser("bob", OTHER, "business", ("Gone",))])
    assert read_users_file(path)[0].businesses == ("Gone",)
    with pytest.raises(UsersFileError) as info:
        read_users_file(path, ["Glow Salon"])
    assert info.value.problems == [
        f"{path}:6: users[0].businesses[0]: 'Gone' is not a configured business (expected one of: Glow Salon)"
    ]


def test_a_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "users.yaml"
    write_users_file(path, [WebUser("ann", HASH, "admin")])

    def broken(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_users_file(path, [])
    assert read_users_file(path) == [WebUser("ann", HASH, "admin")]
    assert sorted(os.listdir(tmp_path)) == ["users.yaml"]


# -- a running service -------------------------------------------------------------------------------------------


def test_live_users_follow_the_file(write: Write, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    users_file = tmp_path / "users.yaml"
    write_users_file(users_file, [WebUser("bob", OTHER, "business", ("Glow Salon",))])
    path = write(
        HEAD + f'web:\n  users: [{{name: ann, password_hash: "{HASH}", role: admin}}]\n  users_file: users.yaml\n'
    )
    config = load_config(path)
    live = LiveUsers(config.web, [business.name for business in config.businesses])
    assert [user.name for user in live()] == ["ann", "bob"]
    write_users_file(users_file, [WebUser("carl", OTHER, "business", ("Bolt Garage",))])  # `user add`, `remove`
    assert [user.name for user in live()] == ["ann", "carl"]
    users_file.write_text("- {name: carl, role: boss}\n", encoding="utf-8")  # a bad hand edit: fail closed
    assert [user.name for user in live()] == ["ann"]
    assert "cannot log in until it is fixed" in caplog.text
    users_file.unlink()
    assert [user.name for user in live()] == ["ann"]
    write_users_file(users_file, [WebUser("ANN", OTHER, "admin"), WebUser("dee", OTHER, "admin")])
    assert [user.name for user in live()] == ["ann", "dee"]  # the inline ann wins over the file's
    assert HASH.split("$")[-1] not in caplog.text and OTHER.split("$")[-1] not in caplog.text


def test_live_users_without_a_file(write: Write) -> None:
    path = write(HEAD + f'web:\n  users: [{{name: ann, password_hash: "{HASH}", role: admin}}]\n')
    live = LiveUsers(load_config(path).web)
    assert [user.name for user in live()] == ["ann"]
