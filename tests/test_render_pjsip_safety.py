"""What keeps the rendered PBX safe and the trunk usable: trunk hosts without ports (a port goes in its own field),
the caller ID asserted to the carrier, no guest endpoint, the SIP bind address, the security log fail2ban reads,
custom files that cannot join a rendered section, and the voicemail PINs that need pbx.secret_key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.render import render_all
from callbuddy_pbx.cli import main
from callbuddy_pbx.config import Config, load_config
from callbuddy_pbx.config.trunk_templates import TemplateHeaderError, read_template_header, with_defaults
from tests.config_files import Write, problems_of, yaml_writer
from tests.test_trunk_templates import SECTION_RE, TEMPLATES, Section, read_template, strip_comment

KEY = "pjsip-safety-secret-key-0123456789abcdef"
# Line numbers matter: the trunk's fields are on line 12, its name on line 10.
YAML = f"""\
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
pbx:
  secret_key: {KEY}
  phones:
    - {{extension: "100", name: Front desk, business: Glow Salon}}
  ring_groups: [{{number: "+1 555 000 1000", members: ["100"]}}]
  trunks:
    - name: carrier
      template: pjsip-trunk-ip-auth
      fields: {{CARRIER_SIP_HOST: 127.0.0.1}}
      dids: ["+1 555 000 1000"]
"""
FIELDS_LINE = 12


@pytest.fixture
def write(tmp_path: Path) -> Write:
    return yaml_writer(tmp_path)


def with_fields(fields: str, template: str = "pjsip-trunk-ip-auth") -> str:
    text = YAML.replace("{CARRIER_SIP_HOST: 127.0.0.1}", fields)
    return text.replace("template: pjsip-trunk-ip-auth", f"template: {template}")


def sections(text: str) -> list[Section]:
    """The sections of a rendered file, `key = value` and `key => value` alike; #include lines are left out."""
    found: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = strip_comment(raw).strip()
        if not line or line.startswith("#"):
            continue
        if header := SECTION_RE.fullmatch(line):
            found.append(Section(header["name"], number))
            continue
        key, equals, value = line.partition("=")
        assert equals and found, f"line {number}: {raw!r}"
        found[-1].options.append((key.strip(), value.removeprefix(">").strip()))
    return found


def trunk_section(config: Config, section_type: str) -> Section:
    """The trunk's one section of that type (endpoint, aor, identify, registration)."""
    pjsip = render_all(config)["pjsip.conf"]
    [found] = [s for s in sections(pjsip) if s.name.startswith("carrier") and s.type == section_type]
    return found


def option(config: Config, section_type: str, key: str) -> str | None:
    return trunk_section(config, section_type).get(key)


# -- trunk hosts, ports and From domains -------------------------------------------------------------------------------


def test_a_host_with_a_port_is_a_check_error_naming_the_port_field(write: Write) -> None:
    path = write(with_fields("{CARRIER_SIP_HOST: '127.0.0.1:5090'}"))
    assert problems_of(path) == [
        f"{path}:{FIELDS_LINE}: pbx.trunks[0].fields.CARRIER_SIP_HOST: '127.0.0.1:5090' has a port: write the host "
        "alone here (127.0.0.1) and its port 5090 in CARRIER_SIP_PORT"
    ]


