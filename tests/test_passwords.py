"""Password hashes (web/passwords.py): right and wrong passwords, the stored format, and hashes a config may hold."""

from __future__ import annotations

import base64
import hashlib

import pytest

from callbuddy_pbx.passwords import check_hash_format, hash_password, verify_password

SALT = base64.b64encode(bytes(range(16))).decode()
KEY = base64.b64encode(bytes(32)).decode()


def test_the_right_password_matches_and_others_do_not() -> None:
    encoded = hash_password("correct horse battery")
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    assert not verify_password("", encoded)
    assert not verify_password("correct horse battery ", encoded)


def test_the_stored_format() -> None:
    encoded = hash_password("correct horse battery")
    scheme, n, r, p, salt, key = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    expected = hashlib.scrypt(b"correct horse battery", salt=base64.b64decode(salt), n=2**14, r=8, p=1, dklen=32)
    assert base64.b64decode(key) == expected  # plain stdlib scrypt: other tools can check it
    assert check_hash_format(encoded) is None


def test_every_hash_has_its_own_salt() -> None:
    assert hash_password("same password!") != hash_password("same password!")


def test_the_same_password_typed_differently_composed_matches() -> None:
    encoded = hash_password("caf\u00e9 au lait")  # é as one code point
    assert verify_password("cafe\u0301 au lait", encoded)  # e + combining acute


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [
        ("", "not a password hash"),
        ("hunter2", "not a password hash"),
        ("bcrypt$16384$8$1$a$b", "not a password hash"),
        (f"scrypt$16384$8$1${SALT}", "not a password hash"),
        (f"scrypt$x$8$1${SALT}${KEY}", "N is not a whole number"),
        (f"scrypt$16385$8$1${SALT}${KEY}", "power of two"),
        (f"scrypt$1024$8$1${SALT}${KEY}", "power of two from 16384"),  # too weak
        (f"scrypt${2**21}$1$1${SALT}${KEY}", "power of two"),  # too costly
        (f"scrypt$16384$64$1${SALT}${KEY}", "r must be"),
        (f"scrypt$16384$8$16${SALT}${KEY}", "p must be"),
        (f"scrypt${2**17}$8$1${SALT}${KEY}", "more than 64 MiB"),
        (f"scrypt$16384$8$1$not base64!${KEY}", "not valid base64"),
        (f"scrypt$16384$8$1$QUJD${KEY}", "salt must be"),
        (f"scrypt$16384$8$1${SALT}$QUJD", "hash must be"),
    ],
)
def test_unusable_hashes_are_refused_without_quoting_them(encoded: str, problem: str) -> None:
    found = check_hash_format(encoded)
    assert found is not None and problem in found
    assert SALT not in found and KEY not in found
    assert not verify_password("anything at all", encoded)  # False, never an exception or a huge computation


def test_a_stronger_hash_within_bounds_is_accepted() -> None:
    salt = bytes(16)
    key = hashlib.scrypt(b"a strong one", salt=salt, n=2**15, r=8, p=2, dklen=32, maxmem=2**26)
    encoded = f"scrypt$32768$8$2${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    assert check_hash_format(encoded) is None
    assert verify_password("a strong one", encoded)


def test_absurd_input_is_refused() -> None:
    encoded = hash_password("ten chars!")
    assert not verify_password("x" * 100_000, encoded)
    with pytest.raises(ValueError, match="at most"):
        hash_password("x" * 100_000)
