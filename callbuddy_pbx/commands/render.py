"""`callbuddy-pbx render --config F --out DIR`: write Asterisk's configuration for the PBX the YAML describes.

A replaced file keeps its owner, group and mode (re-rendering as root must not leave files Asterisk, running as its
own user, can no longer read); a new file gets the owner and group of the folder and mode 0640 (the files hold SIP,
AMI and ARI secrets). `--owner` gives every file that owner and group instead.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from callbuddy_pbx.asterisk.render import MARKER, RenderError, render_all
from callbuddy_pbx.config import load_config

PROG = "callbuddy-pbx render"
NEW_FILE_MODE = 0o640  # owner writes, group (asterisk) reads, nobody else: the files hold secrets


@dataclass(frozen=True, slots=True)
class Owner:
    uid: int
    gid: int

    def __str__(self) -> str:
        return f"{_user_name(self.uid)}:{_group_name(self.gid)}"


class WriteProblem(Exception):
    """A file could not be written as it must be; the message is the one line to show."""


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        requested = parse_owner(args.owner) if args.owner else None
    except ValueError as exc:
        print(f"{PROG}: --owner {args.owner}: {exc}", file=sys.stderr)
        return 2
    try:
        files = render_all(config)
    except RenderError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{PROG}: cannot create the output folder {out}: {_reason(exc)}", file=sys.stderr)
        return 1
    if not out.is_dir():
        print(f"{PROG}: --out {out} is not a folder", file=sys.stderr)
        return 1
    try:
        foreign = [name for name in files if _written_by_someone_else(out / name)]
    except OSError as exc:
        print(f"{PROG}: cannot read {exc.filename}: {_reason(exc)}", file=sys.stderr)
        return 1
    if foreign and not args.force:
        for name in foreign:
            print(f"{PROG}: {out / name} was not written by callbuddy-pbx; not overwriting it (use --force)",
                  file=sys.stderr)  # fmt: skip
        return 1
    folder = out.stat()
    default_owner = Owner(folder.st_uid, folder.st_gid)
    for name, text in sorted(files.items()):
        try:
            print(_put(out / name, text, requested, default_owner))
        except WriteProblem as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
    return 0


def parse_owner(text: str) -> Owner:
    """`user:group`, each a name on this system or a number."""
    user, colon, group = text.partition(":")
    if not colon or not user or not group:
        raise ValueError("expected USER:GROUP, e.g. asterisk:asterisk")
    return Owner(_uid(user), _gid(group))


def _put(target: Path, text: str, requested: Owner | None, default_owner: Owner) -> str:
    """Write one file unless it already says `text`; give it its owner. Returns the line to print."""
    try:
        existing = target.stat() if target.exists() else None
        owner = requested or (Owner(existing.st_uid, existing.st_gid) if existing else default_owner)
        if existing and target.read_text() == text:
            if owner == Owner(existing.st_uid, existing.st_gid):
                return f"unchanged  {target}"
            _chown(target, owner, target)  # only --owner differs from what the file has
            return f"owner set  {target} ({owner})"
        mode = stat.S_IMODE(existing.st_mode) if existing else NEW_FILE_MODE
        _write_atomically(target, text, owner, mode)
    except OSError as exc:
        raise WriteProblem(f"cannot write {target}: {_reason(exc)}") from None
    return f"written    {target}"


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _written_by_someone_else(path: Path) -> bool:
    if not path.exists():
        return False
    with path.open(errors="replace") as file:
        return not file.readline().startswith(MARKER)


def _write_atomically(target: Path, text: str, owner: Owner, mode: int) -> None:
    """Asterisk may read the directory at any moment: it sees the old file or the new one, never half of one, and
    the new one already has its owner and mode when it appears."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        _chown(Path(tmp), owner, target)
        os.chmod(tmp, mode)  # after chown, which may clear mode bits
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _chown(path: Path, owner: Owner, target: Path) -> None:
    current = path.stat()
    if Owner(current.st_uid, current.st_gid) == owner:
        return
    try:
        os.chown(path, owner.uid, owner.gid)
    except PermissionError:
        raise WriteProblem(
            f"cannot give {target} the owner {owner} (operation not permitted): run render as root, or with --owner"
        ) from None


def _uid(user: str) -> int:
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ValueError(f"no user {user!r} on this system") from None


def _gid(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"no group {group!r} on this system") from None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
