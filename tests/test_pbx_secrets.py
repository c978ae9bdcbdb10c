"""Derived and generated SIP secrets, and `callbuddy-pbx secrets`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.render import render_all
from callbuddy_pbx.cli import main
from callbuddy_pbx.config import load_config
from callbuddy_pbx.config.derived_secrets import DERIVED_CHARS, derive_secret, generate_secret

KEY = "0123456789abcdef0123456789abcdef-key"
URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def test_derived_secret_is_stable() -> None:
    assert derive_secret(KEY, "100") == derive_secret(KEY, "100")
    # Pinned: a change here changes every `auto` phone's password in the field (all phones must be re-provisioned).
    assert derive_secret("k" * 32, "100") == "Y52w42av4C7Ab_uB_1zunjJy"


def test_derived_secret_is_distinct_per_extension_and_key() -> None:
    per_extension = {derive_secret(KEY, str(extension)) for extension in range(10, 1010)}
    assert len(per_extension) == 1000
    assert derive_secret(KEY, "100") != derive_secret(KEY + "x", "100")
    assert derive_secret(KEY, "100") != derive_secret(KEY, "1000")
    assert derive_secret(KEY, "10") != derive_secret(KEY, "010")


def test_derived_secret_charset_and_length() -> None:
    for extension in ("10", "100", "999999"):
        secret = derive_secret(KEY, extension)
        assert len(secret) == DERIVED_CHARS == 24
        assert URL_SAFE.fullmatch(secret)


def test_derived_secret_needs_a_key() -> None:
    with pytest.raises(ValueError, match="secret_key"):
        derive_secret("", "100")


def test_generated_secrets() -> None:
    secrets = [generate_secret() for _ in range(200)]
    assert len(set(secrets)) == 200
    assert all(len(secret) == 24 and URL_SAFE.fullmatch(secret) for secret in secrets)
    assert len(generate_secret(64)) == 64
    # Every character class shows up across many secrets (no accidental narrowing of the alphabet).
    joined = "".join(secrets)
    assert {"-", "_"} <= set(joined) and any(c.isdigit() for c in joined) and any(c.isupper() for c in joined)


def test_generated_secret_too_short() -> None:
    with pytest.raises(ValueError, match="at least 12"):
        generate_secret(8)


def test_command_prints_n_distinct_strong_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["secrets", "--count", "5", "--length", "40"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 == len(set(lines))
    assert all(len(line) == 40 and URL_SAFE.fullmatch(line) for line in lines)


def test_command_default_is_one_secret_long_enough_for_the_secret_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["secrets"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert len(line) >= 32 and URL_SAFE.fullmatch(line)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--count", "0"], "callbuddy-pbx secrets: --count must be from 1 to 1000, not 0"),
        (["--length", "8"], "callbuddy-pbx secrets: --length must be from 12 to 256, not 8"),
    ],
)
def test_command_rejects_bad_arguments(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["secrets", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == message


# -- `secrets --phone`: what the installer types into one phone ------------------------------------------------------

INSTALLER = Path(__file__).resolve().parent / "golden" / "installer" / "callbuddy.yaml"


def test_phone_prints_the_login_render_writes_and_the_pin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["secrets", "--phone", "300", "--config", str(INSTALLER)]) == 0
    shown = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    shown = {label: value.strip() for label, value in shown.items()}
    config = load_config(INSTALLER)
    assert shown["SIP user name"] == "300"
    assert shown["SIP secret"] == derive_secret(config.pbx.secret_key, "300")
    files = render_all(config)
    assert f"username = 300\npassword = {shown['SIP secret']}\n" in files["pjsip.conf"]
    assert f"300 => {shown['voicemail PIN']},Spa desk" in files["voicemail.conf"]
    assert re.fullmatch(r"\d{6}", shown["voicemail PIN"])


def test_phone_with_its_own_secret_and_no_mailbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = INSTALLER.read_text().replace(
        '{extension: "301", name: Spa manager, business: Serene Med Spa}',
        '{extension: "301", name: Spa manager, business: Serene Med Spa, secret: own-secret-0301, voicemail: false}',
    )
    config = tmp_path / "callbuddy.yaml"
    config.write_text(text)
    assert main(["secrets", "--phone", "301", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "SIP secret:     own-secret-0301\n" in out
    assert "voicemail PIN:  none (voicemail: false)\n" in out


@pytest.mark.parametrize(("extension", "closest"), [("105", "100"), ("299", "300"), ("302", "301"), ("abc", "100")])
def test_an_unknown_phone_names_the_closest_extension(
    capsys: pytest.CaptureFixture[str], extension: str, closest: str
) -> None:
    assert main(["secrets", "--phone", extension, "--config", str(INSTALLER)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"callbuddy-pbx secrets: no phone {extension} in pbx.phones (the closest is {closest})\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--phone", "100"], "--phone needs --config (the YAML file whose pbx.phones lists it)"),
        (["--config", "x.yaml"], "--config is only read with --phone EXTENSION"),
        (["--phone", "100", "--config", "x.yaml", "--count", "2"], "--count and --length make random secrets; "
         "leave them out with --phone"),
    ],
)  # fmt: skip
def test_phone_arguments_go_together(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["secrets", *argv]) == 2
    assert capsys.readouterr().err == f"callbuddy-pbx secrets: {message}\n"
