"""`callbuddy-pbx check` asking the PBX whether the YAML's phones and trunks exist and are registered: the pure
comparison on real Asterisk 22 answers, the simulated AMI server's answers against those recordings, and the command
end to end against the simulated server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.ami import AmiClient, AmiMessage
from callbuddy_pbx.asterisk.ami_protocol import iter_stream
from callbuddy_pbx.cli import main
from callbuddy_pbx.config import AsteriskConfig, Config, load_config
from callbuddy_pbx.service.pbx_status import (
    Finding,
    PbxStatus,
    Registration,
    fetch_pbx_status,
    parse_contacts,
    parse_endpoints,
    parse_registrations,
    problems,
)
from callbuddy_pbx.sim.ami_server import (
    SimulatedAmiServer,
    SimulatedEndpoint,
    SimulatedPjsip,
    SimulatedRegistration,
    recorded_pjsip,
)
from tests.servers import on_own_loop

ACTIONS = Path(__file__).resolve().parents[2] / "shared" / "traces" / "asterisk" / "actions"

AMI_SECRET = "callbuddy-secret"
TRUNK_PASSWORD = "Trunk-Pa55word-never-shown"
DESK_PASSWORD = "desk100-secret"  # the SIP password in the recorded AuthDetail of pjsipshowendpoint-100.raw
CONFIGURE_100 = "configure the phone with server the PBX's address, user 100 and its secret"

YAML = """\
web:
  users:
    - name: ann
      password_hash: "scrypt$16384$8$1$ME7SorPw3iFGcaDxNdnOEQ==$ZH8wc64iri/u05JgfK7/2vm87H1VdJktsKYazEH/Sqc="
      role: admin
asterisk:
  host: {host}
  port: {port}
  secret: {secret}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
pbx:
  secret_key: kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
  phones:
    - {{extension: "100", name: Front desk, business: Glow Salon, location: "12 Main St, Springfield IL"}}
    - {{extension: "101", name: Back office, business: Glow Salon, location: "12 Main St, Springfield IL"}}
    - {{extension: "102", name: Stylist, business: Glow Salon, location: "12 Main St, Springfield IL"}}
  trunks:
    - name: trunk
      template: {template}
      fields: {fields}
      dids: ["+1 555 000 1000"]
"""
IP_AUTH_FIELDS = "{CARRIER_SIP_HOST: sip.carrier.example}"
REGISTRATION_FIELDS = (
    f'{{CARRIER_SIP_HOST: sip.carrier.example, TRUNK_USER: "15550001000", TRUNK_PASSWORD: "{TRUNK_PASSWORD}"}}'
)


def write_config(
    tmp_path: Path, *, port: int = 5038, host: str = "127.0.0.1", registers: bool = False, secret: str = AMI_SECRET
) -> Path:
    template, fields = ("pjsip-trunk-ip-auth", IP_AUTH_FIELDS)
    if registers:
        template, fields = ("pjsip-trunk-registration", REGISTRATION_FIELDS)
    path = tmp_path / "site.yaml"
    path.write_text(YAML.format(host=host, port=port, secret=secret, template=template, fields=fields))
    return path


def config_for(tmp_path: Path, **options: object) -> Config:
    return load_config(str(write_config(tmp_path, **options)))  # type: ignore[arg-type]


def recorded(name: str) -> list[AmiMessage]:
    """The events of a recorded action answer (not the login, the response or the logoff)."""
    messages = iter_stream((ACTIONS / f"{name}.raw").read_bytes())
    return [message for message in messages if "Event" in message]


def frames(data: bytes) -> list[list[str]]:
    """Each message's header names in order, with the name of the event or response kind."""
    shape = []
    for message in data.split(b"\r\n\r\n"):
        lines = message.decode().split("\r\n")
        if not lines[0] or lines[0].startswith("Asterisk Call Manager"):
            lines = lines[1:]
        if not lines:
            continue
        first = lines[0]
        shape.append(
            [first if first.startswith("Event:") else first.split(":")[0]] + [line.split(":")[0] for line in lines[1:]]
        )
    return shape


