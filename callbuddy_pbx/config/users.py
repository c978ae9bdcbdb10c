"""Dashboard logins in the configuration: `web.users`, `web.users_file`, `web.session_hours`, `web.secure_cookies`.

Users are `{name, password_hash, role, businesses, mask_numbers}` entries, inline under `web.users` or in the YAML
list `web.users_file` names (relative to the configuration's directory), which `callbuddy-pbx user` maintains.
A users file that does not exist yet means no users; one that cannot be read or has problems is reported with its
own file and line. Password hashes are never quoted in a message.

The `web:` reader (`web`) calls in here; this module knows nothing of the other `web:` settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from callbuddy_pbx.config.reader import (
    NULL,
    Reader,
    compose_bounded,
    is_null,
    line_of,
    read_bounded,
    shown,
    unknown_business,
)
from callbuddy_pbx.passwords import check_hash_format

log = logging.getLogger(__name__)

# `show_numbers` is the older key: `show_numbers: false` still masks; full numbers are the default now.
USER_KEYS = ("name", "password_hash", "role", "businesses", "mask_numbers", "show_numbers")
SECURE_COOKIES = ("auto", "always", "never")
MAX_SESSION_HOURS = 720.0  # 30 days
USER_NAME = re.compile(r"[\w.@+-]{1,64}")
USER_NAME_RULE = "letters, digits, '.', '_', '-', '@', '+'; at most 64"


class UsersFileError(Exception):
    """A users file that cannot be used; `problems` lists every one, each as `file:line: key: what`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


USER_ROLES: tuple[str, ...] = ("admin", "business")


@dataclass(frozen=True, slots=True)
class WebUser:
    """Someone who may log in to the dashboard.

    An admin sees every business and full phone numbers; a business user sees only `businesses`, with callers'
    full numbers (the business's own customers, to call back) unless the installer set `mask_numbers: true`."""

    name: str
    password_hash: str = field(repr=False)  # "scrypt$..." as written by `callbuddy-pbx user add`
    role: str = "business"  # "admin" | "business"
    businesses: tuple[str, ...] = ()
    show_numbers: bool = True  # False: `mask_numbers: true` (ignored for admins: they always see numbers)


@dataclass(frozen=True, slots=True)
class UserSettings:
    """What the login settings of `web:` come to (the matching fields of WebConfig)."""

    users: tuple[WebUser, ...] = ()
    users_file: Path | None = None
    session_hours: float = 12.0
    secure_cookies: str = "auto"


class _FileReader(Reader):
    """A Reader for a file the configuration names: its problems say that file, and join the main reader's."""

    def file_problem(self, message: str) -> None:
        """A problem with the whole file (no line)."""
        self._found.append((0, f"{self.source}: {message}"))

    def hand_over(self, parent: Reader, line: int) -> None:
        """Add these problems to `parent`'s, in their order, at the line of the key that names the file."""
        parent._found.extend((line, message) for message in self.problems)


