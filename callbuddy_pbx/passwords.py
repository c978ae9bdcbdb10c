"""Dashboard password hashes: scrypt from the standard library, written `scrypt$N$r$p$<salt b64>$<hash b64>`.

New hashes use N=2**14, r=8, p=1 (16 MiB, some 50 ms), a 16-byte random salt and a 32-byte key. Hashes come from
a configuration file, so parsing bounds every parameter: a hand-edited `scrypt$1048576$64$16$...` must not turn
each login attempt into gigabytes of memory and seconds of CPU. Passwords are NFC-normalised first, so the same
password typed on a phone and on a desktop keyboard gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
KEY_BYTES = 32
SALT_BYTES = 16
# What a stored hash may ask for: at least the strength we write, at most 64 MiB and a few times our CPU cost.
MIN_N, MAX_N = 2**14, 2**20
MIN_R, MAX_R = 8, 32
MAX_P = 4
MAX_MEMORY = 64 * 1024 * 1024  # 128 * N * r bytes
MIN_SALT, MAX_SALT = 16, 64
MIN_KEY, MAX_KEY = 16, 64
MAX_PASSWORD_CHARS = 1024  # longer input is refused before hashing


@dataclass(frozen=True, slots=True)
class _Parsed:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def hash_password(password: str) -> str:
    """A new hash of `password` with a fresh random salt."""
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P, KEY_BYTES)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches `encoded`; False for a malformed or out-of-bounds hash (never an exception)."""
    parsed = _parse(encoded)
    if isinstance(parsed, str) or len(password) > MAX_PASSWORD_CHARS:
        return False
    key = _derive(password, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.key))
    return hmac.compare_digest(key, parsed.key)


def check_hash_format(encoded: str) -> str | None:
    """What is wrong with `encoded` (a text that never quotes it), or None when it can be used."""
    parsed = _parse(encoded)
    return parsed if isinstance(parsed, str) else None


def _parse(encoded: str) -> _Parsed | str:
    parts = encoded.strip().split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return "not a password hash (expected scrypt$N$r$p$salt$hash, as written by `callbuddy-pbx user add`)"
    numbers: list[int] = []
    for label, text in zip(("N", "r", "p"), parts[1:4], strict=True):
        if not text.isascii() or not text.isdigit() or len(text) > 8:
            return f"the scrypt parameter {label} is not a whole number"
        numbers.append(int(text))
    n, r, p = numbers
    if n & (n - 1) or not MIN_N <= n <= MAX_N:
        return f"the scrypt parameter N must be a power of two from {MIN_N} to {MAX_N}"
    if not MIN_R <= r <= MAX_R:
        return f"the scrypt parameter r must be from {MIN_R} to {MAX_R}"
    if not 1 <= p <= MAX_P:
        return f"the scrypt parameter p must be from 1 to {MAX_P}"
    if 128 * n * r > MAX_MEMORY:
        return f"the scrypt parameters need more than {MAX_MEMORY // 2**20} MiB (128 * N * r)"
    salt, key = _unb64(parts[4]), _unb64(parts[5])
    if salt is None or key is None:
        return "the salt or the hash is not valid base64"
    if not MIN_SALT <= len(salt) <= MAX_SALT:
        return f"the salt must be {MIN_SALT} to {MAX_SALT} bytes"
    if not MIN_KEY <= len(key) <= MAX_KEY:
        return f"the hash must be {MIN_KEY} to {MAX_KEY} bytes"
    return _Parsed(n, r, p, salt, key)


def _derive(password: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    secret = unicodedata.normalize("NFC", password).encode("utf-8", "surrogatepass")
    # OpenSSL refuses above `maxmem` (default 32 MiB, below what the bounds allow); it needs 128*r*(N+p+2) bytes.
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=size, maxmem=128 * r * (n + p + 2) + 4096)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    if not text or len(text) > 128:
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
