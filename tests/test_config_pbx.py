"""The `pbx:` section of the YAML configuration (phones, ring groups, trunks): every rule, with the exact file:line
an installer is pointed to, and secrets kept out of messages and reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from callbuddy_pbx.config import load_config
from callbuddy_pbx.config.pbx import (
    DEFAULT_TEMPLATES_DIR,
    NoAnswer,
    PbxConfig,
    Phone,
    RingGroup,
    Trunk,
    is_host_name,
    template_fields,
)
from tests.config_files import problems_of, yaml_writer

SECRETS = {
    "PBX_SECRET_KEY": "k" * 16 + "-pbx-secret-key-1",  # 33 characters
    "PHONE_101_SECRET": "phone-101-secret-value",
    "TRUNK_PASSWORD": "trunk-password-0001",
}

# Line numbers matter: the broken cases below change one line of this file and expect its line in the message.
FULL = """\
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000", "+1 555 000 1003"]
  - name: Fix Auto
    numbers: ["+1 555 000 2000"]
asterisk:
  host: 127.0.0.1
pbx:
  asterisk_version: 22
  secret_key: ${PBX_SECRET_KEY}
  sip_port: 5060
  local_net: [192.168.1.0/24, "10.0.0.0/8"]
  external_address: 203.0.113.10
  templates_dir: templates
  phones:
    - {extension: "100", name: Front desk, business: Glow Salon, secret: auto}
    - {extension: "101", name: Back office, business: Glow Salon, secret: "${PHONE_101_SECRET}", voicemail: false}
    - {extension: "200", name: Garage, business: Fix Auto}
  ring_groups:
    - number: "+1 555 000 1000"
      members: ["100", "101"]
      strategy: ring_all
      ring_seconds: 20
      total_seconds: 60
      no_answer: {action: voicemail, extension: "100"}
    - number: "(555) 000-2000"
      members: ["200"]
      strategy: in_order
      no_answer: {action: forward, number: "+1 555 987 6543"}
  trunks:
    - name: trunk
      template: registration
      fields: {CARRIER_SIP_HOST: sip.example.net, TRUNK_USER: "1234", TRUNK_PASSWORD: "${TRUNK_PASSWORD}"}
      dids: ["+1 555 000 1000", "+1 555 000 1003"]
    - name: trunk2
      template: ip-auth
      fields: {CARRIER_SIP_HOST: sip2.example.net}
      dids: ["+15550002000"]
"""

REGISTRATION = """\
; A SIP trunk that registers to the carrier.
; fields: CARRIER_SIP_HOST TRUNK_USER TRUNK_PASSWORD