class UsersReader:
    """Reads user entries; the names seen so far span every list read (inline and file), for duplicates."""

    def __init__(self, reader: Reader, businesses: Collection[str] | None) -> None:
        self.r = reader
        self.businesses = businesses  # None: not known (a users file read on its own), names are not checked
        self._names: dict[str, tuple[str, int]] = {}  # casefolded name → (file, line)

    def settings(self, section: dict[str, yaml.Node], base_dir: Path) -> UserSettings:
        """The login settings among the keys of `web:`."""
        base = UserSettings()
        users: list[WebUser] = []
        if "users" in section and not is_null(section["users"]):
            users += self.users(section["users"], "web.users")
        users_file = base.users_file
        if "users_file" in section:
            node = section["users_file"]
            value = self.r.non_empty(node, "web.users_file", "a file path (relative to this file's directory)")
            if value is not None:
                users_file = base_dir / Path(value).expanduser()  # an absolute path stays as it is
                included = _FileReader(str(users_file))
                users += self._on(included).file(users_file)
                included.hand_over(self.r, line_of(node))
        hours = base.session_hours
        if "session_hours" in section:
            node = section["session_hours"]
            value_h = self.r.number(node, "web.session_hours", "hours", allow_zero=False)
            if value_h is not None and value_h > MAX_SESSION_HOURS:
                self.r.problem(node, "web.session_hours", f"{value_h:g} is too long (at most {MAX_SESSION_HOURS:g})")
            elif value_h is not None:
                hours = value_h
        secure = base.secure_cookies
        if "secure_cookies" in section:
            secure = (
                self.r.choice(section["secure_cookies"], "web.secure_cookies", SECURE_COOKIES, upper=False) or secure
            )
        return UserSettings(tuple(users), users_file, hours, secure)

    def file(self, path: Path) -> list[WebUser]:
        """The users in a users file (this reader's source); a file that does not exist holds none."""
        assert isinstance(self.r, _FileReader)
        try:
            text = read_bounded(path)
        except FileNotFoundError:
            return []
        except UnicodeDecodeError as exc:
            self.r.file_problem(f"not UTF-8 text (byte {exc.start})")
            return []
        except OSError as exc:
            self.r.file_problem(f"cannot read: {exc.strerror or exc}")
            return []
        root = _compose(self.r, text)
        if root is None or is_null(root):  # empty: no users yet
            return []
        return self.users(root, "users")

    def users(self, node: yaml.Node, path: str) -> list[WebUser]:
        """A list of user entries; an entry with a problem is left out (and reported)."""
        entries = self.r.items(node, path)
        if entries is None:
            return []
        return [user for entry, entry_path in entries if (user := self._user(entry, entry_path)) is not None]

    def business_names(self, node: yaml.Node, path: str) -> tuple[str, ...] | None:
        """A list of configured business names (possibly empty); None when it has a problem."""
        items = self.r.items(node, path)
        if items is None:
            return None
        names: list[str] = []
        ok = True
        for item, item_path in items:
            name = self.r.non_empty(item, item_path, "a business name")
            problem = unknown_business(name, self.businesses) if name is not None else None
            if problem is not None:
                self.r.problem(item, item_path, problem)
            if name is None or problem is not None:
                ok = False
            elif name not in names:
                names.append(name)
        return tuple(names) if ok else None

    def _on(self, reader: Reader) -> UsersReader:
        """The same rules and names seen so far, reporting to another reader (an included file's)."""
        other = UsersReader(reader, self.businesses)
        other._names = self._names
        return other

    def _user(self, entry: yaml.Node, path: str) -> WebUser | None:
        section = self.r.mapping(entry, path, USER_KEYS)
        if section is None:
            return None
        missing = [key for key in ("name", "password_hash") if key not in section]
        if missing:
            keys = f"key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
            self.r.problem(entry, path, f"missing required {keys}")
        name = self._name(section["name"], f"{path}.name") if "name" in section else None
        password_hash = (
            self._hash(section["password_hash"], f"{path}.password_hash") if "password_hash" in section else None
        )
        ok = name is not None and password_hash is not None
        role: str | None = "business"
        if "role" in section:
            role = self.r.choice(section["role"], f"{path}.role", USER_ROLES, upper=False)
        businesses: tuple[str, ...] | None = ()
        if "businesses" in section:
            businesses = self.business_names(section["businesses"], f"{path}.businesses")
            ok = ok and businesses is not None
        show_numbers = self._show_numbers(section, path, role)
        ok = ok and show_numbers is not None
        if role == "business" and businesses == ():
            where = section.get("businesses", entry)
            self.r.problem(where, path, "a business user needs `businesses` (the businesses whose calls they see)")
            ok = False
        elif role == "admin" and businesses:
            self.r.problem(
                section["businesses"], f"{path}.businesses", "an admin sees every business (leave businesses out)"
            )
            ok = False
        if not ok or name is None or password_hash is None or role is None or businesses is None:
            return None
        return WebUser(name, password_hash, role, businesses, bool(show_numbers))

    def _show_numbers(self, section: dict[str, yaml.Node], path: str, role: str | None) -> bool | None:
        """Whether the user sees callers' full numbers: yes unless `mask_numbers: true` (or the older
        `show_numbers: false`); None when the keys have a problem."""
        keys = [key for key in ("mask_numbers", "show_numbers") if key in section]
        given = {key: self.r.boolean(section[key], f"{path}.{key}") for key in keys}
        if None in given.values():
            return None
        mask = given["mask_numbers"] if "mask_numbers" in given else given.get("show_numbers") is False
        if given.get("show_numbers") is mask:  # only when both are given and say opposite things
            self.r.problem(section["show_numbers"], f"{path}.show_numbers", "contradicts mask_numbers (keep one)")
            return None
        if role == "admin" and given.get("mask_numbers"):
            self.r.problem(section["mask_numbers"], f"{path}.mask_numbers", "an admin always sees full numbers")
            return None
        return role == "admin" or not mask

    def _name(self, node: yaml.Node, path: str) -> str | None:
        name = self.r.non_empty(node, path, "a user name")
        if name is None:
            return None
        if not USER_NAME.fullmatch(name):
            self.r.problem(node, path, f"{shown(name)} is not a valid user name ({USER_NAME_RULE})")
            return None
        first = self._names.get(name.casefold())
        if first is not None:
            source, line = first
            where = f"line {line}" if source == self.r.source else f"{source}:{line}"
            self.r.problem(node, path, f"{name!r} is already used ({where})")
            return None
        self._names[name.casefold()] = (self.r.source, line_of(node))
        return name

    def _hash(self, node: yaml.Node, path: str) -> str | None:
        value = self.r.text(node, path, secret=True)
        if value is None:
            return None
        problem = check_hash_format(value)
        if problem is not None:
            self.r.problem(node, path, problem)
            return None
        return value.strip()