# -- pure: the recorded answers of a real Asterisk 22 --------------------------------------------------------------


def test_recorded_answers_show_102_not_registered(tmp_path):
    config = config_for(tmp_path)
    status = PbxStatus(
        endpoints=parse_endpoints(recorded("pjsipshowendpoints")),
        contacts=parse_contacts(recorded("pjsipshowcontacts")),
        registrations=(),
    )
    assert [endpoint.name for endpoint in status.endpoints or ()] == ["100", "101", "102", "trunk"]
    assert problems(config, status) == [
        Finding("ok", "phone 100 (Front desk)", "registered (NonQualified, CallBuddy-Test-Desk-100)", ""),
        Finding("ok", "phone 101 (Back office)", "registered (NonQualified, CallBuddy-Test-Desk-101)", ""),
        Finding(
            "warning",
            "phone 102 (Stylist)",
            "not registered",
            "configure the phone with server the PBX's address, user 102 and its secret "
            "(`callbuddy-pbx render` wrote it to pjsip.conf)",
        ),
        Finding(
            "ok",
            "trunk trunk (pjsip-trunk-ip-auth)",
            "endpoint present (no registration: the carrier sends calls to this PBX)",
            "",
        ),
    ]


def test_a_phone_missing_on_the_pbx_is_an_error_and_extra_endpoints_are_info(tmp_path):
    config = config_for(tmp_path)
    endpoints = [item for item in recorded("pjsipshowendpoints") if item.get("ObjectName") != "101"]
    endpoints.append({"Event": "EndpointList", "ObjectName": "199", "DeviceState": "Unavailable"})
    status = PbxStatus(parse_endpoints(endpoints), parse_contacts(recorded("pjsipshowcontacts")), ())
    found = {finding.subject: finding for finding in problems(config, status)}
    assert found["phone 101 (Back office)"].level == "error"
    assert found["phone 101 (Back office)"].state == "not on the PBX (no PJSIP endpoint)"
    assert "callbuddy-pbx render" in found["phone 101 (Back office)"].fix
    assert found["endpoint 199"].level == "info"
    assert found["endpoint 199"].state == "on the PBX, not in the YAML"


def test_registering_trunk_is_checked_by_its_outbound_registration(tmp_path):
    config = config_for(tmp_path, registers=True)
    endpoints = parse_endpoints(
        [{"Event": "EndpointList", "ObjectName": name} for name in ("100", "101", "102", "trunk")]
    )

    def trunk(registrations: tuple[Registration, ...] | None, unavailable: tuple[tuple[str, str], ...] = ()) -> Finding:
        return problems(config, PbxStatus(endpoints, (), registrations, unavailable))[3]

    good = Registration("trunk-reg", "trunk", "sip:sip.carrier.example", "Registered")
    assert trunk((good,)) == Finding(
        "ok", "trunk trunk (pjsip-trunk-registration)", "registered to sip:sip.carrier.example", ""
    )
    rejected = trunk((Registration("trunk-reg", "trunk", "sip:sip.carrier.example", "Rejected"),))
    assert rejected.level == "warning"
    assert rejected.state == "registration trunk-reg to sip:sip.carrier.example: Rejected"
    assert "user name and password" in rejected.fix and "pjsip send register trunk-reg" in rejected.fix
    assert trunk(()).level == "error"  # the template registers but the PBX has no registration: render not applied
    unknown = trunk(None, (("PJSIPShowRegistrationsOutbound", "Invalid/unknown command"),))
    assert unknown.level == "warning"
    assert unknown.state == "registration unknown (PJSIPShowRegistrationsOutbound failed: Invalid/unknown command)"


