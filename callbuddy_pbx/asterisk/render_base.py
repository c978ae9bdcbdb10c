"""What every rendered Asterisk file shares: the error type, quoting for config values, the include of the
installer's custom file, and the secrets a phone gets from `pbx.secret_key` (its SIP password and voicemail PIN)."""

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


# Asterisk reads an #include'd file as if it were pasted in: a line of the custom file before its first [section]
# would join the section above it, e.g. a rendered phone or the AMI user. An empty section right before the include
# catches such lines instead: a template, marked (!), which no module loads (ast_category_browse skips templates);
# in the dialplan an empty context that nothing includes or dials (asterisklint, which checks it, reads no templates).
CUSTOM_SECTION = "callbuddy-custom"


def custom_include(name: str, *, dialplan: bool = False) -> list[str]:
    """The lines that end a rendered file: the installer's `name` (e.g. pjsip_custom.conf), included safely."""
    return [
        f"; {name}: start it with a [section] line ([name](+) adds to a section above); lines before it land here.",
        f"[{CUSTOM_SECTION}]" if dialplan else f"[{CUSTOM_SECTION}](!)",
        f"#tryinclude {name}",
    ]


def phone_secret(config: Config, phone: Phone) -> str:
    return derive_secret(config.pbx.secret_key, phone.extension) if phone.secret == AUTO_SECRET else phone.secret


def voicemail_pin(config: Config, phone: Phone) -> str:
    digits = "".join(str(ord(ch) % 10) for ch in derive_secret(config.pbx.secret_key, f"voicemail:{phone.extension}"))
    return digits[:6]
