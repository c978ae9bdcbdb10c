"""The device registry in the running service and in `callbuddy-pbx devices`, against the simulated AMI server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.devices_model import Device
from callbuddy_pbx.config import AsteriskConfig, Config, InboundConfig, StorageConfig
from callbuddy_pbx.config.pbx import PbxConfig, Phone
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer, SimulatedPjsip
from callbuddy_pbx.sim.scenarios import ScenarioFactory
from callbuddy_pbx.store.db import CallStore
from tests.test_check_live import _ask, frames, recorded, recorded_pjsip, running_server
from tests.traces import TRACES_DIR

SECRET = "s3cret"


@contextlib.asynccontextmanager
async def service_on(
    tmp_path: Path, pjsip: SimulatedPjsip | None, *, denied: set[str] | None = None
) -> AsyncIterator[tuple[SimulatedAmiServer, CallService, list[CallRecord]]]:
    server = SimulatedAmiServer(secret=SECRET)
    server.pjsip = pjsip
    server.denied_actions = denied or set()
    await server.start()
    config = Config(
        asterisk=AsteriskConfig(port=server.port, secret=SECRET, reconnect_min_s=0.05, reconnect_max_s=0.2),
        storage=StorageConfig(tmp_path / "calls.sqlite3"),
        inbound=InboundConfig(trunk_endpoints=("PJSIP/trunk",)),
        pbx=PbxConfig(phones=(Phone("100", "Anna", "Glow"), Phone("101", "Ben", "Glow"))),
    )
    store = await CallStore.open(config.storage.path)
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append)
    task = asyncio.create_task(service.run())
    try:
        yield server, service, calls
    finally:
        await service.stop()
        await asyncio.wait_for(task, 5)
        await store.close()
        await server.stop()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def registered(service: CallService) -> dict[str, bool | None]:
    return {device.name: device.registered for device in service.devices.snapshot()}


def sim_device_states() -> list[dict[str, str]]:
    """The non-PJSIP devices of actions/devicestatelist.raw, as events the simulated PBX has sent."""
    return [
        {"Event": "DeviceStateChange", "Device": item["Device"], "State": item["State"]}
        for item in recorded("devicestatelist")
        if item.get("Event") == "DeviceStateChange" and not item["Device"].startswith("PJSIP/")
    ]


async def test_simulated_device_state_list_has_the_recorded_shape_and_states() -> None:
    async with SimulatedAmiServer() as server:
        server.pjsip = recorded_pjsip()
        await server.broadcast(sim_device_states())
        (answer,) = await _ask(server, ["DeviceStateList"])
    recording = (TRACES_DIR / "actions" / "devicestatelist.raw").read_bytes()
    assert frames(answer) == frames(recording)[1:-1]  # without the login and logoff responses

    def states(data: bytes) -> dict[str, str]:
        found = {}
        for block in data.split(b"\r\n\r\n"):
            fields = dict(line.split(": ", 1) for line in block.decode().split("\r\n") if ": " in line)
            if fields.get("Event") == "DeviceStateChange":
                found[fields["Device"]] = fields["State"]
        return found

    assert states(answer) == states(recording)


async def test_service_seeds_devices_after_login_and_follows_registrations(tmp_path: Path) -> None:
    async with service_on(tmp_path, recorded_pjsip()) as (server, service, _):
        await until(lambda: len(service.devices) == 3)
        assert service.ready.is_set()
        assert registered(service) == {"PJSIP/100": True, "PJSIP/101": True, "PJSIP/102": False}
        desk = service.devices.get("PJSIP/100")
        assert desk is not None
        assert (desk.person, desk.user_agent, desk.state) == ("Anna", "CallBuddy-Test-Desk-100", "NOT_INUSE")
        actions = [action["Action"] for action in server.actions]
        assert actions[actions.index("CoreShowChannels") :][:4] == [
            "CoreShowChannels",  # calls first: the devices come after the channel reconcile
            "PJSIPShowEndpoints",
            "PJSIPShowContacts",
            "DeviceStateList",
        ]

        await server.register_phone("102", "sip:102@127.0.0.1:5103", user_agent="Desk-102")
        await until(lambda: registered(service)["PJSIP/102"] is True)
        phone = service.devices.get("PJSIP/102")
        assert phone is not None and phone.state == "NOT_INUSE" and phone.contacts == ("sip:102@127.0.0.1:5103",)
        assert phone.state_changed_at is not None
        assert service.last_event_at is not None

        await server.unregister_phone("102")
        await until(lambda: registered(service)["PJSIP/102"] is False)
        await until(lambda: service.devices.get("PJSIP/102").contacts == ())  # type: ignore[union-attr]
        assert service.devices.get("PJSIP/102").state == "UNAVAILABLE"  # type: ignore[union-attr]


async def test_a_scripted_call_rings_the_desks(tmp_path: Path) -> None:
    async with service_on(tmp_path, recorded_pjsip()) as (server, service, calls):
        await until(lambda: len(service.devices) == 3)
        scenario = ScenarioFactory().ring_all_answered(answered_by="101")
        await server.broadcast([event.message for event in scenario.events])
        await until(lambda: len(calls) == 1)
        desks = {device.name: device for device in service.devices.snapshot()}
        assert desks["PJSIP/100"].last_call_at is not None and desks["PJSIP/101"].last_call_at is not None
        assert desks["PJSIP/101"].state == "NOT_INUSE"
        assert "PJSIP/trunk" not in desks


async def test_reconnect_reseeds_what_changed_while_away(tmp_path: Path) -> None:
    pjsip = recorded_pjsip()
    async with service_on(tmp_path, pjsip) as (server, service, _):
        await until(lambda: len(service.devices) == 3)
        await server.broadcast([{"Event": "DeviceStateChange", "Device": "PJSIP/101", "State": "INUSE"}])
        await until(lambda: service.devices.get("PJSIP/101").state == "INUSE")  # type: ignore[union-attr]
        server.drop_clients()
        await until(lambda: not service.ami.connected)
        pjsip.contacts.pop(1)  # 101's registration expired while we were disconnected (its call ended too)
        await until(lambda: service.ami.connects >= 2 and registered(service)["PJSIP/101"] is False)
        desk = service.devices.get("PJSIP/101")
        assert desk is not None and desk.state == "UNAVAILABLE" and desk.state_changed_at is not None


async def test_devices_that_cannot_be_asked_do_not_hold_up_calls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    denied = {"pjsipshowendpoints", "pjsipshowcontacts", "devicestatelist"}
    refused = ("not answered", "not allowed")
    with caplog.at_level(logging.INFO, logger="callbuddy_pbx.service.devices_seed"):
        async with service_on(tmp_path, None, denied=denied) as (server, service, calls):
            await until(lambda: service.ready.is_set())
            await until(lambda: sum(any(w in r.getMessage() for w in refused) for r in caplog.records) == 3)
            scenario = ScenarioFactory().ring_all_no_answer()
            await server.broadcast([event.message for event in scenario.events])
            await until(lambda: len(calls) == 1)
            # Still learnt from the events alone.
            assert registered(service) == {"PJSIP/100": True, "PJSIP/101": True}
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "devices:" in r.getMessage()]
    assert warnings and all("Permission denied" in message for message in warnings)
    # The two actions the rendered AMI user may not send (no `system` write class) are expected: info, not warnings.
    assert not any("PJSIPShow" in message for message in warnings)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "not allowed" in r.getMessage()]
    assert sorted(message.split()[1] for message in infos) == ["PJSIPShowContacts", "PJSIPShowEndpoints"]
    assert SECRET not in caplog.text


# -- `callbuddy-pbx devices` ---------------------------------------------------------------------------------------

YAML = """\
asterisk:
  host: 127.0.0.1
  port: {port}
  secret: callbuddy-secret
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
pbx:
  secret_key: kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
  phones:
    - {{extension: "100", name: Front desk, business: Glow Salon}}
    - {{extension: "101", name: Back office, business: Glow Salon}}
