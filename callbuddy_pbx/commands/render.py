"""`callbuddy-pbx render --config F --out DIR`: write Asterisk's configuration for the PBX the YAML describes."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from callbuddy_pbx.asterisk.render import MARKER, RenderError, render_all
from callbuddy_pbx.config import load_config

PROG = "callbuddy-pbx render"


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
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
    for name, text in sorted(files.items()):
        target = out / name
        try:
            if target.exists() and target.read_text() == text:
                print(f"unchanged  {target}")
                continue
            _write_atomically(target, text)
        except OSError as exc:
            print(f"{PROG}: cannot write {target}: {_reason(exc)}", file=sys.stderr)
            return 1
        print(f"written    {target}")
    return 0


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _written_by_someone_else(path: Path) -> bool:
    if not path.exists():
        return False
    with path.open(errors="replace") as file:
        return not file.readline().startswith(MARKER)


def _write_atomically(target: Path, text: str) -> None:
    """Asterisk may read the directory at any moment: it sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.chmod(tmp, 0o640)  # the files hold SIP, AMI and ARI secrets
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
