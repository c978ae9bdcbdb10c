"""`callbuddy-pbx check --config F`: validate a configuration, list every problem, or summarise what it sets up."""

from __future__ import annotations

import argparse
import sys

from callbuddy_pbx.config import SECRET_ENV_VAR, Config, load_config


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(summary(config))
    if not config.asterisk.secret:
        print(f"warning: no AMI secret (set asterisk.secret or {SECRET_ENV_VAR}); `run` cannot log in", file=sys.stderr)
    return 0


def summary(config: Config) -> str:
    """What the configuration means, in a few lines. The AMI secret is only said to be set, never shown."""
    ami = config.asterisk
    lines = [
        f"{config.source}: OK",
        f"Asterisk:   {ami.host}:{ami.port} as {ami.username} (secret {'set' if ami.secret else 'NOT set'})",
    ]
    if config.businesses:
        lines.append(f"Businesses: {len(config.businesses)}")
        for business in config.businesses:
            numbers = ", ".join(business.numbers)
            lines.append(
                f"  {business.name}: {numbers} (time zone {business.timezone}, region {business.default_region})"
            )
    else:
        lines.append("Businesses: none (every call that starts in an inbound context is tracked)")
    lines.append(f"Inbound:    contexts {', '.join(config.inbound.contexts)}")
    if config.inbound.trunk_endpoints:
        lines.append(f"            trunks {', '.join(config.inbound.trunk_endpoints)}")
    lines.append(f"Database:   {config.storage.path}")
    lines.append(f"Logging:    {config.logging.level}, {config.logging.format}")
    return "\n".join(lines)
