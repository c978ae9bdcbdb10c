"""A throwaway PostgreSQL cluster from Debian's packages, for the tests: on 127.0.0.1 at a free port, fsync off,
started once per test session and removed at its end; each test gets a database of its own.

initdb and pg_ctl refuse to run as root (CI runs as root): as root they run as the `postgres` user on a data folder
it owns. Without PostgreSQL installed the fixture fails, saying how to install it (`make test` installs it through
`make system-deps`): half of the store tests missing must never pass for a green run.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

SUPERUSER = "callbuddy_test"
TEST_DATABASE = "callbuddy_tests"
# A linguistic default collation (ICU's en-US: "abe" before "Zed"), as a production database often has: the store's
# text columns must still order as SQLite's do, byte by byte ("Zed" before "abe").
_LOCALE = ("--encoding=UTF8", "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US")
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    startup_s: float

    def url(self, database: str, schema: str | None = None) -> str:
        options = f"?options=-csearch_path%3D{schema}" if schema else ""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}{options}"

    def fresh_url(self) -> str:
        """The URL of a new, empty store: a schema of its own in the tests' database (a schema costs ~1 ms, a
        database ~100 ms, a copy of a migrated template database ~300 ms)."""
        name = f"t_{os.getpid()}_{next(_numbers)}"
        with psycopg.connect(self.url(TEST_DATABASE), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')  # a name made here, not data
        return self.url(TEST_DATABASE, name)


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_owner(command: list[str]) -> list[str]:
    """Run as `postgres` when we are root (initdb and pg_ctl refuse root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _unavailable(why: str) -> NoReturn:
    pytest.fail(f"PostgreSQL is needed by the store tests: {why} (apt-get install postgresql)", pytrace=False)


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    binaries = bin_dir()
    if binaries is None:
        _unavailable("no /usr/lib/postgresql/*/bin/initdb")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="callbuddy-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for folder in (root, sockets):
            os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    log = root / "server.log"
    try:
        subprocess.run(
            _as_owner(
                [str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--no-sync", *_LOCALE]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off"
        options += " -c full_page_writes=off -c max_connections=200"
        subprocess.run(
            _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
            check=True,
            capture_output=True,
            timeout=60,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        server_log = log.read_text(errors="replace")[-500:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"the cluster did not start: {exc} {detail.decode(errors='replace')[-300:]} {server_log}")
    try:
        cluster = Cluster("127.0.0.1", port, time.monotonic() - started)
        with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEST_DATABASE}")
        yield cluster
    finally:
        subprocess.run(
            _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)
