"""`check` on push wake-up: the settings summarised without the keys, `push: true` without credentials warned
about, and the phones push-capable now from the PBX's contacts (a sleeping phone's binding is the service's only)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from callbuddy_pbx.cli import main
from callbuddy_pbx.commands.check_push import SLEEPING_NOTE, push_lines, push_live_lines, push_warnings
from callbuddy_pbx.config import Config, load_config
from callbuddy_pbx.config.pbx import NoAnswer, PbxConfig, Phone, RingGroup
from callbuddy_pbx.config.push import APNS_KEY_ENV, FCM_ACCOUNT_ENV, ApnsConfig, FcmConfig, PushConfig
from callbuddy_pbx.service.pbx_status import Contact, PbxStatus
from callbuddy_pbx.sim.ami_server import recorded_pjsip
from tests.config_files import Write, write
from tests.push_servers import BUNDLE_ID, CLIENT_EMAIL, KEY_ID, PROJECT_ID, TEAM_ID, pem
from tests.test_check_live import run_check, running_server, write_config
from tests.test_config_routing import BASE

__all__ = ["write"]  # fixture

APNS_PEM = pem(ec.generate_private_key(ec.SECP256R1()))
KEY_LINE = APNS_PEM.splitlines()[1]  # key material: never printed
APNS = ApnsConfig(KEY_ID, TEAM_ID, BUNDLE_ID, APNS_PEM, key_source="/etc/callbuddy/AuthKey.p8")
FCM = FcmConfig(PROJECT_ID, CLIENT_EMAIL, "-----BEGIN PRIVATE KEY-----\nsecret", key_source="$" + FCM_ACCOUNT_ENV)
PHONES = (Phone("100", "Desk", "Glow"), Phone("103", "Ana mobile", "Glow", push=True))
ROUTED = RingGroup("+15550001000", ("100", "103"), "ring_all", 20, 10, NoAnswer("hangup"), routing="callbuddy")
TOKEN = "c0ffee" * 10 + "beef"
APNS_URI = f"sip:103@10.0.0.9:40001;transport=tcp;pn-provider=apns;pn-prid={TOKEN};pn-param={TEAM_ID}.{BUNDLE_ID}.voip"
FCM_URI = "sip:104@10.0.0.8:40002;pn-provider=fcm;pn-prid=" + "f" * 40 + ";pn-param=salon-app"


NO_PUSH = PushConfig()


def config(push: PushConfig = NO_PUSH, groups: tuple[RingGroup, ...] = (ROUTED,)) -> Config:
    return Config(pbx=PbxConfig(phones=PHONES, ring_groups=groups), push=push)


def status(*contacts: Contact) -> PbxStatus:
    return PbxStatus(endpoints=(), contacts=contacts, registrations=())


def test_the_summary_names_each_services_identifiers_and_never_a_key() -> None:
    lines = push_lines(config(PushConfig(apns=dataclasses.replace(APNS, sandbox=True), fcm=FCM, push_wait_s=6)))
    text = "\n".join(lines)
    assert lines[0] == (
        f"Push:       APNs key {KEY_ID} of team {TEAM_ID}, app {BUNDLE_ID} (VoIP topic {BUNDLE_ID}.voip), "
        "sandbox (development builds); key from /etc/callbuddy/AuthKey.p8"
    )
    assert f"FCM project {PROJECT_ID} as {CLIENT_EMAIL}; service account from ${FCM_ACCOUNT_ENV}" in text
    assert "waits up to 6 s" in text and "push: true): 103 (Ana mobile)" in text
    assert KEY_LINE not in text and "secret" not in text
    assert push_lines(Config()) == []  # nothing about push on a site without it


def test_push_true_without_credentials_and_push_without_routing_are_warned_about() -> None:
    [warning] = push_warnings(config())
    assert warning.startswith("push: true on phone 103 (Ana mobile) but no push credentials are configured")
    assert push_warnings(config(PushConfig(apns=APNS))) == []
    [unrouted] = push_warnings(config(PushConfig(apns=APNS), groups=()))
    assert "no ring group has routing: callbuddy" in unrouted
    assert "no push credentials" in "\n".join(push_lines(config()))
    short = dataclasses.replace(ROUTED, ring_s=10)
    [capped] = push_warnings(config(PushConfig(apns=APNS, push_wait_s=6), groups=(short,)))
    assert capped == (
        "push.push_wait_seconds 6 is more than half of +15550001000's 10 s ring time: "
        "its calls wait 5 s for a woken phone"
    )
    assert push_warnings(config(PushConfig(apns=APNS, push_wait_s=5), groups=(short,))) == []


def test_phones_registered_with_push_now_are_listed_and_a_service_not_configured_is_warned() -> None:
    desk = Contact("100", "sip:100@10.0.0.5", "Avail")
    lines = push_live_lines(
        config(PushConfig(apns=APNS)), status(Contact("103", APNS_URI, "Avail"), desk, Contact("104", FCM_URI, "Avail"))
    )
    assert lines == [
        "Push-capable now (registered with push parameters):",
        "  phone 103 (Ana mobile) by APNs",
        "  phone 104 by FCM: WARNING no FCM credentials configured, it cannot be woken",
        f"  ({SLEEPING_NOTE})",
    ]
    assert TOKEN not in "\n".join(lines)
    assert push_live_lines(config(PushConfig(apns=APNS)), status())[0] == "Push-capable now: none registered"
    unlisted = PbxStatus(endpoints=None, contacts=None, registrations=None)
    assert "not known" in push_live_lines(config(PushConfig(apns=APNS)), unlisted)[0]
    assert push_live_lines(Config(), status(desk)) == []


@pytest.fixture
def apns_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APNS_KEY_ENV, APNS_PEM)


def test_check_prints_the_push_summary_and_warnings_end_to_end(
    write: Write, apns_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASE.replace(
        'name: Softphone, business: Glow Salon, person: "  Ana   Ruiz "}',
        "name: Softphone, business: Glow Salon, push: true}",
    )
    text += f"push:\n  apns:\n    key_id: {KEY_ID}\n    team_id: {TEAM_ID}\n    bundle_id: {BUNDLE_ID}\n"
    path = write(text)
    assert load_config(path).pbx.phones[1].push
    assert main(["check", "--offline", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"APNs key {KEY_ID} of team {TEAM_ID}" in out and f"key from ${APNS_KEY_ENV}" in out
    assert "push: true): 101 (Softphone)" in out and "production" in out
    assert KEY_LINE not in out + err
    # the same site without its credentials: a warning, not an error
    path = write(text.split("push:\n")[0])
    assert main(["check", "--offline", "--config", str(path)]) == 0
    _, err = capsys.readouterr()
    assert "warning: push: true on phone 101 (Softphone) but no push credentials are configured" in err


def test_check_lists_phones_registered_with_push_from_the_pbx(
    tmp_path: Path, apns_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pjsip = recorded_pjsip()
    pjsip.contacts[1].uri = APNS_URI.replace("103", "101")  # 101 registered with RFC 8599 parameters
    with running_server(pjsip) as server:
        path = write_config(tmp_path, port=server.port)
        text = path.read_text() + f"push:\n  apns:\n    key_id: {KEY_ID}\n    team_id: {TEAM_ID}\n"
        path.write_text(text + f"    bundle_id: {BUNDLE_ID}\n")
        code, out, err = run_check(capsys, "--config", str(path))
    assert code == 0, out + err
    lines = out.splitlines()
    start = lines.index("Push-capable now (registered with push parameters):")
    assert lines[start + 1 : start + 3] == ["  phone 101 (Back office) by APNs", f"  ({SLEEPING_NOTE})"]
    assert TOKEN not in out + err and KEY_LINE not in out + err