def _compose(reader: _FileReader, text: str) -> yaml.Node | None:
    """The node tree of a YAML text; a syntax error is a problem at its line."""
    try:
        return compose_bounded(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        at = yaml.ScalarNode(NULL, "", start_mark=mark) if mark is not None else None
        reader.problem(at, "", f"YAML syntax error: {what}")
    except yaml.YAMLError as exc:
        reader.file_problem(f"YAML error: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}")
    return None


# ---------------------------------------------------------------------------------------------------------------------
# The users file on its own, for `callbuddy-pbx user` and for noticing changes while the service runs


def read_users_file(path: Path, businesses: Collection[str] | None = None) -> list[WebUser]:
    """The users of a users file ([] when it does not exist); raise UsersFileError listing every problem.

    With `businesses`, the businesses users name must be among them."""
    reader = _FileReader(str(path))
    users = UsersReader(reader, businesses).file(path)
    if reader.problems:
        raise UsersFileError(reader.problems)
    return users


def user_entry(user: WebUser) -> dict[str, Any]:
    """A user as an entry of `web.users` or of a users file."""
    entry: dict[str, Any] = {"name": user.name, "password_hash": user.password_hash, "role": user.role}
    if user.businesses:
        entry["businesses"] = list(user.businesses)
    if not user.show_numbers and user.role != "admin":
        entry["mask_numbers"] = True
    return entry


def write_users_file(path: Path, users: Sequence[WebUser]) -> None:
    """Replace the users file atomically (a temporary file in the same directory, then rename), mode 0600."""
    entries = [user_entry(user) for user in users]
    text = "# Dashboard users: maintained by `callbuddy-pbx user add|remove` (see web.users_file).\n"
    text += (
        yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, default_flow_style=False) if entries else "[]\n"
    )
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut once the directory is synced
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
