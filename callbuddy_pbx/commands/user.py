"""`callbuddy-pbx user add|list|remove`: who may log in to the dashboard, kept in the file `web.users_file` names.

`add` asks for the password twice on the terminal (or reads the first line of stdin with --password-stdin) and
stores only its scrypt hash; the file is rewritten atomically with mode 0600. Users written inline under
`web.users` are listed but changed in the configuration itself. Removing a user, or replacing one (a new
password), also ends their dashboard sessions. A running service notices the file's change by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sqlite3
import sys
from pathlib import Path

import yaml

from callbuddy_pbx.commands.display import format_table
from callbuddy_pbx.commands.storage import open_configured
from callbuddy_pbx.config import Config, WebUser, load_config
from callbuddy_pbx.config.reader import unknown_business
from callbuddy_pbx.config.users import (
    USER_NAME,
    USER_NAME_RULE,
    UsersFileError,
    read_users_file,
    user_entry,
    write_users_file,
)
from callbuddy_pbx.passwords import MAX_PASSWORD_CHARS, hash_password
from callbuddy_pbx.store.schema import StoreError
from callbuddy_pbx.untrusted import printable
from callbuddy_pbx.web.sessions import SessionStore

PROG = "callbuddy-pbx user"
MIN_PASSWORD_CHARS = 10


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.action == "list":
        return _list(config)
    if args.action == "remove":
        return _remove(config, args.name)
    return _add(config, args)


def _add(config: Config, args: argparse.Namespace) -> int:
    name: str = args.name
    role: str = args.role
    businesses = tuple(dict.fromkeys(args.business or ()))
    if not USER_NAME.fullmatch(name):
        return _fail(f"{printable(name)!r} is not a valid user name ({USER_NAME_RULE})")
    if role == "business" and not businesses:
        return _fail("a business user needs --business NAME (once per business whose calls they may see)")
    if role == "admin" and businesses:
        return _fail("an admin sees every business: leave out --business")
    known = [business.name for business in config.businesses]
    for business in businesses:
        problem = unknown_business(business, known)
        if problem is not None:
            return _fail(f"--business {problem}")
    path = config.web.users_file
    file_users = _file_users(path, known) if path is not None else []
    if file_users is None:
        return 2
    inline = [user for user in config.web.users if user not in file_users]
    if any(user.name.casefold() == name.casefold() for user in inline):
        return _fail(f"{name!r} is defined under web.users in {config.source}: change it there")
    existing = next((user for user in file_users if user.name.casefold() == name.casefold()), None)
    if existing is not None and not args.replace:
        return _fail(f"{existing.name!r} already exists (add --replace to give them a new password and settings)")
    password = _password(name, from_stdin=args.password_stdin)
    if password is None:
        return 2
    user = WebUser(name, hash_password(password), role, businesses, role == "admin" or not args.mask_numbers)
    if path is None:
        print(
            f"{PROG}: {config.source} has no web.users_file for this command to keep users in: add "
            "`users_file: users.yaml` under `web:` and run it again, or paste this entry under `web.users:`",
            file=sys.stderr,
        )
        print(_entry_yaml(user), end="")
        return 2
    users = [user if other is existing else other for other in file_users]
    if existing is None:
        users.append(user)
    if not _write(path, users):
        return 1
    scope = "every business" if role == "admin" else ", ".join(businesses)
    print(f"{'replaced' if existing else 'added'} {role} {name!r} ({scope}) in {path}")
    if existing is not None:
        _end_sessions(config, existing.name)
    return 0


def _list(config: Config) -> int:
    path = config.web.users_file
    file_users = _file_users(path, None) if path is not None else []
    if file_users is None:
        return 2
    if not config.web.users:
        print(f"no dashboard users yet (add one: {PROG} add NAME --config {config.source} --role admin)")
        return 0
    rows = [("NAME", "ROLE", "BUSINESSES", "NUMBERS", "FROM")]
    for user in config.web.users:
        admin = user.role == "admin"
        rows.append(
            (
                printable(user.name),
                user.role,
                "all" if admin else printable(", ".join(user.businesses), 60),
                "full" if admin or user.show_numbers else "masked",
                "users file" if user in file_users else "web.users",
            )
        )
    print(format_table(rows))
    return 0


def _remove(config: Config, name: str) -> int:
    path = config.web.users_file
    file_users = _file_users(path, None) if path is not None else []
    if file_users is None:
        return 2
    found = next((user for user in file_users if user.name.casefold() == name.casefold()), None)
    if found is None or path is None:
        if any(user.name.casefold() == name.casefold() for user in config.web.users):
            return _fail(f"{name!r} is defined under web.users in {config.source}: remove it there")
        return _fail(f"there is no user {printable(name)!r}")
    if not _write(path, [user for user in file_users if user is not found]):
        return 1
    print(f"removed {found.name!r} from {path}")
    _end_sessions(config, found.name)
    return 0


def _file_users(path: Path, businesses: list[str] | None) -> list[WebUser] | None:
    try:
        return read_users_file(path, businesses)
    except UsersFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _password(name: str, *, from_stdin: bool) -> str | None:
    """The new password: the first line of stdin, or asked twice on the terminal."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")  # only the line end: spaces belong to the password
    elif sys.stdin.isatty():
        password = getpass.getpass(f"New password for {name}: ")
        if getpass.getpass("The same password again: ") != password:
            _fail("the two passwords differ")
            return None
    else:
        _fail("no terminal to ask for the password on: pipe it in with --password-stdin")
        return None
    if len(password) < MIN_PASSWORD_CHARS:
        _fail(f"the password is too short: at least {MIN_PASSWORD_CHARS} characters")
        return None
    if len(password) > MAX_PASSWORD_CHARS:
        _fail(f"the password is too long: at most {MAX_PASSWORD_CHARS} characters")
        return None
    return password


def _write(path: Path, users: list[WebUser]) -> bool:
    try:
        write_users_file(path, users)
    except OSError as exc:
        print(f"{PROG}: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _end_sessions(config: Config, name: str) -> None:
    """Log the user out everywhere (their database may not exist yet: then nobody is logged in)."""
    path = config.storage.path
    if config.storage.url is None and not path.is_file():
        return

    async def delete() -> int:
        async with await open_configured(config.storage, create=False) as store:
            return await SessionStore(store).delete_user(name)

    try:
        ended = asyncio.run(delete())
    except (StoreError, sqlite3.Error, OSError) as exc:
        print(f"{PROG}: could not end {name!r}'s dashboard sessions in {config.storage.shown}: {exc}", file=sys.stderr)
        return
    if ended:
        print(f"ended {ended} dashboard session{'s' if ended > 1 else ''} of {name!r}")


def _entry_yaml(user: WebUser) -> str:
    return yaml.safe_dump([user_entry(user)], sort_keys=False, allow_unicode=True)


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2
