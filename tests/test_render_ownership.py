"""`render` leaves files Asterisk can read: a replaced file keeps its owner, group and mode, a new one gets the
folder's owner and group, and `--owner` sets both. CI runs as root, so the files are given other ids for real."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from callbuddy_pbx.cli import main

GOLDEN = Path(__file__).resolve().parent / "golden"
SALON = GOLDEN / "salon" / "callbuddy.yaml"
CLINIC = GOLDEN / "clinic" / "callbuddy.yaml"  # other phones and trunk: pjsip.conf differs from the salon's
ASTERISK = (4321, 8765)  # an asterisk user and group that are not the test's own


def render(config: Path, out: Path, *extra: str) -> int:
    return main(["render", "--config", str(config), "--out", str(out), *extra])


def ids_and_mode(path: Path) -> tuple[int, int, int]:
    found = path.stat()
    return found.st_uid, found.st_gid, stat.S_IMODE(found.st_mode)


def test_a_replaced_file_keeps_its_owner_group_and_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render(SALON, tmp_path) == 0
    pjsip = tmp_path / "pjsip.conf"
    os.chown(pjsip, *ASTERISK)
    pjsip.chmod(0o600)
    before = pjsip.read_text()
    assert render(CLINIC, tmp_path) == 0
    assert f"written    {pjsip}" in capsys.readouterr().out
    assert pjsip.read_text() != before
    assert ids_and_mode(pjsip) == (*ASTERISK, 0o600)


def test_a_new_file_gets_the_folders_owner_and_group(tmp_path: Path) -> None:
    out = tmp_path / "asterisk"
    out.mkdir()
    os.chown(out, *ASTERISK)
    assert render(SALON, out) == 0
    for file in out.iterdir():
        assert ids_and_mode(file) == (*ASTERISK, 0o640), file.name


def test_owner_option_sets_every_file_also_an_unchanged_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render(SALON, tmp_path) == 0
    capsys.readouterr()
    assert render(SALON, tmp_path, "--owner", "4321:8765") == 0
    out = capsys.readouterr().out
    assert f"owner set  {tmp_path / 'pjsip.conf'} (4321:8765)" in out
    assert "unchanged" not in out
    for file in tmp_path.glob("*.conf"):
        assert ids_and_mode(file)[:2] == ASTERISK, file.name
    assert render(SALON, tmp_path) == 0  # without --owner: left as they are
    assert capsys.readouterr().out.count("unchanged") == len(list(tmp_path.glob("*.conf")))


@pytest.mark.parametrize(
    ("owner", "message"),
    [
        ("asterisk", "expected USER:GROUP, e.g. asterisk:asterisk"),
        ("no-such-user-cb:0", "no user 'no-such-user-cb' on this system"),
        ("0:no-such-group-cb", "no group 'no-such-group-cb' on this system"),
    ],
)
def test_a_wrong_owner_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], owner: str, message: str
) -> None:
    assert render(SALON, tmp_path / "out", "--owner", owner) == 2
    assert capsys.readouterr().err == f"callbuddy-pbx render: --owner {owner}: {message}\n"
    assert not (tmp_path / "out").exists()


def test_an_owner_that_cannot_be_given_is_one_line_and_leaves_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refuse)  # what a user other than root gets for another owner
    assert render(SALON, tmp_path, "--owner", "4321:8765") == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("callbuddy-pbx render: cannot give ")
    assert line.endswith("the owner 4321:8765 (operation not permitted): run render as root, or with --owner")
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind, nothing half-written
