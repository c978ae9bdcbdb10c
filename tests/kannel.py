"""Debian's Kannel on loopback for tests: bearerbox + smsbox + fakesmsc, unprivileged, on free ports.

Use the `kannel` fixture (module scope) by importing it into a test module:

    from tests.kannel import KannelHarness, kannel_fixture  # noqa: F401 (the `kannel` fixture)

The generated kannel.conf has two fake SMSCs: `mt`, where a long-running fakesmsc receives our texts (the fake
SMSC link acknowledges them, so dlr-urls get types 8 then 1), and `mo`, where `inject_mo()` connects a short-lived
fakesmsc to send one text from a phone. An sms-service forwards every inbound text to the Kannel gateway's get-url
on `web_port` (start the web server there) and never replies itself (max-messages = 0).

When Kannel is missing: with CI=true the fixture fails; otherwise, as root, it installs the packages with apt-get;
else it fails saying how to install them.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callbuddy_pbx.config import GatewayConfig, WebConfig
from callbuddy_pbx.sms.http_kannel import KannelGateway
from tests.servers import free_port

BEARERBOX = Path("/usr/sbin/bearerbox")
SMSBOX = Path("/usr/sbin/smsbox")
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
PACKAGES = ("kannel", "kannel-extras")  # bearerbox/smsbox; fakesmsc
INSTALL_COMMAND = "apt-get update && apt-get install -y " + " ".join(PACKAGES)
UNPRIVILEGED_USER = "nobody"
GATEWAY_NAME = "kannel"
START_TIMEOUT_S = 15.0

_MT_LINE = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _missing() -> list[str]:
    return [str(path) for path in (BEARERBOX, SMSBOX, FAKESMSC) if not path.exists()]


def ensure_kannel() -> None:
    """Kannel's binaries are there, or installed now (locally, as root), or the test fails saying why."""
    missing = _missing()
    if not missing:
        return
    how = f"install it with: {INSTALL_COMMAND}"
    if _in_ci():
        pytest.fail(f"Kannel is not installed (missing {', '.join(missing)}); in CI, {how}", pytrace=False)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"Kannel is not installed (missing {', '.join(missing)}); as root, {how}", pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", *PACKAGES]
    result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:  # an empty or stale package index: update it, then try again
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, check=False)
        result = subprocess.run(install, capture_output=True, text=True, env=env, check=False)
    if _missing():
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        pytest.fail(f"could not install Kannel ({INSTALL_COMMAND}):\n{tail}", pytrace=False)


