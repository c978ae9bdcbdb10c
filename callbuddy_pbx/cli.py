"""Command line: `callbuddy-pbx run | demo | check | calls | messages | stats | replay | secrets | user`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from callbuddy_pbx.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callbuddy-pbx", description="Missed-call text-back for Asterisk PBXs.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="watch the configured Asterisk and record every inbound call")
    run.add_argument("--config", "-c", required=True, help="YAML configuration file")

    demo = commands.add_parser("demo", help="run the service against a simulated PBX with generated calls")
    demo.add_argument("--data-dir", default="data/demo", help="where the demo's SQLite file goes (default data/demo)")
    demo.add_argument("--calls", type=int, help="place this many calls, then stop (default: calls until Ctrl-C)")
    demo.add_argument("--speed", type=float, default=10.0, help="time compression of the scripted calls (default 10x)")
    demo.add_argument("--seed", type=int, help="the same seed places the same calls (default: a new mix each run)")
    demo.add_argument("--host", default="127.0.0.1", help="address the dashboard listens on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080, help="dashboard port (default 8080; 0: any free port)")

    check = commands.add_parser("check", help="validate a configuration file and list every problem")
    check.add_argument("--config", "-c", required=True, help="YAML configuration file")
    check.add_argument("--offline", action="store_true", help="only check the file; do not ask the PBX over AMI")

    devices = commands.add_parser("devices", help="list the PBX's phones: registered or not, idle, ringing, in use")
    devices.add_argument("--config", "-c", required=True, help="YAML configuration file")
    devices.add_argument("--json", action="store_true", help="one JSON object per line")

    calls = commands.add_parser("calls", help="list recorded calls")
    calls.add_argument("--config", "-c", help="YAML configuration file (for the database path)")
    calls.add_argument("--db", help="SQLite file (overrides the configuration)")
    calls.add_argument("--missed", action="store_true", help="only calls nobody answered")
    calls.add_argument("--since", help="ISO date/time, or an age such as 30m, 6h, 2d")
    calls.add_argument("--limit", type=int, default=100, help="at most this many calls, newest first (default 100)")
    calls.add_argument("--json", action="store_true", help="one JSON object per line")

    messages = commands.add_parser("messages", help="list texts sent to missed callers and their delivery status")
    messages.add_argument("--config", "-c", help="YAML configuration file (for the database path)")
    messages.add_argument("--db", help="SQLite file (overrides the configuration)")
    messages.add_argument(
        "--state",
        choices=("queued", "sending", "sent", "delivered", "failed", "expired", "unknown", "cancelled"),
        help="only texts in this state",
    )
    messages.add_argument("--limit", type=int, default=100, help="at most this many texts, newest first (default 100)")
    messages.add_argument("--json", action="store_true", help="one JSON object per line")

    stats = commands.add_parser("stats", help="missed calls recovered: texted, delivered, booking links clicked")
    stats.add_argument("--config", "-c", help="YAML configuration file (for the database path)")
    stats.add_argument("--db", help="SQLite file (overrides the configuration)")
    stats.add_argument("--since", default="7d", help="ISO date/time, or an age such as 6h, 2d, 1w (default 7d)")
    stats.add_argument("--until", help="end of the period, ISO date/time or an age (default now)")
    stats.add_argument("--business", help="only this business (default all)")
    stats.add_argument("--tz", default="UTC", help="time zone for missed calls by hour and weekday (default UTC)")
    stats.add_argument("--json", action="store_true", help="one JSON object")

    render = commands.add_parser("render", help="write Asterisk's configuration for the PBX the YAML describes")
    render.add_argument("--config", "-c", required=True, help="YAML configuration file")
    render.add_argument("--out", required=True, help="directory for the .conf files (e.g. /etc/asterisk)")
    render.add_argument("--force", action="store_true", help="also overwrite files callbuddy-pbx did not write")

    replay = commands.add_parser("replay", help="classify the calls in a recorded AMI stream (ami.raw)")
    replay.add_argument("file", help="recorded AMI stream, as read from the socket")
    replay.add_argument("--config", "-c", help="YAML configuration (businesses and inbound rules)")

    secrets = commands.add_parser("secrets", help="print strong random secrets for SIP phones and pbx.secret_key")
    secrets.add_argument("--count", "-n", type=int, default=1, help="how many secrets, one per line (default 1)")
    secrets.add_argument(
        "--length", type=int, default=32, help="characters per secret, at least 12 (default 32: enough for secret_key)"
    )

    user = commands.add_parser("user", help="add, list or remove who may log in to the dashboard")
    user_actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    user_add = user_actions.add_parser("add", help="add a dashboard user (or, with --replace, change one)")
    user_add.add_argument("name", help="the user name they log in with")
    user_add.add_argument("--config", "-c", required=True, help="YAML configuration file (with web.users_file)")
    user_add.add_argument("--role", choices=("admin", "business"), default="business", help="default business")
    user_add.add_argument("--business", action="append", help="a business whose calls they see (repeatable)")
    user_add.add_argument("--show-numbers", action="store_true", help="show callers' full numbers (else masked)")
    user_add.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    user_add.add_argument("--replace", action="store_true", help="replace the user of that name (new password)")
    user_list = user_actions.add_parser("list", help="list dashboard users (never their password hashes)")
    user_list.add_argument("--config", "-c", required=True, help="YAML configuration file")
    user_remove = user_actions.add_parser("remove", help="remove a dashboard user and end their sessions")
    user_remove.add_argument("name", help="the user name")
    user_remove.add_argument("--config", "-c", required=True, help="YAML configuration file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"callbuddy_pbx.commands.{args.command}")
    try:
        code: int = module.main(args)
    except ConfigError as exc:  # every command that reads a config reports its problems the same way
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
