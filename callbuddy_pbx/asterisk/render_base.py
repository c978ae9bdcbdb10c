"""What every rendered Asterisk file shares: the error type, quoting for config values, and the secrets a phone
gets from `pbx.secret_key` (its SIP password and voicemail PIN)."""

from __future__ import annotations

import re

from callbuddy_pbx.config import Config
from callbuddy_pbx.config.derived_secrets import derive_secret
from callbuddy_pbx.config.pbx import AUTO_SECRET, Phone


class RenderError(ValueError):
    """The configuration cannot be rendered (e.g. a trunk template is missing a value); says which and where."""


def quoted(text: str) -> str:
    """Text safe inside a quoted caller ID name or a comment: no quotes, backslashes, comment marks or line breaks."""
    return re.sub(r'["\\\r\n;]', "", text)


def phone_secret(config: Config, phone: Phone) -> str:
    return derive_secret(config.pbx.secret_key, phone.extension) if phone.secret == AUTO_SECRET else phone.secret


def voicemail_pin(config: Config, phone: Phone) -> str:
    digits = "".join(str(ord(ch) % 10) for ch in derive_secret(config.pbx.secret_key, f"voicemail:{phone.extension}"))
    return digits[:6]
