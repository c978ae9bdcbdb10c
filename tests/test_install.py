"""A normal (non-editable) install works (issue 13): the wheel carries the trunk templates, the dialplan library and
the dashboard's files, and the installed package finds them, far from any checkout.

The wheel is built from a copy of the sources (pip's own build isolation, so setup.py and pyproject.toml are what
is tested), installed with `pip install --target` into a folder of its own, and run by this interpreter (which has
the dependencies) with that folder first on sys.path, from a working directory outside the checkout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "callbuddy_pbx", "sip_trunks", "dialplans")
SECRETS = {
    "AMI_SECRET": "ami-secret-from-the-environment",
    "SMPP_PASSWORD": "smpp-pw1",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "twilio-token-from-env",
    "WEBHOOK_TOKEN": "webhook-token-from-the-environment",
    "PBX_SECRET_KEY": "pbx-secret-key-from-the-environment-0123",
    "TRUNK_PASSWORD": "trunk-password-from-env",
}


class Installed:
    def __init__(self, site: Path, work: Path) -> None:
        self.site = site  # where the wheel was installed
        self.work = work  # the working directory: outside the checkout

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "COVERAGE_"))}
        return {**env, **SECRETS, "PYTHONPATH": str(self.site), "PYTHONDONTWRITEBYTECODE": "1"}

    def command(self, *args: str) -> list[str]:
        # -P: the working directory is not put on sys.path; PYTHONPATH puts the install before the checkout's
        # editable install in this interpreter's site-packages
        return [sys.executable, "-P", "-m", "callbuddy_pbx", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), cwd=self.work, env=self.env(), capture_output=True, text=True, timeout=60, check=False
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(base / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (base / "dist").glob("callbuddy_pbx-*.whl")
    site = base / "site"
    put = [*pip, "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)]
    done = subprocess.run(put, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    work = base / "work"
    work.mkdir()
    return Installed(site, work)


def example_config(folder: Path) -> Path:
    """The shipped example config, its state folder (/var/lib/callbuddy) moved into `folder`."""
    text = (ROOT / "asterisk_conf" / "callbuddy.example.yaml").read_text()
    path = folder / "callbuddy.yaml"
    path.write_text(text.replace("/var/lib/callbuddy", str(folder / "state")))
    return path


def test_the_installed_package_is_the_one_run(installed: Installed) -> None:
    probe = (
        "import callbuddy_pbx, callbuddy_pbx.config.pbx as pbx, callbuddy_pbx.asterisk.render as render;"
        "print(callbuddy_pbx.__file__); print(pbx.DEFAULT_TEMPLATES_DIR); print(render.dialplans_dir())"
    )
    result = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        cwd=installed.work,
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    package, templates, dialplans = (Path(line) for line in result.stdout.splitlines())
    package_dir = installed.site / "callbuddy_pbx"
    assert package == package_dir / "__init__.py"
    assert templates == package_dir / "_shipped" / "sip_trunks"
    assert dialplans == package_dir / "_shipped" / "dialplans"
    for name in ("web/static/app.css", "web/static/app.js", "web/templates/base.html", "py.typed"):
        assert (package_dir / name).is_file(), name
    shipped = {path.name for path in (ROOT / "sip_trunks").iterdir()}
    assert {path.name for path in templates.iterdir()} == shipped


def test_check_and_render_work_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    config = example_config(tmp_path)
    checked = installed.run("check", "--offline", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert "Glow Salon" in checked.stdout
    out = tmp_path / "asterisk"
    rendered = installed.run("render", "--config", str(config), "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    library = sorted(path.name for path in (ROOT / "dialplans").glob("callbuddy-*.conf"))
    assert library and all((out / name).is_file() for name in library)  # the dialplan library, copied
    pjsip = (out / "pjsip.conf").read_text()
    assert "; trunk trunk (twilio-elastic-sip)" in pjsip  # from the template inside the package
    assert "glowsalon.pstn.twilio.com" in pjsip
    extensions = (out / "extensions.conf").read_text()
    assert all(f"#include {name}\n" in extensions for name in library)


async def test_run_from_the_wheel_serves_the_dashboard_and_stops_cleanly(installed: Installed, tmp_path: Path) -> None:
    import aiohttp

    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    port = free_port()
    config = tmp_path / "callbuddy.yaml"
    config.write_text(
        f"asterisk: {{host: 127.0.0.1, port: {server.port}, username: callbuddy, secret: s3cret}}\n"
        f"web: {{host: 127.0.0.1, port: {port}}}\n"
        f"storage: {{path: {tmp_path / 'state' / 'calls.sqlite3'}}}\n"
    )
    service = await asyncio.create_subprocess_exec(
        *installed.command("run", "--config", str(config)),
        cwd=installed.work,
        env=installed.env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(15):
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
            async with http.get(f"http://127.0.0.1:{port}/static/app.css") as r:
                assert r.status == 200 and "CallBuddy dashboard" in await r.text()
            async with http.get(f"http://127.0.0.1:{port}/login") as r:
                assert r.status == 200 and "/static/app.css" in await r.text()
        assert server.clients > 0
        probe = [sys.executable, "-P", "-m", "callbuddy_pbx.healthcheck", str(config)]
        health = await asyncio.create_subprocess_exec(*probe, cwd=installed.work, env=installed.env())
        assert await asyncio.wait_for(health.wait(), 15) == 0  # the image's HEALTHCHECK, on the config's port
    finally:
        service.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(service.communicate(), 15)
        await server.stop()
    assert service.returncode == 0, err.decode()[-2000:]
    assert (tmp_path / "state" / "calls.sqlite3").is_file()


def test_the_health_probe_says_why_it_is_unhealthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from callbuddy_pbx.healthcheck import health_url, main

    port = free_port()  # nothing listens there
    config = tmp_path / "callbuddy.yaml"
    config.write_text(f"web: {{host: 0.0.0.0, port: {port}}}\n")
    assert main([str(config)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"unhealthy: http://127.0.0.1:{port}/healthz: ")
    assert main([str(tmp_path / "missing.yaml")]) == 1
    assert "cannot be read" in capsys.readouterr().err
    assert health_url("::1", 8081) == "http://[::1]:8081/healthz"