def test_unreachable_contacts_and_unknown_answers(tmp_path):
    config = config_for(tmp_path)
    endpoints = parse_endpoints(
        [{"Event": "EndpointList", "ObjectName": name} for name in ("100", "101", "102", "trunk")]
    )
    contacts = parse_contacts(
        [{"Event": "ContactList", "Endpoint": "100", "Uri": "sip:100@10.0.0.5", "Status": "Unavail"}]
    )
    found = problems(config, PbxStatus(endpoints, contacts, ()))
    assert found[0].level == "warning"
    assert found[0].state == "registered but not reachable (Unavail)"
    unknown = problems(config, PbxStatus(None, None, None, (("PJSIPShowEndpoints", "Invalid/unknown command"),)))
    assert {finding.level for finding in unknown} == {"warning"}
    assert unknown[-1].state == "unknown: PJSIPShowEndpoints failed (Invalid/unknown command)"


def test_pjsip_lists_refused_to_the_rendered_ami_user_are_info(tmp_path):
    """The rendered AMI user has no `system` write class: PJSIPShowEndpoints/Contacts are refused, on purpose."""
    config = config_for(tmp_path)
    denied = (("PJSIPShowEndpoints", "Permission denied"), ("PJSIPShowContacts", "Permission denied"))
    found = problems(config, PbxStatus(None, None, (), denied))
    phones = [finding for finding in found if finding.subject.startswith("phone")]
    assert phones and {finding.level for finding in phones} == {"info"}
    assert all("no `system` write class" in finding.state for finding in phones)
    assert "pjsip show contacts" in phones[0].fix
    assert found[-1].subject == "PJSIP endpoints" and found[-1].level == "info"
    assert "warning" not in {finding.level for finding in found if not finding.subject.startswith("trunk")}


def test_auth_details_between_registrations_are_dropped():
    items: list[AmiMessage] = [
        {"Event": "OutboundRegistrationDetail", "ObjectName": "trunk-reg", "Endpoint": "trunk", "Status": "Registered"},
        {"Event": "AuthDetail", "ObjectName": "trunk-auth", "Password": TRUNK_PASSWORD},
    ]
    parsed = parse_registrations(items)
    assert parsed == (Registration("trunk-reg", "trunk", "", "Registered"),)
    assert TRUNK_PASSWORD not in repr(parsed)


# -- the simulated server answers like the recordings -------------------------------------------------------------


