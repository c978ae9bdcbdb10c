"""Command line: `callbuddy-pbx run | demo | check | migrate | calls | messages | stats | replay | secrets | user`."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from callbuddy_pbx.commands.options import version
from callbuddy_pbx.config import ConfigError

PROG = "callbuddy-pbx"
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a writer killed by SIGPIPE (`yes | head`, with pipefail)


def command_summary(command: str) -> str | None:
    """The first line of a command module's docstring, read from its source without importing it (importing every
    command would load aiohttp and the rest for a `--help`); None when the source is not there."""
    spec = importlib.util.find_spec(f"callbuddy_pbx.commands.{command}")
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as file:
            doc = ast.get_docstring(ast.parse(file.read()))
    except (OSError, SyntaxError, ValueError):
        return None
    return doc.strip().splitlines()[0] if doc and doc.strip() else None


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse.ArgumentParser:
    """A subcommand whose `--help` page opens with the first line of its module's docstring."""
    return commands.add_parser(name, help=help, description=command_summary(name) or help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Missed-call text-back for Asterisk PBXs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(commands, "run", "watch the configured Asterisk and record every inbound call")
    run.add_argument("--config", "-c", required=True, help="YAML configuration file")

    demo = _command(commands, "demo", "run the service against a simulated PBX with generated calls")
    demo.add_argument("--data-dir", default="data/demo", help="where the demo's SQLite file goes (default data/demo)")
    demo.add_argument("--calls", type=int, help="place this many calls, then stop (default: calls until Ctrl-C)")
    demo.add_argument("--speed", type=float, default=10.0, help="time compression of the scripted calls (default 10x)")
    demo.add_argument("--seed", type=int, help="the same seed places the same calls (default: a new mix each run)")
    demo.add_argument("--host", default="127.0.0.1", help="address the dashboard listens on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080, help="dashboard port (default 8080; 0: any free port)")

    migrate = _command(commands, "migrate", "bring the configured store's schema up to date, or copy SQLite into it")
    migrate.add_argument("--config", "-c", help="YAML configuration file (default: the default SQLite file)")
    migrate.add_argument("--from-sqlite", metavar="PATH", help="copy every table of this SQLite file into the store")
    migrate.add_argument(
        "--replace", action="store_true", help="with --from-sqlite: empty a store that already holds rows first"
    )

    check = _command(commands, "check", "validate a configuration file and list every problem")
    check.add_argument("--config", "-c", required=True, help="YAML configuration file")
    check.add_argument("--offline", action="store_true", help="only check the file; do not ask the PBX over AMI")

    devices = _command(commands, "devices", "list the PBX's phones: registered or not, idle, ringing, in use")
    devices.add_argument("--config", "-c", required=True, help="YAML configuration file")
    devices.add_argument("--json", action="store_true", help="one JSON object per line")

    calls = _command(commands, "calls", "list recorded calls")
    calls.add_argument("--config", "-c", help="YAML configuration file (for the database path)")
    calls.add_argument("--db", help="SQLite file or database URL (overrides the configuration)")
    calls.add_argument("--missed", action="store_true", help="only calls nobody answered")
    calls.add_argument("--since", help="ISO date/time, or an age such as 30m, 6h, 2d")
    calls.add_argument("--limit", type=int, default=100, help="at most this many calls, newest first (default 100)")
    calls.add_argument("--json", action="store_true", help="one JSON object per line")

    messages = _command(commands, "messages", "list texts sent to missed callers and their delivery status")
    messages.add_argument("--config", "-c", help="YAML configuration file (for the database path)")
    messages.add_argument("--db", help="SQLite file or database URL (overrides the configuration)")
    messages.add_argument(
        "--state",
        choices=("queued", "sending", "sent", "delivered", "failed", "expired", "unknown", "cancelled"),
        help="only texts in this state",
    )
    messages.add_argument("--limit", type=int, default=100, help="at most this many texts, newest first (default 100)")
    messages.add_argument("--json", action="store_true", help="one JSON object per line")

    stats = _command(commands, "stats", "missed calls recovered: texted, delivered, booking links clicked")
    stats.add_argument("--config", "-c", help="YAML configuration file (for the database path)")
    stats.add_argument("--db", help="SQLite file or database URL (overrides the configuration)")
    stats.add_argument("--since", default="7d", help="ISO date/time, or an age such as 6h, 2d, 1w (default 7d)")
    stats.add_argument("--until", help="end of the period, ISO date/time or an age (default now)")
    stats.add_argument("--business", help="only this business (default all)")
    stats.add_argument("--tz", default="UTC", help="time zone for missed calls by hour and weekday (default UTC)")
    stats.add_argument("--json", action="store_true", help="one JSON object")

    render = _command(commands, "render", "write Asterisk's configuration for the PBX the YAML describes")
    render.add_argument("--config", "-c", required=True, help="YAML configuration file")
    render.add_argument("--out", required=True, help="directory for the .conf files (e.g. /etc/asterisk)")
    render.add_argument("--force", action="store_true", help="also overwrite files callbuddy-pbx did not write")
    render.add_argument(
        "--owner",
        metavar="USER:GROUP",
        help="owner and group of every file (default: a replaced file keeps its own, a new one gets the folder's)",
    )

    replay = _command(commands, "replay", "classify the calls in a recorded AMI stream (ami.raw)")
    replay.add_argument("file", help="recorded AMI stream, as read from the socket")
    replay.add_argument("--config", "-c", help="YAML configuration (businesses and inbound rules)")

    secrets = _command(commands, "secrets", "print strong random secrets, or a phone's SIP login and voicemail PIN")
    secrets.add_argument("--count", "-n", type=int, help="how many secrets, one per line (default 1)")
    secrets.add_argument(
        "--length", type=int, help="characters per secret, at least 12 (default 32: enough for secret_key)"
    )
    secrets.add_argument("--phone", metavar="EXTENSION", help="print this phone's SIP user name, secret and PIN")
    secrets.add_argument("--config", "-c", help="YAML configuration file (with --phone)")

    user = _command(commands, "user", "add, list or remove who may log in to the dashboard")
    user_actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    user_add = user_actions.add_parser(
        "add",
        help="add a dashboard user (or, with --replace, change one)",
        description="Add a dashboard user (or, with --replace, change one).",
    )
    user_add.add_argument("name", help="the user name they log in with")
    user_add.add_argument("--config", "-c", required=True, help="YAML configuration file (with web.users_file)")
    user_add.add_argument("--role", choices=("admin", "business"), default="business", help="default business")
    user_add.add_argument("--business", action="append", help="a business whose calls they see (repeatable)")
    user_add.add_argument(
        "--mask-numbers", action="store_true", help="hide callers' full numbers (a business user sees them by default)"
    )
    user_add.add_argument("--show-numbers", action="store_true", help=argparse.SUPPRESS)  # the default now; kept
    user_add.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    user_add.add_argument("--replace", action="store_true", help="replace the user of that name (new password)")
    user_list = user_actions.add_parser(
        "list",
        help="list dashboard users (never their password hashes)",
        description="List dashboard users (never their password hashes).",
    )
    user_list.add_argument("--config", "-c", required=True, help="YAML configuration file")
    user_remove = user_actions.add_parser(
        "remove",
        help="remove a dashboard user and end their sessions",
        description="Remove a dashboard user and end their sessions.",
    )
    user_remove.add_argument("name", help="the user name")
    user_remove.add_argument("--config", "-c", required=True, help="YAML configuration file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Problems the user can fix come out as one line each on stderr and a non-zero exit code;
    a bug (any other exception) still shows its traceback."""
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"callbuddy_pbx.commands.{args.command}")
    try:
        code: int = module.main(args)
        sys.stdout.flush()  # a reader that went away shows up here, not as a traceback at exit
    except ConfigError as exc:  # every command that reads a config reports its problems the same way
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `callbuddy-pbx calls | head`: the reader has all it wanted. Quietly, like any Unix filter; stdout goes to
        # devnull so that the interpreter's last flush does not complain about the same pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.filename is None:  # not about a file (a socket, a timeout...): unexpected here, so the traceback
            raise
        # A file or folder the command could not use (permissions, a missing or read-only folder, a full disk):
        # the commands report the ones they expect themselves; this is the one line for the rest.
        print(f"{PROG} {args.command}: {os_problem(exc)}", file=sys.stderr)
        return 1
    return code


def os_problem(exc: OSError) -> str:
    """`[Errno 13] Permission denied: '/x'` as `/x: permission denied` (for an error that names its file)."""
    reason = (exc.strerror or str(exc)).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    where = _file_name(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {_file_name(exc.filename2)}"
    return f"{where}: {reason}"


def _file_name(name: object) -> str:
    return os.fsdecode(name) if isinstance(name, str | bytes | os.PathLike) else str(name)


if __name__ == "__main__":
    sys.exit(main())
