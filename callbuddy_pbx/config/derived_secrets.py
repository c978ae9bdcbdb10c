"""SIP secrets: derived per extension from `pbx.secret_key`, or generated for the installer to paste into the YAML.

Why derive rather than store: a phone written `secret: auto` gets HMAC-SHA256(secret_key, extension). Rendering the
Asterisk files is then deterministic: the same YAML (and key) always gives the same pjsip.conf, with no state file
of generated passwords to keep, back up, or lose when the PBX is rebuilt, and phones keep working across renders.
Changing `secret_key` changes every derived secret at once (a deliberate way to rotate them all); one phone's
secret never reveals the key or another phone's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

DERIVED_CHARS = 24  # 144 bits of the HMAC, in URL-safe base64
MIN_GENERATED_CHARS = 12  # the shortest SIP secret the configuration accepts
ALPHABET = string.ascii_letters + string.digits + "-_"  # URL-safe: no quoting needed in YAML, pjsip.conf or a URL
_CONTEXT = b"callbuddy-pbx sip secret v1\x00"  # domain separation: the key may derive other things later


def derive_secret(secret_key: str, extension: str) -> str:
    """The SIP password of `extension`: stable for a given key, different for every extension and key."""
    if not secret_key:
        raise ValueError("secret_key must not be empty")
    digest = hmac.new(secret_key.encode("utf-8"), _CONTEXT + extension.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:DERIVED_CHARS]


def generate_secret(length: int = 24) -> str:
    """A random secret of `length` URL-safe characters (6 bits each) from the `secrets` module."""
    if length < MIN_GENERATED_CHARS:
        raise ValueError(f"length must be at least {MIN_GENERATED_CHARS}, not {length}")
    return "".join(secrets.choice(ALPHABET) for _ in range(length))