@pytest.mark.parametrize("value", ["sip:sip.carrier.example", "udp://sip.carrier.example", "SIP:10.0.0.5"])
def test_a_host_with_a_scheme_is_a_check_error(write: Write, value: str) -> None:
    path = write(with_fields(f"{{CARRIER_SIP_HOST: '{value}'}}"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:{FIELDS_LINE}: pbx.trunks[0].fields.CARRIER_SIP_HOST: ")
    assert "has a scheme" in problem


def test_a_from_domain_with_a_port_is_a_check_error(write: Write) -> None:
    path = write(with_fields("{CARRIER_SIP_HOST: sip.carrier.example, CARRIER_FROM_DOMAIN: 'carrier.example:5060'}"))
    [problem] = problems_of(path)
    assert (
        f"{path}:{FIELDS_LINE}: pbx.trunks[0].fields.CARRIER_FROM_DOMAIN: 'carrier.example:5060' has a port" in problem
    )


def test_a_provider_host_with_a_port_says_the_template_takes_none(write: Write) -> None:
    fields = (
        "{VOIPMS_SERVER: 'newyork.voip.ms:5080', VOIPMS_SUBACCOUNT: 100000_cb, VOIPMS_PASSWORD: a-long-password-1, "
        "VOIPMS_DID: '15550001000'}"
    )
    path = write(with_fields(fields, template="voipms"))
    assert problems_of(path) == [
        f"{path}:{FIELDS_LINE}: pbx.trunks[0].fields.VOIPMS_SERVER: 'newyork.voip.ms:5080' has a port: write the "
        "host alone here (newyork.voip.ms) and no port (this template takes none)"
    ]


@pytest.mark.parametrize("port", ["0", "70000", "sip", "50 60"])
def test_a_port_field_takes_only_a_port(write: Write, port: str) -> None:
    path = write(with_fields(f"{{CARRIER_SIP_HOST: 127.0.0.1, CARRIER_SIP_PORT: '{port}'}}"))
    assert problems_of(path) == [
        f"{path}:{FIELDS_LINE}: pbx.trunks[0].fields.CARRIER_SIP_PORT: {port!r} is not a port (expected a whole "
        "number from 1 to 65535, e.g. 5060)"
    ]


def test_the_port_goes_into_uris_and_never_into_the_from_domain(write: Write) -> None:
    config = load_config(write(with_fields("{CARRIER_SIP_HOST: 127.0.0.1, CARRIER_SIP_PORT: 5090}")))
    assert option(config, "endpoint", "from_domain") == "127.0.0.1"
    assert option(config, "aor", "contact") == "sip:127.0.0.1:5090"
    assert option(config, "identify", "match") == "127.0.0.1"


def test_optional_fields_take_their_defaults(write: Write) -> None:
    config = load_config(write(YAML))
    assert dict(config.pbx.trunks[0].fields) == {
        "CARRIER_SIP_HOST": "127.0.0.1",
        "CARRIER_SIP_PORT": "5060",
        "CARRIER_FROM_DOMAIN": "127.0.0.1",
    }
    assert option(config, "aor", "contact") == "sip:127.0.0.1:5060"


def test_a_from_domain_of_its_own(write: Write) -> None:
    fields = "{CARRIER_SIP_HOST: sbc.carrier.example, CARRIER_FROM_DOMAIN: carrier.example}"
    config = load_config(write(with_fields(fields, template="pjsip-trunk-registration").replace(
        "carrier.example}", "carrier.example, TRUNK_USER: '15550001000', TRUNK_PASSWORD: a-long-password-1}"
    )))  # fmt: skip
    assert option(config, "endpoint", "from_domain") == "carrier.example"
    assert option(config, "registration", "client_uri") == "sip:15550001000@carrier.example"
    assert option(config, "registration", "server_uri") == "sip:sbc.carrier.example:5060"


def test_required_fields_are_still_required(write: Write) -> None:
    path = write(with_fields("{CARRIER_SIP_PORT: 5090}"))
    assert problems_of(path) == [
        f"{path}:{FIELDS_LINE}: pbx.trunks[0].fields: template 'pjsip-trunk-ip-auth' needs field CARRIER_SIP_HOST"
    ]


def test_a_template_whose_default_names_a_later_field_is_reported(write: Write, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "mine.conf").write_text("; fields: A=${B} B\n[${TRUNK}]\ntype = aor\ncontact = sip:${A}${B}\n")
    text = with_fields("{B: x}", template="mine").replace("  phones:", "  templates_dir: templates\n  phones:")
    path = write(text)
    [problem] = problems_of(path)
    assert "template.mine" not in problem and "has a broken header: the default of A names B" in problem


# -- outbound identity -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_every_shipped_trunk_sends_p_asserted_identity(write: Write, template: Path) -> None:
    examples = read_template(template).examples
    fields = "{" + ", ".join(f"{name}: '{value}'" for name, value in examples.items()) + "}"
    config = load_config(write(with_fields(fields, template=template.stem)))
    endpoint = trunk_section(config, "endpoint")
    assert endpoint.get("send_pai") == "yes"
    assert endpoint.get("trust_id_outbound") == "yes"
    assert endpoint.get("from_user") is None  # it would replace the business caller ID the dialplan sets


# -- no guests ---------------------------------------------------------------------------------------------------------


def test_requests_are_identified_by_address_or_user_name_only(write: Write) -> None:
    pjsip = render_all(load_config(write(YAML)))["pjsip.conf"]
    [global_section] = [s for s in sections(pjsip) if s.type == "global"]
    assert global_section.name == "global"
    assert global_section.get("endpoint_identifier_order") == "ip,username"
    assert not [s for s in sections(pjsip) if s.name.lower() == "anonymous"]
    assert not re.search(r"anonymous\s*$", pjsip, re.IGNORECASE | re.MULTILINE)


def test_a_trunk_cannot_be_named_anonymous(write: Write) -> None:
    path = write(YAML.replace("name: carrier", "name: Anonymous"))
    assert problems_of(path) == [
        f"{path}:10: pbx.trunks[0].name: 'Anonymous' is reserved (PJSIP or render uses it): choose another name"
    ]


# -- the SIP bind address ----------------------------------------------------------------------------------------------


def transport(config: Config) -> Section:
    [found] = [s for s in sections(render_all(config)["pjsip.conf"]) if s.type == "transport"]
    return found


@pytest.mark.parametrize(
    ("written", "bind"),
    [(None, "0.0.0.0:5060"), ("192.168.1.10", "192.168.1.10:5060"), ("'::'", "[::]:5060")],
)
def test_the_transport_binds_where_sip_bind_says(write: Write, written: str | None, bind: str) -> None:
    text = YAML if written is None else YAML.replace("  phones:", f"  sip_bind: {written}\n  phones:")
    assert transport(load_config(write(text))).get("bind") == bind


def test_sip_bind_must_be_an_ip_address(write: Write) -> None:
    path = write(YAML.replace("  phones:", "  sip_bind: pbx.example\n  phones:"))
    assert problems_of(path) == [
        f"{path}:6: pbx.sip_bind: 'pbx.example' is not an IP address (expected one of this host's IP addresses, "
        "e.g. 192.168.1.10, or 0.0.0.0 for all)"
    ]


# -- the security log --------------------------------------------------------------------------------------------------


def test_logger_conf_writes_the_security_log_fail2ban_reads(write: Write) -> None:
    logger = render_all(load_config(write(YAML)))["logger.conf"]
    [logfiles] = [s for s in sections(logger) if s.name == "logfiles"]
    assert logfiles.get("security") == "security"  # /var/log/asterisk/security
    assert "notice" in (logfiles.get("messages") or "") and "error" in (logfiles.get("console") or "")
    assert logger.rstrip().endswith("#tryinclude logger_custom.conf")


# -- custom files ------------------------------------------------------------------------------------------------------


def test_a_stray_line_of_a_custom_file_joins_no_rendered_section(write: Write) -> None:
    files = render_all(load_config(write(YAML)))
    custom = {name: text for name, text in files.items() if "#tryinclude" in text}
    assert set(custom) >= {"pjsip.conf", "manager.conf", "extensions.conf", "voicemail.conf", "logger.conf"}
    for name, text in custom.items():
        # What Asterisk reads: the custom file pasted where it is included, its first line before any section.
        pasted = re.sub(r"^#tryinclude .*$", "stray = 1\n[mine]\nkey = 1", text, flags=re.MULTILINE)
        parsed = sections(pasted)
        [holder] = [s for s in parsed if s.options == [("stray", "1")]]
        assert holder.name == "callbuddy-custom", f"{name}: a stray line joins [{holder.name}]"
        header = f"[{holder.name}]" if name.startswith("extensions") else f"[{holder.name}](!)"
        assert header in text.splitlines(), f"{name}: the holder must be a template Asterisk never loads"


# -- voicemail PINs need the key ---------------------------------------------------------------------------------------

NO_KEY = YAML.replace(f"  secret_key: {KEY}\n", "").replace(
    "business: Glow Salon}", "business: Glow Salon, secret: own-desk-secret-1}"
)


def test_a_mailbox_without_secret_key_is_a_check_error_on_its_phone(write: Write) -> None:
    path = write(NO_KEY)
    assert problems_of(path) == [
        f"{path}:6: pbx.phones[0]: a mailbox needs pbx.secret_key for its voicemail PIN (at least 32 characters; "
        "`callbuddy-pbx secrets` prints strong ones), or set voicemail: false"
    ]
    path = write(NO_KEY.replace("secret: own-desk-secret-1}", "secret: own-desk-secret-1,\n       voicemail: yes}"))
    assert [problem.split(": ")[0:2] for problem in problems_of(path)] == [[f"{path}:7", "pbx.phones[0].voicemail"]]


def test_render_reports_the_missing_key_in_one_line_and_never_a_traceback(
    write: Write, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(NO_KEY)
    assert main(["render", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"{path}:6: pbx.phones[0]: a mailbox needs pbx.secret_key for its voicemail PIN "
                                "(at least 32 characters; `callbuddy-pbx secrets` prints strong ones), or set "
                                "voicemail: false"]  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_without_mailboxes_no_key_is_needed(write: Write) -> None:
    config = load_config(
        write(NO_KEY.replace("secret: own-desk-secret-1}", "secret: own-desk-secret-1, voicemail: no}"))
    )
    assert not config.pbx.secret_key and config.pbx.phones[0].voicemail is False


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("; fields: A B=${A}\n; hosts: A:B\n", None),
        ("; fields: A=${B} B\n", "the default of A names B, which is not a field listed before it"),
        ("; fields: A a-b\n", "'a-b' on the fields line is not NAME or NAME=default"),
        ("; fields: A\n; hosts: A:PORT\n", "the hosts line names PORT, which is not on the fields line"),
        ("; fields: A\n; hosts: A:B:C\n", "'A:B:C' on the hosts line is not NAME or NAME:PORT_NAME"),
    ],
)
def test_a_template_header_is_read_or_refused_with_the_reason(tmp_path: Path, header: str, message: str | None) -> None:
    path = tmp_path / "t.conf"
    path.write_text(header + "[${TRUNK}]\ntype = aor\n")
    if message is None:
        read = read_template_header(path)
        assert (read.fields, read.port_field("A"), read.port_fields) == (("A", "B"), "B", frozenset({"B"}))
        assert with_defaults(read, {"A": "h.example"}) == {"A": "h.example", "B": "h.example"}
    else:
        with pytest.raises(TemplateHeaderError, match=re.escape(message)):
            read_template_header(path)
