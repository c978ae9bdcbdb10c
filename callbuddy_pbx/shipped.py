"""Where the files shipped beside the code are found: the SIP trunk templates and the dialplan library.

A wheel carries them inside the package (setup.py copies the repository's `sip_trunks/` and `dialplans/` to
`callbuddy_pbx/_shipped/`); a checkout or an editable install has them at the repository's top level; older images
and hand-made installs put them in `<prefix>/share/callbuddy/` or `/usr/share/callbuddy/`.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
IN_PACKAGE = "_shipped"  # the folder under the package that setup.py fills when it builds a wheel
SHIPPED_FOLDERS: tuple[str, ...] = ("sip_trunks", "dialplans")


def places(name: str) -> tuple[Path, ...]:
    """Where the shipped folder `name` may be, in the order they are tried."""
    return (
        PACKAGE_DIR / IN_PACKAGE / name,
        PACKAGE_DIR.parent / name,
        Path(sys.prefix) / "share" / "callbuddy" / name,
        Path("/usr/share/callbuddy") / name,
    )


def shipped_dir(name: str) -> Path:
    """The first place that holds the folder `name`; the repository's place (for the message) when none does."""
    candidates = places(name)
    return next((place for place in candidates if place.is_dir()), candidates[1])