@dataclass
class KannelHarness:
    workdir: Path
    admin_port: int = field(default_factory=free_port)
    smsbox_port: int = field(default_factory=free_port)
    sendsms_port: int = field(default_factory=free_port)
    mt_port: int = field(default_factory=free_port)
    mo_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)  # where the test's web server must listen
    username: str = "callbuddy"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)
    webhook_token: str = field(default_factory=lambda: "tok%+&/" + secrets.token_urlsafe(12), repr=False)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # -- what the gateway under test is built from ------------------------------------------------------------------

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    @property
    def web(self) -> WebConfig:
        return WebConfig(
            host="127.0.0.1",
            port=self.web_port,
            public_url=f"http://127.0.0.1:{self.web_port}",
            webhook_token=self.webhook_token,
        )

    def gateway_config(self, *, password: str | None = None) -> GatewayConfig:
        return GatewayConfig(
            name=GATEWAY_NAME,
            kind="kannel",
            url=self.sendsms_url,
            username=self.username,
            password=self.password if password is None else password,
        )

    # -- life cycle -------------------------------------------------------------------------------------------------

    def config_text(self) -> str:
        get_url = KannelGateway(self.gateway_config(), self.web).inbound_get_url()
        return f"""\
group = core
admin-port = {self.admin_port}
admin-interface = 127.0.0.1
admin-password = {self.admin_password}
admin-allow-ip = 127.0.0.1
smsbox-port = {self.smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-level = 1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = mt
our-host = 127.0.0.1
port = {self.mt_port}
connect-allow-ip = 127.0.0.1

group = smsc
smsc = fake
smsc-id = mo
our-host = 127.0.0.1
port = {self.mo_port}
connect-allow-ip = 127.0.0.1
allowed-smsc-id = inject-only

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.smsbox_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-level = 1

group = sendsms-user
username = {self.username}
password = {self.password}
concatenation = true
max-messages = 10

group = sms-service
keyword = default
catch-all = true
max-messages = 0
omit-empty = true
get-url = "{get_url}"
"""

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        user: str | None = None
        group: str | None = None
        if os.geteuid() == 0:
            user, group = UNPRIVILEGED_USER, _group_of(UNPRIVILEGED_USER)
        process = subprocess.Popen(
            list(args),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            group=group,
            extra_groups=[] if user else None,
        )
        log.close()
        return process

    def start(self) -> None:
        conf = self.workdir / "kannel.conf"
        conf.write_text(self.config_text())
        if os.geteuid() == 0:  # readable by the unprivileged boxes only
            entry = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(conf, entry.pw_uid, entry.pw_gid)
        conf.chmod(0o600)
        self.processes["bearerbox"] = self._spawn("bearerbox", str(BEARERBOX), str(conf))
        self._wait_for(lambda: self._status() is not None, "the bearerbox admin port")
        self.processes["smsbox"] = self._spawn("smsbox", str(SMSBOX), str(conf))
        self.processes["fakesmsc"] = self._spawn(
            "fakesmsc", str(FAKESMSC), "-H", "127.0.0.1", "-r", str(self.mt_port), "-m", "0", "1 2 text unused"
        )
        self._wait_for(self._sendsms_answers, "the smsbox sendsms port")
        self._wait_for(lambda: self._smsc_online("mt") and self._smsbox_online(), "fakesmsc and smsbox online")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def _wait_for(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            dead = [name for name, process in self.processes.items() if process.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"not ready within {START_TIMEOUT_S:g} s"
                pytest.fail(f"Kannel did not start ({what}: {why}):\n{self.log_tails()}", pytrace=False)
            time.sleep(0.05)

    def log_tails(self, lines: int = 10) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- probes -----------------------------------------------------------------------------------------------------

    def _status(self) -> str | None:
        query = urllib.parse.urlencode({"password": self.admin_password})
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/status.txt?{query}", timeout=1) as answer:
                return str(answer.read().decode("utf-8", "replace"))
        except (OSError, urllib.error.URLError):
            return None

    def _sendsms_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.sendsms_url}?username=probe", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer (403 for this probe) means smsbox serves the port
        except OSError:
            return False

    def _smsc_line(self, smsc_id: str) -> str:
        status = self._status() or ""
        return next((line for line in status.splitlines() if line.strip().startswith(f"{smsc_id}[")), "")

    def _smsc_online(self, smsc_id: str) -> bool:
        return "(online" in self._smsc_line(smsc_id)

    def _smsbox_online(self) -> bool:
        status = self._status() or ""
        return any(line.strip().startswith("smsbox:") and "on-line" in line for line in status.splitlines())

    def _received_sms(self, smsc_id: str) -> int:
        found = re.search(r"rcvd: sms (\d+)", self._smsc_line(smsc_id))
        return int(found.group(1)) if found else 0

    # -- what fakesmsc saw, and what it sends -----------------------------------------------------------------------

    def mt_messages(self) -> list[tuple[str, str, str, str]]:
        """Texts the fake SMSC link delivered to fakesmsc: (sender, receiver, type, data as Kannel wrote it)."""
        log = (self.workdir / "fakesmsc.log").read_text(errors="replace")
        return [(m.group(1), m.group(2), m.group(3), m.group(4)) for m in _MT_LINE.finditer(log)]

    async def inject_mo(self, sender: str, receiver: str, text: str, *, ucs2: bool = False) -> None:
        """A phone writes to us: one text through the `mo` fake SMSC (fakesmsc is stopped once Kannel has it)."""
        if ucs2:
            kind, data = "ucs2", urllib.parse.quote(text.encode("utf-16-be"), safe="")
        else:
            kind, data = "text", text
        before = await asyncio.to_thread(self._received_sms, "mo")
        process = self._spawn(
            "inject",
            str(FAKESMSC),
            "-H",
            "127.0.0.1",
            "-r",
            str(self.mo_port),
            "-m",
            "1",
            f"{sender} {receiver} {kind} {data}",
        )
        try:
            deadline = time.monotonic() + 5.0
            while await asyncio.to_thread(self._received_sms, "mo") <= before:
                if time.monotonic() > deadline:
                    raise AssertionError(f"Kannel did not receive the injected text:\n{self.log_tails()}")
                await asyncio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 5)


def _group_of(user: str) -> str:
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


@pytest.fixture(scope="module", name="kannel")
def kannel_fixture() -> Iterator[KannelHarness]:
    ensure_kannel()
    workdir = Path(tempfile.mkdtemp(prefix="callbuddy-kannel-"))
    workdir.chmod(0o755)  # the boxes run as nobody: they must reach their configuration
    harness = KannelHarness(workdir)
    try:
        harness.start()
        yield harness
    finally:
        harness.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)