async def _ask(server: SimulatedAmiServer, actions: list[str]) -> list[bytes]:
    """Raw answers to each action, framed as the recordings were (`.sent`: ActionID <action>-1)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await reader.readuntil(b"\r\n")
    writer.write(
        b"Action: Login\r\nActionID: login-1\r\nUsername: callbuddy\r\n"
        + f"Secret: {AMI_SECRET}\r\nEvents: off\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    answers = []
    for action in actions:
        writer.write(f"Action: {action}\r\nActionID: {action.lower()}-1\r\n\r\n".encode())
        data = b""
        while b"EventList: Complete" not in data and b"Response: Error" not in data:
            data += await reader.readuntil(b"\r\n\r\n")
        answers.append(data)
    writer.close()
    return answers


def test_simulated_answers_have_the_recorded_header_sequence():
    async def scenario() -> list[bytes]:
        async with SimulatedAmiServer() as server:
            server.pjsip = recorded_pjsip()
            return await _ask(server, ["PJSIPShowEndpoints", "PJSIPShowContacts"])

    endpoints, contacts = asyncio.run(scenario())
    for answer, name in ((endpoints, "pjsipshowendpoints"), (contacts, "pjsipshowcontacts")):
        expected = frames((ACTIONS / f"{name}.raw").read_bytes())[1:-1]  # without the login and logoff responses
        assert frames(answer) == expected
    # the values too, apart from the per-registration ones (contact hash, Call-ID, expiry)
    ours = [m for m in iter_stream(endpoints) if "Event" in m]
    assert ours == recorded("pjsipshowendpoints")
    varying = ("ObjectName", "CallId", "ExpirationTime")
    strip = lambda m: {k: v for k, v in m.items() if k not in varying}  # noqa: E731
    assert [strip(m) for m in iter_stream(contacts) if "Event" in m] == [
        strip(m) for m in recorded("pjsipshowcontacts")
    ]


def test_simulated_outbound_registrations_follow_asterisks_framing():
    async def scenario() -> tuple[bytes, bytes]:
        async with SimulatedAmiServer() as server:
            pjsip = recorded_pjsip()
            pjsip.registrations = [
                SimulatedRegistration(
                    "trunk-reg",
                    "trunk",
                    "sip:sip.carrier.example",
                    "sip:1@sip.carrier.example",
                    status="Rejected",
                    username="1",
                    password=TRUNK_PASSWORD,
                ),
            ]
            server.pjsip = pjsip
            (listed,) = await _ask(server, ["PJSIPShowRegistrationsOutbound"])
            pjsip.registrations = None  # res_pjsip_outbound_registration not loaded
            (refused,) = await _ask(server, ["PJSIPShowRegistrationsOutbound"])
            return listed, refused

    listed, refused = asyncio.run(scenario())
    shape = frames(listed)
    assert [frame[0] for frame in shape] == [
        "Response",
        "Event: OutboundRegistrationDetail",
        "Event: AuthDetail",
        "Event: OutboundRegistrationDetailComplete",
    ]
    assert shape[0] == ["Response", "ActionID", "EventList", "Message"]
    assert shape[-1] == [
        "Event: OutboundRegistrationDetailComplete",
        "ActionID",
        "EventList",
        "Registered",
        "NotRegistered",
    ]
    assert b"Status: Rejected\r\nNextReg: 0\r\n" in listed
    assert (
        b"Response: Error\r\nActionID: pjsipshowregistrationsoutbound-1\r\nMessage: Invalid/unknown command" in refused
    )


def test_fetch_records_a_missing_action_as_unknown():
    async def scenario() -> PbxStatus:
        async with SimulatedAmiServer() as server:
            pjsip = recorded_pjsip()
            pjsip.registrations = None
            server.pjsip = pjsip
            client = AmiClient(
                AsteriskConfig(port=server.port, secret=AMI_SECRET, ping_interval_s=0), on_event=lambda m, t: None
            )
            await client.connect()
            try:
                return await fetch_pbx_status(client)
            finally:
                await client.close()

    status = asyncio.run(scenario())
    assert [endpoint.name for endpoint in status.endpoints or ()] == ["100", "101", "102", "trunk"]
    assert [contact.endpoint for contact in status.contacts or ()] == ["100", "101"]
    assert status.registrations is None
    assert status.unavailable == (("PJSIPShowRegistrationsOutbound", "Invalid/unknown command"),)


# -- end to end: `callbuddy-pbx check` against the simulated server ------------------------------------------------


def running_server(pjsip: SimulatedPjsip | None) -> contextlib.AbstractContextManager[SimulatedAmiServer]:
    """A simulated AMI server on its own event loop thread (the command runs its own asyncio.run)."""
    server = SimulatedAmiServer()
    server.pjsip = pjsip
    return on_own_loop(server)


def run_check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_rows(out: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index("Phones and trunks on the PBX:")
    return lines[start + 1 :]


def test_check_shows_102_not_registered_and_exits_0(tmp_path, capsys):
    pjsip = recorded_pjsip()
    pjsip.contacts[0].user_agent = "Evil\x1b[2JPhone"  # terminal escapes from the PBX are shown escaped
    with running_server(pjsip) as server:
        config = write_config(tmp_path, port=server.port, registers=True)
        pjsip.registrations = [
            SimulatedRegistration(
                "trunk-reg",
                "trunk",
                "sip:sip.carrier.example",
                "sip:15550001000@sip.carrier.example",
                username="15550001000",
                password=TRUNK_PASSWORD,
            ),
        ]
        code, out, err = run_check(capsys, "--config", str(config))
        actions = [action["Action"] for action in server.actions]
    assert code == 0, out + err
    rows = table_rows(out)
    assert rows[0].split() == ["Phone", "or", "trunk", "State", "What", "to", "fix"]
    assert rows[1].startswith("ok") and "phone 100 (Front desk)" in rows[1] and "Evil\\x1b[2JPhone" in rows[1]
    assert "\x1b" not in out
    assert rows[2].startswith("ok") and "phone 101 (Back office)" in rows[2]
    assert rows[3].startswith("WARNING") and "phone 102 (Stylist)" in rows[3]
    assert "not registered" in rows[3] and "user 102 and its secret" in rows[3]
    assert rows[4].startswith("ok") and "registered to sip:sip.carrier.example" in rows[4]
    assert rows[-1] == "0 errors, 1 warning on the PBX"
    assert TRUNK_PASSWORD not in out + err
    assert AMI_SECRET not in out + err
    assert actions == [
        "Login",
        "PJSIPShowEndpoints",
        "PJSIPShowContacts",
        "PJSIPShowRegistrationsOutbound",
        "Logoff",
    ]


def test_check_exits_1_when_a_phone_is_unknown_to_asterisk_and_never_shows_sip_passwords(tmp_path, capsys):
    pjsip = recorded_pjsip()
    del pjsip.endpoints[2]  # 102 is in the YAML, not on the PBX: render was not applied
    pjsip.endpoints.append(SimulatedEndpoint("999"))
    # Feed the recorded AuthDetail (desk 100's SIP password) as a registration's auth, and a trunk's password.
    auth = next(m for m in recorded("pjsipshowendpoint-100") if m["Event"] == "AuthDetail")
    assert auth["Password"] == DESK_PASSWORD
    pjsip.registrations = [
        SimulatedRegistration(
            "trunk-reg",
            "trunk",
            "sip:sip.carrier.example",
            "sip:1@sip.carrier.example",
            status="Unregistered",
            username=auth["Username"],
            password=auth["Password"],
        ),
    ]
    with running_server(pjsip) as server:
        config = write_config(tmp_path, port=server.port, registers=True)
        code, out, err = run_check(capsys, "--config", str(config))
    assert code == 1
    rows = table_rows(out)
    row_102 = next(row for row in rows if "phone 102" in row)
    assert row_102.startswith("ERROR") and "not on the PBX" in row_102 and "callbuddy-pbx render" in row_102
    trunk = next(row for row in rows if "trunk trunk" in row)
    assert trunk.startswith("WARNING") and "trunk-reg to sip:sip.carrier.example: Unregistered" in trunk
    assert any(row.startswith("info") and "endpoint 999" in row for row in rows)
    assert rows[-1] == "1 error, 1 warning on the PBX"
    assert DESK_PASSWORD not in out + err
    assert TRUNK_PASSWORD not in out + err


def test_unreachable_pbx_is_one_clear_line_and_exit_0(tmp_path, capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, port=port)
    code, out, err = run_check(capsys, "--config", str(config))
    assert code == 0
    assert err == ""
    live = [line for line in out.splitlines() if "PBX not reachable" in line]
    assert len(live) == 1
    assert live[0].startswith(f"PBX not reachable at 127.0.0.1:{port}: ")
    assert live[0].endswith("; skipped the live checks")
    assert "Phones and trunks on the PBX" not in out


def test_offline_does_not_ask_the_pbx(tmp_path, capsys):
    with running_server(recorded_pjsip()) as server:
        config = write_config(tmp_path, port=server.port)
        code, out, _ = run_check(capsys, "--config", str(config), "--offline")
        assert server.actions_received == 0
    assert code == 0
    assert "Phones and trunks on the PBX" not in out
    assert "PBX not reachable" not in out


def test_pbx_without_pjsip_is_reported_and_exits_0(tmp_path, capsys):
    with running_server(None) as server:
        config = write_config(tmp_path, port=server.port)
        code, out, _ = run_check(capsys, "--config", str(config))
    assert code == 0
    assert "unknown: PJSIPShowEndpoints failed (Invalid/unknown command)" in out
