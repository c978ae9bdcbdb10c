"""`callbuddy-pbx secrets [--count N] [--length L]`: print strong random secrets, one per line.

For phone `secret:` values, trunk passwords, and `pbx.secret_key` (use `--length 32` or more for the key).
"""

from __future__ import annotations

import argparse
import sys

from callbuddy_pbx.config.derived_secrets import MIN_GENERATED_CHARS, generate_secret

PROG = "callbuddy-pbx secrets"
MAX_COUNT = 1000
MAX_LENGTH = 256


def main(args: argparse.Namespace) -> int:
    count: int = args.count
    length: int = args.length
    if not 1 <= count <= MAX_COUNT:
        print(f"{PROG}: --count must be from 1 to {MAX_COUNT}, not {count}", file=sys.stderr)
        return 2
    if not MIN_GENERATED_CHARS <= length <= MAX_LENGTH:
        print(f"{PROG}: --length must be from {MIN_GENERATED_CHARS} to {MAX_LENGTH}, not {length}", file=sys.stderr)
        return 2
    for _ in range(count):
        print(generate_secret(length))
    return 0
