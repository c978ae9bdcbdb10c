"""`callbuddy-pbx secrets`: print strong random secrets, or what the installer types into one phone.

`secrets [--count N] [--length L]` prints random secrets, one per line: for phone `secret:` values, trunk passwords,
and `pbx.secret_key` (`--length 32` or more). `secrets --phone EXT --config F` prints the phone's SIP user name and
secret (derived from `pbx.secret_key` when `auto`, exactly as `render` writes it into pjsip.conf) and its voicemail
PIN.
"""

from __future__ import annotations

import argparse
import sys

from callbuddy_pbx.asterisk.render_base import phone_secret, voicemail_pin
from callbuddy_pbx.config import Config, load_config
from callbuddy_pbx.config.derived_secrets import MIN_GENERATED_CHARS, generate_secret
from callbuddy_pbx.config.pbx import Phone

PROG = "callbuddy-pbx secrets"
MAX_COUNT = 1000
MAX_LENGTH = 256
DEFAULT_LENGTH = 32  # enough for pbx.secret_key


def main(args: argparse.Namespace) -> int:
    if args.phone is None and args.config is None:
        count = 1 if args.count is None else args.count
        return _random_secrets(count, DEFAULT_LENGTH if args.length is None else args.length)
    if args.phone is None:
        return _usage("--config is only read with --phone EXTENSION")
    if args.config is None:
        return _usage("--phone needs --config (the YAML file whose pbx.phones lists it)")
    if args.count is not None or args.length is not None:
        return _usage("--count and --length make random secrets; leave them out with --phone")
    return _phone_login(load_config(args.config), args.phone)


def _usage(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def _random_secrets(count: int, length: int) -> int:
    if not 1 <= count <= MAX_COUNT:
        return _usage(f"--count must be from 1 to {MAX_COUNT}, not {count}")
    if not MIN_GENERATED_CHARS <= length <= MAX_LENGTH:
        return _usage(f"--length must be from {MIN_GENERATED_CHARS} to {MAX_LENGTH}, not {length}")
    for _ in range(count):
        print(generate_secret(length))
    return 0


def _phone_login(config: Config, extension: str) -> int:
    phones = {phone.extension: phone for phone in config.pbx.phones}
    phone = phones.get(extension)
    if phone is None:
        if not phones:
            print(f"{PROG}: no phone {extension}: the configuration has no pbx.phones", file=sys.stderr)
        else:
            closest = closest_extension(extension, list(phones))
            print(f"{PROG}: no phone {extension} in pbx.phones (the closest is {closest})", file=sys.stderr)
        return 1
    for label, value in phone_login(config, phone):
        print(f"{label + ':':<16}{value}")
    return 0


def phone_login(config: Config, phone: Phone) -> list[tuple[str, str]]:
    """What the installer types into the phone: the same values `render` writes for it."""
    pin = voicemail_pin(config, phone) if phone.voicemail else "none (voicemail: false)"
    return [
        ("phone", f"{phone.extension} {phone.name} ({phone.business})"),
        ("SIP user name", phone.extension),
        ("SIP secret", phone_secret(config, phone)),
        ("SIP port", f"{config.pbx.sip_port} (UDP)"),
        ("voicemail PIN", pin),
    ]


def closest_extension(wanted: str, extensions: list[str]) -> str:
    """The extension nearest in number (a typo of one digit is usually off by a little); the lower one on a tie."""
    if not wanted.isdigit():
        return min(extensions)
    return min(extensions, key=lambda extension: (abs(int(extension) - int(wanted)), int(extension)))
