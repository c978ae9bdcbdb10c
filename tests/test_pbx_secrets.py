"""Derived and generated SIP secrets, and `callbuddy-pbx secrets`."""

from __future__ import annotations

import re

import pytest

from callbuddy_pbx.cli import main
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
