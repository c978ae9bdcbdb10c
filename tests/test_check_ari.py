"""`callbuddy-pbx check` for numbers routed by the service: ARI's HTTP server, the ARI user's password and a Stasis
app connecting, against the simulated ARI (sim/ari_server.py); one clear line per problem, never the password."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.ari import AriClient
from callbuddy_pbx.config.asterisk import AriConfig
from callbuddy_pbx.service.ari_status import PROBE_SUFFIX, check_ari
from callbuddy_pbx.service.pbx_status import Finding
from callbuddy_pbx.sim.ami_server import recorded_pjsip
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from tests.servers import free_port, on_own_loop
from tests.test_check_live import run_check, running_server

PASSWORD = "sim-ari-password-1"  # the simulated PBX's
KEY = "check-ari-secret-key-0123456789abcdef"
ARI_TITLE = "ARI for the numbers CallBuddy routes (+15550001013):"

YAML = """\
asterisk: {{host: 127.0.0.1, port: {ami_port}, secret: ami-secret-for-tests}}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1013"]
pbx:
  secret_key: {key}
  phones:
    - {{extension: "100", name: Desk 100, business: Glow Salon}}
  ring_groups:
    - number: "+1 555 000 1013"
      members: ["100"]
      routing: {routing}
ari:
  url: {url}
{password}"""


def write_config(
    tmp_path: Path, url: str, *, password: str | None = PASSWORD, ami_port: int = 0, routing: str = "callbuddy"
) -> Path:
    path = tmp_path / "site.yaml"
    given = f"  password: {password}\n" if password is not None else ""
    port = ami_port or free_port()
    path.write_text(YAML.format(ami_port=port, key=KEY, url=url, password=given, routing=routing))
    return path


@contextlib.asynccontextmanager
async def sim_ari(password: str = PASSWORD) -> AsyncIterator[SimulatedAriServer]:
    async with SimulatedAriServer(password=password) as server:
        yield server


def threaded_ari(password: str = PASSWORD) -> contextlib.AbstractContextManager[SimulatedAriServer]:
    """The simulated ARI on its own loop thread: the command runs its own asyncio.run."""
    return on_own_loop(SimulatedAriServer(password=password))


def ari_lines(out: str) -> list[str]:
    lines = out.splitlines()
    return lines[lines.index(ARI_TITLE) + 1 :]


async def check(server: SimulatedAriServer, password: str = PASSWORD, *, derived: bool = False) -> list[Finding]:
    return await check_ari(AriConfig(url=server.url, password=password), derived=derived, timeout_s=3.0)


# -- check_ari against the simulated ARI ---------------------------------------------------------------------------


async def test_all_good_opens_and_closes_a_probe_websocket():
    async with sim_ari() as server:
        findings = await check(server)
        subject = f"ARI at {server.url}"
        assert findings == [
            Finding("ok", subject, "Asterisk 22.10.1 answers; user callbuddy accepted", ""),
            Finding(
                "info",
                "app callbuddy",
                "not connected now: until the service connects, calls to these numbers ring through the dialplan "
                "(fail open)",
                "",
            ),
            Finding(
                "ok", subject, "a Stasis app can connect (opened and closed the WebSocket as app callbuddy-check)", ""
            ),
        ]
        for _ in range(100):  # until the server has seen the close
            if "callbuddy-check" not in server.pbx.apps:
                break
            await asyncio.sleep(0.01)
        assert server.websocket_connects == 1
        assert server.open_websockets == 0
        assert "callbuddy-check" not in server.pbx.apps  # closed with no subscriptions: gone
        paths = [(r.method, r.path, r.query.get("app")) for r in server.requests]
        assert ("GET", "/ari/events", f"callbuddy{PROBE_SUFFIX}") in paths
        assert ("GET", "/ari/events", "callbuddy") not in paths  # never as the service's own app


async def test_a_connected_service_is_left_alone():
    async with sim_ari() as server:
        service = AriClient(AriConfig(url=server.url, password=PASSWORD), event_sources=())
        running = asyncio.create_task(service.run())
        try:
            for _ in range(100):
                if service.connected:
                    break
                await asyncio.sleep(0.01)
            findings = await check(server)
            assert [finding.level for finding in findings] == ["ok", "info", "ok"]
            assert findings[1].state.startswith("registered in Asterisk: the service is connected, or the app is left")
            assert service.connected and server.websockets_for("callbuddy") == 1
            assert service.connects == 1
        finally:
            await service.close()
            await running


async def test_wrong_password_says_which_user_and_how_to_fix_it():
    async with sim_ari() as server:
        [derived] = await check(server, "not-the-password-1", derived=True)
        [given] = await check(server, "not-the-password-1", derived=False)
    for finding in (derived, given):
        assert finding.level == "error"
        assert finding.state == "401 for user callbuddy: the user is not in ari.conf, or its password differs"
        assert "not-the-password-1" not in repr(finding)
    assert derived.fix.startswith("re-run `callbuddy-pbx render --config ... --out /etc/asterisk`, which writes the")
    assert given.fix.startswith("set ari.password to the password of [callbuddy] in ari.conf, or remove it and re-run")
    assert given.fix.endswith("then `asterisk -rx 'module reload res_ari.so'`")


async def test_nothing_listening():
    url = f"http://127.0.0.1:{free_port()}"
    findings = await check_ari(AriConfig(url=url, password=PASSWORD), derived=True, timeout_s=3.0)
    assert findings == [
        Finding(
            "error",
            f"ARI at {url}",
            "nothing answers (connection refused)",
            f"start Asterisk, or apply the rendered http.conf, which serves ARI on 127.0.0.1:{url.rsplit(':', 1)[1]}: "
            "re-run `callbuddy-pbx render --config ... --out /etc/asterisk`, then `asterisk -rx 'module reload http'`",
        )
    ]
    [warning] = await check_ari(AriConfig(url=url), derived=True, timeout_s=3.0, unreachable="warning")
    assert warning.level == "warning"
    [elsewhere] = await check_ari(AriConfig(url="http://pbx.invalid:8088"), derived=True, timeout_s=3.0)
    assert elsewhere.level == "error"  # name not found, or no answer in time where DNS is slow
    assert "render keeps Asterisk's HTTP server on 127.0.0.1:8088" in elsewhere.fix


async def test_app_connect_refused():
    async with sim_ari() as server:
        server.fail_next(400, "Invalid application name", method="GET", path="/ari/events")
        findings = await check(server)
    assert [finding.level for finding in findings] == ["ok", "info", "error"]
    assert findings[2].state == "the event WebSocket was refused (400)"
    assert "res_ari_events.so" in findings[2].fix


async def test_no_ari_behind_the_http_server_and_asterisk_booting():
    async with sim_ari() as server:
        server.fail_next(404, "Resource not found", path="/ari/asterisk/info")
        [missing] = await check(server)
        server.restart(booting_s=5.0)
        [booting] = await check(server)
    assert missing.level == "error"
    assert missing.state == "the HTTP server answers but serves no ARI (404 for /ari/asterisk/info)"
    assert "module load res_ari.so" in missing.fix
    assert (booting.level, booting.state) == ("warning", "Asterisk is still starting (503 Asterisk not booted)")


# -- the command ---------------------------------------------------------------------------------------------------


def test_check_reports_ari_ok_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with threaded_ari() as server:
        code, out, err = run_check(capsys, "--config", str(write_config(tmp_path, server.url)))
    assert code == 0, out + err
    assert f"ARI:        {server.url} as callbuddy, app callbuddy (password set)" in out
    assert ari_lines(out) == [
        f"  ok ARI at {server.url}: Asterisk 22.10.1 answers; user callbuddy accepted",
        "  info app callbuddy: not connected now: until the service connects, calls to these numbers ring through "
        "the dialplan (fail open)",
        f"  ok ARI at {server.url}: a Stasis app can connect (opened and closed the WebSocket as app callbuddy-check)",
        "0 errors, 0 warnings on ARI",
    ]
    assert PASSWORD not in out + err


def test_check_with_the_wrong_password_exits_1_and_never_prints_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with threaded_ari(password="what-ari-conf-says-1") as server:
        config = write_config(tmp_path, server.url, password=None)  # derived from pbx.secret_key
        code, out, err = run_check(capsys, "--config", str(config))
    assert code == 1
    assert "password derived from pbx.secret_key, as render writes it" in out
    [line, counts] = ari_lines(out)
    assert line.startswith(
        f"  ERROR ARI at {server.url}: 401 for user callbuddy: the user is not in ari.conf, or its password differs; "
        "to fix: re-run `callbuddy-pbx render"
    )
    assert counts == "1 error, 0 warnings on ARI"
    assert "what-ari-conf-says-1" not in out + err


def test_nothing_listening_is_an_error_only_when_the_pbx_answered(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    url = f"http://127.0.0.1:{free_port()}"
    code, out, _ = run_check(capsys, "--config", str(write_config(tmp_path, url)))
    assert code == 0  # no PBX here at all (AMI unreachable too): as for AMI, a warning
    assert "PBX not reachable" in out
    assert ari_lines(out)[0].startswith(f"  WARNING ARI at {url}: nothing answers (connection refused); to fix: ")
    with running_server(recorded_pjsip()) as ami:
        code, out, _ = run_check(capsys, "--config", str(write_config(tmp_path, url, ami_port=ami.port)))
    assert code == 1  # the PBX answered over AMI, but not at ari.url: http.conf is not applied
    assert ari_lines(out)[0].startswith(f"  ERROR ARI at {url}: nothing answers (connection refused)")


def test_app_connect_refused_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with threaded_ari() as server:
        server.fail_next(503, "Asterisk not booted", method="GET", path="/ari/events")
        server.fail_next(400, "Invalid application name", method="GET", path="/ari/events")
        code, out, _ = run_check(capsys, "--config", str(write_config(tmp_path, server.url)))
    # The first scripted failure answers the upgrade: 503 is only a warning (Asterisk booting)
    assert code == 0
    assert ari_lines(out)[2] == (
        f"  WARNING ARI at {server.url}: event WebSocket: Asterisk is still starting (503); to fix: check again"
    )
    with threaded_ari() as server:
        server.fail_next(400, "Invalid application name", method="GET", path="/ari/events")
        code, out, _ = run_check(capsys, "--config", str(write_config(tmp_path, server.url)))
    assert code == 1
    assert ari_lines(out)[2].startswith(f"  ERROR ARI at {server.url}: the event WebSocket was refused (400); to fix:")


def test_offline_and_dialplan_routing_do_not_ask_ari(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with threaded_ari() as server:
        code, out, _ = run_check(capsys, "--config", str(write_config(tmp_path, server.url)), "--offline")
        assert code == 0 and ARI_TITLE not in out
        code, out, _ = run_check(capsys, "--config", str(write_config(tmp_path, server.url, routing="dialplan")))
        assert code == 0 and "ARI for the numbers" not in out
        assert not server.requests