[${name}-auth]
type = auth
username = ${TRUNK_USER}
password = ${TRUNK_PASSWORD}
"""
IP_AUTH = "; fields: CARRIER_SIP_HOST\n[${name}]\ntype = aor\ncontact = sip:${CARRIER_SIP_HOST}\n"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def write(tmp_path: Path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "registration.conf").write_text(REGISTRATION, encoding="utf-8")
    (templates / "ip-auth.conf").write_text(IP_AUTH, encoding="utf-8")

    return yaml_writer(tmp_path)


# -- the full example ------------------------------------------------------------------------------------------------


def test_full_example_loads_with_the_right_types(write):
    path = write(FULL)
    pbx = load_config(path).pbx
    assert isinstance(pbx, PbxConfig)
    assert pbx.asterisk_version == 22
    assert pbx.secret_key == SECRETS["PBX_SECRET_KEY"]
    assert pbx.sip_port == 5060
    assert pbx.local_net == ("192.168.1.0/24", "10.0.0.0/8")
    assert pbx.external_address == "203.0.113.10"
    assert pbx.templates_dir == path.parent / "templates"
    assert pbx.phones == (
        Phone("100", "Front desk", "Glow Salon", "auto", True),
        Phone("101", "Back office", "Glow Salon", SECRETS["PHONE_101_SECRET"], False),
        Phone("200", "Garage", "Fix Auto", "auto", True),
    )
    assert pbx.ring_groups == (
        RingGroup(
            "+15550001000",
            ("100", "101"),
            "ring_all",
            20,
            60,
            NoAnswer("voicemail", extension="100"),
            business="Glow Salon",
        ),
        RingGroup(
            "+15550002000",
            ("200",),
            "in_order",
            20,
            60,
            NoAnswer("forward", number="+15559876543"),
            business="Fix Auto",
        ),
    )
    assert pbx.trunks == (
        Trunk(
            "trunk",
            "registration",
            (
                ("CARRIER_SIP_HOST", "sip.example.net"),
                ("TRUNK_USER", "1234"),
                ("TRUNK_PASSWORD", "trunk-password-0001"),
            ),
            ("+15550001000", "+15550001003"),
        ),
        Trunk("trunk2", "ip-auth", (("CARRIER_SIP_HOST", "sip2.example.net"),), ("+15550002000",)),
    )


def test_secrets_are_never_in_repr(write):
    config = load_config(write(FULL))
    for text in (repr(config), repr(config.pbx), *map(repr, config.pbx.phones), *map(repr, config.pbx.trunks)):
        for secret in SECRETS.values():
            assert secret not in text
    assert "Front desk" in repr(config.pbx)  # the rest is still shown


def test_secrets_are_never_in_messages(write, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TRUNK_PASSWORD", "tiny-pw")
    monkeypatch.setenv("PBX_SECRET_KEY", "short-key-value")
    text = FULL.replace('secret: "${PHONE_101_SECRET}"', "secret: sh0rt-pw")
    problems = problems_of(write(text))
    assert [problem.split(": ")[1] for problem in problems] == [
        "pbx.secret_key",  # once, not again on the `auto` phones
        "pbx.phones[1].secret",
        "pbx.ring_groups[0].members[1]",  # 101 is not a phone
        "pbx.trunks[0].fields.TRUNK_PASSWORD",
    ]
    for secret in ("tiny-pw", "short-key-value", "sh0rt-pw"):
        assert all(secret not in problem for problem in problems)


def test_without_a_pbx_section_nothing_is_required(write):
    assert load_config(write("businesses: []\n")).pbx == PbxConfig()
    assert load_config(write("pbx:\n")).pbx == PbxConfig()


def test_ring_group_defaults_and_long_ring(write):
    text = FULL.replace("      ring_seconds: 20\n      total_seconds: 60\n", "      ring_seconds: 90\n\n")
    group = load_config(write(text)).pbx.ring_groups[0]
    assert (group.ring_s, group.total_s) == (90, 90)  # without total_seconds, never less than ring_seconds
    hangup = FULL.replace('{action: voicemail, extension: "100"}', "{action: hangup}")
    assert load_config(write(hangup)).pbx.ring_groups[0].no_answer == NoAnswer("hangup")


def test_numbers_are_read_in_the_regions_of_the_businesses(write):
    text = """\
    businesses:
      - {name: Cafe, numbers: ["020 7946 0000"], default_region: GB}
    pbx:
      phones: [{extension: "10", name: Till, business: Cafe, secret: till-secret-01, voicemail: false}]
      ring_groups: [{number: "020 7946 0000", members: ["10"]}]
    """
    [group] = load_config(write(text)).pbx.ring_groups
    assert (group.number, group.business) == ("+442079460000", "Cafe")


def test_absolute_templates_dir(write, tmp_path: Path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "registration.conf").write_text(REGISTRATION, encoding="utf-8")
    (other / "ip-auth.conf").write_text(IP_AUTH, encoding="utf-8")
    config = load_config(write(FULL.replace("templates_dir: templates", f"templates_dir: {other}")))
    assert config.pbx.templates_dir == other


def test_default_templates_dir_is_the_repository_folder():
    assert Path(__file__).resolve().parents[1] / "sip_trunks" == DEFAULT_TEMPLATES_DIR
    assert DEFAULT_TEMPLATES_DIR.is_dir()
    assert PbxConfig().templates_dir == DEFAULT_TEMPLATES_DIR


def test_template_fields_header(tmp_path: Path):
    file = tmp_path / "t.conf"
    file.write_text("; about\n;fields: A B\n; fields:  C   A\n[x]\nkey = ${A}\n", encoding="utf-8")
    assert template_fields(file) == ("A", "B", "C")
    file.write_text("[x]\n", encoding="utf-8")
    assert template_fields(file) == ()


@pytest.mark.parametrize(
    ("name", "ok"),
    [("sip.example.net", True), ("pbx", True), ("a-b.c.", True), ("bad_host", False), ("-x.net", False),
     ("1.2.3.999", False), ("", False), ("a" * 64 + ".net", False)],
)  # fmt: skip
def test_is_host_name(name: str, ok: bool):
    assert is_host_name(name) is ok


# -- broken configurations: (what is changed in FULL, into what, every message in file order) ------------------------

P = "{path}"
BROKEN: list[tuple[str, str, str, list[str]]] = [
    ("extension-digits", 'extension: "100", name', 'extension: "1x", name', [
        f'{P}:16: pbx.phones[0].extension: \'1x\' is not an extension (expected 2 to 6 digits, e.g. "100")',
        f"{P}:21: pbx.ring_groups[0].members[0]: 100 is not a phone's extension (see pbx.phones)",
        f"{P}:25: pbx.ring_groups[0].no_answer.extension: 100 is not a phone's extension (see pbx.phones)",
    ]),
    ("extension-too-long", 'extension: "200"', "extension: 2000000", [
        f'{P}:18: pbx.phones[2].extension: \'2000000\' is not an extension (expected 2 to 6 digits, e.g. "100")',
        f"{P}:27: pbx.ring_groups[1].members[0]: 200 is not a phone's extension (see pbx.phones)",
    ]),
    ("extension-twice", 'extension: "200"', 'extension: "101"', [
        f"{P}:18: pbx.phones[2].extension: 101 is already used (line 17)",
        f"{P}:27: pbx.ring_groups[1].members[0]: 200 is not a phone's extension (see pbx.phones)",
    ]),
    ("business-unknown", "business: Fix Auto}", "business: Fix Autos}", [
        f"{P}:18: pbx.phones[2].business: no business named 'Fix Autos' (did you mean 'Fix Auto'?)",
        f"{P}:27: pbx.ring_groups[1].members[0]: 200 is not a phone's extension (see pbx.phones)",
    ]),
    ("business-missing", ", business: Fix Auto}", "}", [
        f"{P}:18: pbx.phones[2]: missing required key 'business' (the name of the business it belongs to)",
        f"{P}:27: pbx.ring_groups[1].members[0]: 200 is not a phone's extension (see pbx.phones)",
    ]),
    ("phone-secret-short", 'secret: "${PHONE_101_SECRET}"', "secret: sh0rt-pw", [
        f"{P}:17: pbx.phones[1].secret: expected 'auto' or a password of at least 12 characters on one line "
        "(`callbuddy-pbx secrets` prints strong ones)",
        f"{P}:21: pbx.ring_groups[0].members[1]: 101 is not a phone's extension (see pbx.phones)",
    ]),
    ("auto-without-secret-key", "  secret_key: ${PBX_SECRET_KEY}\n", "  # no secret_key\n", [
        f"{P}:16: pbx.phones[0].secret: secret 'auto' needs pbx.secret_key (at least 32 characters; "
        "`callbuddy-pbx secrets` prints strong ones)",
        f"{P}:18: pbx.phones[2]: secret 'auto' needs pbx.secret_key (at least 32 characters; "
        "`callbuddy-pbx secrets` prints strong ones)",
    ]),
    ("secret-key-short", "secret_key: ${PBX_SECRET_KEY}", "secret_key: " + "x" * 31, [
        f"{P}:10: pbx.secret_key: too short: use at least 32 characters (`callbuddy-pbx secrets` prints strong ones)",
    ]),
    ("unknown-pbx-key", "  sip_port: 5060", "  sip_prot: 5060", [
        f"{P}:11: pbx.sip_prot: unknown key (did you mean 'sip_port'?)",
    ]),
    ("asterisk-version", "asterisk_version: 22", "asterisk_version: 21", [
        f"{P}:9: pbx.asterisk_version: Asterisk 21 is not supported (expected 20 or 22)",
    ]),
    ("sip-port", "sip_port: 5060", "sip_port: 70000", [
        f"{P}:11: pbx.sip_port: 70000 is out of range (expected a whole number from 1 to 65535)",
    ]),
    ("local-net-host-bits", "[192.168.1.0/24,", "[192.168.1.5/24,", [
        f"{P}:12: pbx.local_net[0]: '192.168.1.5/24' has host bits set (did you mean '192.168.1.0/24'?)",
    ]),
    ("local-net-not-cidr", '"10.0.0.0/8"', '"10.0.0.0"', [
        f"{P}:12: pbx.local_net[1]: '10.0.0.0' is not a network (expected e.g. 192.168.1.0/24)",
    ]),
    ("external-address", "external_address: 203.0.113.10", "external_address: 203.0.113.300", [
        f"{P}:13: pbx.external_address: '203.0.113.300' is not an IP address or host name (expected e.g. 203.0.113.10)",
    ]),
    ("templates-dir", "templates_dir: templates", "templates_dir: no-such-folder", [
        f"{P}:14: pbx.templates_dir: 'no-such-folder' is not a folder",
    ]),
    ("ami-public", "host: 127.0.0.1", "host: 8.8.8.8", [
        f"{P}:7: asterisk.host: 8.8.8.8 is a public address: AMI must not be reached over the internet; put CallBuddy "
        "on the PBX host or a private network",
    ]),
    ("ring-number-not-business", 'number: "+1 555 000 1000"', 'number: "+1 555 000 9999"', [
        f"{P}:20: pbx.ring_groups[0].number: +15550009999 is not a number of any configured business",
    ]),
    ("ring-number-invalid", 'number: "+1 555 000 1000"', 'number: "12"', [
        f"{P}:20: pbx.ring_groups[0].number: '12' is not a phone number (expected e.g. +15550001000 or a number "
        "valid in region US)",
    ]),
    ("ring-number-twice", 'number: "(555) 000-2000"', 'number: "+15550001000"', [
        f"{P}:26: pbx.ring_groups[1].number: +15550001000 already has a ring group (line 20)",
    ]),
    ("members-empty", 'members: ["200"]', "members: []", [
        f"{P}:27: pbx.ring_groups[1].members: expected at least one extension",
    ]),
    ("members-unknown", 'members: ["200"]', 'members: ["300"]', [
        f"{P}:27: pbx.ring_groups[1].members[0]: 300 is not a phone's extension (see pbx.phones)",
    ]),
    ("members-twice", 'members: ["100", "101"]', 'members: ["100", "100"]', [
        f"{P}:21: pbx.ring_groups[0].members[1]: 100 is listed twice",
    ]),
    ("strategy", "strategy: ring_all", "strategy: ring_al", [
        f"{P}:22: pbx.ring_groups[0].strategy: 'ring_al' is not allowed (did you mean 'ring_all'?)",
    ]),
    ("ring-seconds", "ring_seconds: 20", "ring_seconds: 3", [
        f"{P}:23: pbx.ring_groups[0].ring_seconds: 3 is out of range (expected a whole number from 5 to 300)",
    ]),
    ("total-below-ring", "total_seconds: 60", "total_seconds: 10", [
        f"{P}:24: pbx.ring_groups[0].total_seconds: 10 is less than ring_seconds (20)",
    ]),
    ("no-answer-action", "{action: voicemail,", "{action: voicmail,", [
        f"{P}:25: pbx.ring_groups[0].no_answer.action: 'voicmail' is not allowed (did you mean 'voicemail'?)",
    ]),
    ("voicemail-off", 'extension: "100"}', 'extension: "101"}', [
        f"{P}:25: pbx.ring_groups[0].no_answer.extension: 101 has voicemail: false",
    ]),
    ("voicemail-no-phone", 'extension: "100"}', 'extension: "555"}', [
        f"{P}:25: pbx.ring_groups[0].no_answer.extension: 555 is not a phone's extension (see pbx.phones)",
    ]),
    ("voicemail-needs-extension", '{action: voicemail, extension: "100"}', "{action: voicemail}", [
        f"{P}:25: pbx.ring_groups[0].no_answer: action 'voicemail' needs key 'extension' (whose mailbox takes the "
        "message)",
    ]),
    ("hangup-with-extension", "{action: voicemail,", "{action: hangup,", [
        f"{P}:25: pbx.ring_groups[0].no_answer.extension: not used with action 'hangup'",
    ]),
    ("forward-needs-number", '{action: forward, number: "+1 555 987 6543"}', "{action: forward}", [
        f"{P}:29: pbx.ring_groups[1].no_answer: action 'forward' needs key 'number' (where calls are forwarded, "
        "E.164)",
    ]),
    ("forward-invalid", 'number: "+1 555 987 6543"', 'number: "12345"', [
        f"{P}:29: pbx.ring_groups[1].no_answer.number: '12345' is not a phone number (expected e.g. +15550001000 "
        "or a number valid in region US)",
    ]),
    ("trunk-name-twice", "name: trunk2", "name: trunk", [
        f"{P}:35: pbx.trunks[1].name: 'trunk' is already used (line 31)",
    ]),
    ("trunk-name-invalid", "name: trunk2", "name: my trunk", [
        f"{P}:35: pbx.trunks[1].name: 'my trunk' is not a PJSIP name (use letters, digits, - and _)",
    ]),
    ("trunk-name-is-extension", "name: trunk2", 'name: "200"', [
        f"{P}:35: pbx.trunks[1].name: '200' is also a phone's extension (PJSIP endpoint names must differ)",
    ]),
    ("template-missing", "template: registration", "template: registraton", [
        f"{P}:32: pbx.trunks[0].template: no template 'registraton' in pbx.templates_dir (did you mean "
        "'registration'?)",
    ]),
    ("template-path", "template: registration", "template: ../site", [
        f"{P}:32: pbx.trunks[0].template: no template '../site' in pbx.templates_dir (expected one of: ip-auth, "
        "registration)",
    ]),
    ("fields-missing", ', TRUNK_PASSWORD: "${TRUNK_PASSWORD}"}', "}", [
        f"{P}:33: pbx.trunks[0].fields: template 'registration' needs field TRUNK_PASSWORD",
    ]),
    ("fields-none", "      fields: {CARRIER_SIP_HOST: sip.example.net, TRUNK_USER: \"1234\", "
     'TRUNK_PASSWORD: "${TRUNK_PASSWORD}"}\n', "\n", [
        f"{P}:31: pbx.trunks[0].fields: template 'registration' needs fields CARRIER_SIP_HOST, TRUNK_USER, "
        "TRUNK_PASSWORD",
    ]),
    ("field-unknown", 'TRUNK_USER: "1234"', 'TRUNK_USR: "1234"', [
        f"{P}:33: pbx.trunks[0].fields.TRUNK_USR: unknown field (did you mean 'TRUNK_USER'?)",
    ]),
    ("field-newline", "{CARRIER_SIP_HOST: sip2.example.net}", '{CARRIER_SIP_HOST: "sip2.example.net\\n[evil]"}', [
        f"{P}:37: pbx.trunks[1].fields.CARRIER_SIP_HOST: the value must be on one line (it contains a line break)",
    ]),
    ("field-password-short", 'TRUNK_PASSWORD: "${TRUNK_PASSWORD}"', "TRUNK_PASSWORD: pw-1234", [
        f"{P}:33: pbx.trunks[0].fields.TRUNK_PASSWORD: too short: use at least 12 characters (`callbuddy-pbx "
        "secrets` prints strong ones)",
    ]),
    ("did-twice", 'dids: ["+15550002000"]', 'dids: ["+1 (555) 000-1003"]', [
        f"{P}:38: pbx.trunks[1].dids[0]: +15550001003 is already a DID of a trunk (line 34)",
    ]),
    ("did-not-business", 'dids: ["+15550002000"]', 'dids: ["+15550002001"]', [
        f"{P}:38: pbx.trunks[1].dids[0]: +15550002001 is not a number of any configured business",
    ]),
    ("did-invalid", 'dids: ["+15550002000"]', 'dids: ["trunk"]', [
        f"{P}:38: pbx.trunks[1].dids[0]: 'trunk' is not a phone number (expected e.g. +15550001000 or a number "
        "valid in region US)",
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "expected"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_config_is_reported_exactly(write, old: str, new: str, expected: list[str]):
    assert FULL.count(old) == 1, f"{old!r} must occur once in FULL"
    path = write(FULL.replace(old, new))
    assert problems_of(path) == [message.format(path=path) for message in expected]


def test_enough_broken_cases():
    assert len(BROKEN) >= 20
    assert len({case[0] for case in BROKEN}) == len(BROKEN)


def test_private_and_named_ami_hosts_are_accepted(write):
    for host in ("10.0.0.5", "192.168.1.2", "::1", "pbx.local", "fd00::1"):
        assert load_config(write(f"asterisk:\n  host: {host!r}\n")).asterisk.host == host