"""


def run_devices(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, str, str]:
    from callbuddy_pbx.cli import main

    code = main(["devices", "--config", str(path), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_devices_command_lists_the_phones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pjsip = recorded_pjsip()
    pjsip.contacts[0].user_agent = "Evil\x1b[2JPhone"
    with running_server(pjsip) as server:
        path = tmp_path / "site.yaml"
        path.write_text(YAML.format(port=server.port))
        code, out, err = run_devices(capsys, path)
        json_code, json_out, _ = run_devices(capsys, path, "--json")
        actions = [action["Action"] for action in server.actions]
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["Device", "Person", "Registered", "State", "Contacts", "User", "agent"]
    assert lines[1].split()[:5] == ["PJSIP/100", "Front", "desk", "yes", "NOT_INUSE"]
    assert "Evil[2JPhone" in lines[1] and "\x1b" not in out
    assert lines[2].split()[:5] == ["PJSIP/101", "Back", "office", "yes", "NOT_INUSE"]
    assert lines[3].split()[:4] == ["PJSIP/102", "-", "no", "UNAVAILABLE"]
    assert len(lines) == 4  # the trunk is not a phone
    assert "callbuddy-secret" not in out + err
    assert json_code == 0
    rows = [json.loads(line) for line in json_out.splitlines()]
    assert [(row["name"], row["registered"], row["person"]) for row in rows] == [
        ("PJSIP/100", True, "Front desk"),
        ("PJSIP/101", True, "Back office"),
        ("PJSIP/102", False, ""),
    ]
    assert rows[0]["contacts"] == ["sip:100@127.0.0.1:5101"]
    assert set(rows[0]) == set(Device.__dataclass_fields__)
    assert actions.count("DeviceStateList") == 2 and actions[-1] == "Logoff"


def test_devices_command_without_pjsip_uses_device_states(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_server(None) as server:
        path = tmp_path / "site.yaml"
        path.write_text(YAML.format(port=server.port))
        code, out, err = run_devices(capsys, path)
    assert code == 0
    assert out.strip() == "No phones on the PBX."
    assert "warning: PJSIPShowEndpoints" in err and "Invalid/unknown command" in err


def test_devices_command_as_the_rendered_ami_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No `system` write class (as `render` writes manager.conf): the PJSIP lists are refused, which is a note, not a
    warning, and the phones still come from DeviceStateList."""
    with running_server(recorded_pjsip()) as server:
        server.denied_actions = {"pjsipshowendpoints", "pjsipshowcontacts"}
        path = tmp_path / "site.yaml"
        path.write_text(YAML.format(port=server.port))
        code, out, err = run_devices(capsys, path)
    assert code == 0
    assert "warning" not in err
    assert "note: PJSIPShowEndpoints not allowed" in err and "note: PJSIPShowContacts not allowed" in err
    assert "PJSIP/100" in out


def test_devices_command_when_nothing_is_answered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_server(recorded_pjsip()) as server:
        server.denied_actions = {"pjsipshowendpoints", "pjsipshowcontacts", "devicestatelist"}
        path = tmp_path / "site.yaml"
        path.write_text(YAML.format(port=server.port))
        code, _, err = run_devices(capsys, path)
    assert code == 1
    assert "answered none of PJSIPShowEndpoints, PJSIPShowContacts, DeviceStateList" in err


def test_devices_command_with_the_pbx_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = tmp_path / "site.yaml"
    path.write_text(YAML.format(port=port))
    code, out, err = run_devices(capsys, path)
    assert code == 1
    assert out == ""
    assert err.startswith(f"callbuddy-pbx devices: cannot reach the PBX over AMI at 127.0.0.1:{port}: ")
    assert len(err.splitlines()) == 1


def test_devices_command_with_a_wrong_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_server(recorded_pjsip()) as server:
        path = tmp_path / "site.yaml"
        path.write_text(YAML.format(port=server.port).replace("callbuddy-secret", "wrong-secret"))
        code, _, err = run_devices(capsys, path)
    assert code == 1
    assert "refused the AMI login" in err and "wrong-secret" not in err
