"""Every SIP trunk template in sip_trunks/ follows the convention the renderer relies on.

The convention (see sip_trunks/README.md):

    line 1   ; CallBuddy SIP trunk template: <provider / kind>
    line 2   ; fields: NAME1 NAME2=default ...                          <- a default makes a field optional
    line 3   ; hosts: NAME1:PORT_NAME ...                               <- optional: fields holding a bare host
    next     ; NAME1: what to put here (where to find it), e.g. EXAMPLE      <- one line per field, same order
    body     pjsip.conf sections with ${NAME} placeholders and the literal ${TRUNK} (the endpoint name)

Each template, rendered with the examples of its own description lines, must parse as an Asterisk config file
(sections, ``key = value``) describing a PJSIP trunk whose endpoint enters ``from-trunk``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callbuddy_pbx.config.trunk_templates import read_template_header

TRUNKS_DIR = Path(__file__).resolve().parent.parent / "sip_trunks"
TEMPLATES = sorted(TRUNKS_DIR.glob("*.conf"))
TRUNK_SAMPLE = "acme-trunk"  # what an installer might call the endpoint

HEADER_RE = re.compile(r"; CallBuddy SIP trunk template: \S.*")
FIELD_TOKEN = r"[A-Z][A-Z0-9_]*(?:=\S+)?"
FIELDS_RE = re.compile(rf"; fields: ({FIELD_TOKEN}(?: {FIELD_TOKEN})*)")
HOSTS_RE = re.compile(r"; hosts: ([A-Z][A-Z0-9_]*(?::[A-Z][A-Z0-9_]*)?(?: [A-Z][A-Z0-9_]*(?::[A-Z][A-Z0-9_]*)?)*)")
# "; NAME: what to put here (where to find it), e.g. EXAMPLE": the example is the last ", e.g. " item
DESCRIPTION_RE = re.compile(r"; (?P<name>[A-Z][A-Z0-9_]*): (?P<what>.*\(.+\).*), e\.g\. (?P<example>\S+)")
PLACEHOLDER_RE = re.compile(r"\$\{([^}]*)\}")
SECTION_RE = re.compile(r"\[(?P<name>[^\]\s]+)\](?:\((?P<templates>[^)]*)\))?")
KEY_VALUE_RE = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_/]*)\s*=(?!>)\s*(?P<value>.*)")

PJSIP_TYPES = {"endpoint", "aor", "auth", "identify", "registration"}
# The PJSIP options the templates may use, per section type (a typo or a sip.conf key fails the test).
ALLOWED_KEYS: dict[str, set[str]] = {
    "endpoint": {
        "type", "transport", "context", "disallow", "allow", "aors", "auth", "outbound_auth", "direct_media",
        "dtmf_mode", "from_domain", "from_user", "send_pai", "send_rpid", "trust_id_inbound", "trust_id_outbound",
        "rtp_symmetric", "force_rport", "rewrite_contact", "identify_by", "media_encryption", "callerid",
        "outbound_proxy", "timers", "language", "set_var", "inband_progress", "ice_support",
    },
    "aor": {"type", "contact", "qualify_frequency", "qualify_timeout", "max_contacts", "outbound_proxy"},
    "auth": {"type", "auth_type", "username", "password", "realm"},
    "identify": {"type", "endpoint", "match", "match_header", "srv_lookups"},
    "registration": {
        "type", "transport", "outbound_auth", "server_uri", "client_uri", "contact_user", "retry_interval",
        "forbidden_retry_interval", "fatal_retry_interval", "max_retries", "expiration", "line", "endpoint",
        "outbound_proxy", "auth_rejection_permanent",
    },
}  # fmt: skip
# chan_sip / sip.conf vocabulary that has no place in a pjsip.conf template
SIP_CONF_KEYS = {
    "host", "secret", "insecure", "canreinvite", "directmedia", "nat", "qualify", "fromdomain", "fromuser",
    "dtmfmode", "defaultuser", "register", "port", "sendrpid", "trustrpid", "md5secret", "remotesecret",
}  # fmt: skip
TRANSPORTS = {"transport-udp", "transport-tls"}
CODECS = {"ulaw", "alaw"}


# --------------------------------------------------------------------------------------------- the tiny parser


@dataclass
class Section:
    name: str
    lineno: int
    options: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        values = self.all(key)
        return values[-1] if values else None

    def all(self, key: str) -> list[str]:
        return [value for k, value in self.options if k == key]

    @property
    def type(self) -> str | None:
        return self.get("type")


def strip_comment(line: str) -> str:
    """Drop an Asterisk comment: everything from the first ';' that is not escaped as '\\;'."""
    match = re.search(r"(?<!\\);", line)
    return line if match is None else line[: match.start()]


def parse_asterisk_config(text: str) -> list[Section]:
    """Parse INI-like Asterisk config: `[name]` or `[name](template)`, names may repeat, `key = value` lines."""
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = strip_comment(raw).strip()
        if not line:
            continue
        if section := SECTION_RE.fullmatch(line):
            sections.append(Section(section["name"], lineno))
            continue
        option = KEY_VALUE_RE.fullmatch(line)
        if option is None:
            raise ValueError(f"line {lineno}: neither a section header nor 'key = value': {raw!r}")
        if not sections:
            raise ValueError(f"line {lineno}: option before the first section: {raw!r}")
        sections[-1].options.append((option["key"], option["value"].strip()))
    return sections


# ------------------------------------------------------------------------------------ the template convention


@dataclass(frozen=True)
class Template:
    path: Path
    title: str
    fields: tuple[str, ...]
    examples: dict[str, str]
    header_lines: int  # lines 1..header_lines are the machine-readable header
    defaults: dict[str, str] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)  # host field -> its port field ("" for none)

    @property
    def lines(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines()

    def body_lines(self) -> list[str]:
        return self.lines[self.header_lines :]

    def render(self, values: dict[str, str], trunk: str = TRUNK_SAMPLE) -> str:
        values = {**values, "TRUNK": trunk}

        def value(match: re.Match[str]) -> str:
            assert match.group(1) in values, f"{self.path.name}: no value for placeholder {match.group(0)}"
            return values[match.group(1)]

        return PLACEHOLDER_RE.sub(value, "\n".join(self.body_lines()) + "\n")


def read_template(path: Path) -> Template:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 3, f"{path.name}: too short for the header"
    assert HEADER_RE.fullmatch(lines[0]), f"{path.name}: line 1 must be '; CallBuddy SIP trunk template: <kind>'"
    fields_line = FIELDS_RE.fullmatch(lines[1])
    assert fields_line, f"{path.name}: line 2 must be '; fields: NAME1 NAME2 ...' (UPPER_SNAKE_CASE names)"
    tokens = [token.partition("=") for token in fields_line.group(1).split()]
    fields = tuple(name for name, _, _ in tokens)
    defaults = {name: default for name, equals, default in tokens if equals}
    assert len(set(fields)) == len(fields), f"{path.name}: a field is listed twice in {fields}"
    assert "TRUNK" not in fields, f"{path.name}: TRUNK is always available and must not be listed in fields"
    hosts_line = HOSTS_RE.fullmatch(lines[2])
    hosts = dict(entry.partition(":")[::2] for entry in hosts_line.group(1).split()) if hosts_line else {}
    first = 4 if hosts_line else 3
    examples: dict[str, str] = {}
    for offset, name in enumerate(fields):
        lineno = first + offset
        line = lines[lineno - 1] if lineno <= len(lines) else ""
        description = DESCRIPTION_RE.fullmatch(line)
        assert description, (
            f"{path.name} line {lineno}: expected '; {name}: what to put here (where to find it), e.g. EXAMPLE', "
            f"got {line!r}"
        )
        assert description["name"] == name, f"{path.name} line {lineno}: describes {description['name']}, not {name}"
        examples[name] = description["example"]
        if name in defaults:
            assert description["what"].startswith("optional, "), f"{path.name} line {lineno}: say 'optional, ...'"
    header_lines = first - 1 + len(fields)
    extra = re.match(r"; [A-Z][A-Z0-9_]*: ", lines[header_lines]) if len(lines) > header_lines else None
    assert extra is None, f"{path.name} line {header_lines + 1}: a description of a field not in the fields line"
    return Template(path, lines[0].split(": ", 1)[1], fields, examples, header_lines, defaults, hosts)


@pytest.fixture(params=TEMPLATES, ids=lambda p: p.name)
def template(request: pytest.FixtureRequest) -> Template:
    return read_template(request.param)


def test_the_expected_templates_exist() -> None:
    names = {p.name for p in TEMPLATES}
    expected = {
        "pjsip-trunk-ip-auth.conf",
        "pjsip-trunk-registration.conf",
        "twilio-elastic-sip.conf",
        "telnyx.conf",
        "voipms.conf",
        "flowroute.conf",
        "bandwidth.conf",
    }
    assert expected <= names, f"missing: {sorted(expected - names)}"


def test_header_fields_and_descriptions(template: Template) -> None:
    assert template.fields, f"{template.path.name}: a template without installer fields"
    assert template.title


def test_every_placeholder_is_declared_and_every_field_used(template: Template) -> None:
    declared = set(template.fields) | {"TRUNK"}
    used_in_config: set[str] = set()
    for offset, line in enumerate(template.body_lines(), start=template.header_lines + 1):
        names = PLACEHOLDER_RE.findall(line)
        undeclared = [n for n in names if n not in declared]
        assert not undeclared, f"{template.path.name} line {offset}: undeclared placeholder(s) {undeclared}"
        used_in_config.update(PLACEHOLDER_RE.findall(strip_comment(line)))
        leftover = PLACEHOLDER_RE.sub("", line)
        assert "${" not in leftover, f"{template.path.name} line {offset}: malformed placeholder in {line!r}"
    unused = [name for name in template.fields if name not in used_in_config]
    assert not unused, f"{template.path.name}: declared but not used in the config: {unused}"
    assert "TRUNK" in used_in_config, f"{template.path.name}: the endpoint must be named ${{TRUNK}}"


def test_no_chan_sip(template: Template) -> None:
    text = template.path.read_text(encoding="utf-8")
    assert "chan_sip" not in text.lower(), f"{template.path.name}: mentions chan_sip"
    assert not re.search(r"^\s*register\s*=>", text, re.MULTILINE), f"{template.path.name}: sip.conf register =>"
    assert not re.search(r"^\s*\[general\]", text, re.MULTILINE), f"{template.path.name}: sip.conf [general]"
    for section in parse_asterisk_config(template.render(template.examples)):
        where = f"{template.path.name} [{section.name}] (line {section.lineno})"
        assert section.type in PJSIP_TYPES, f"{where}: type = {section.type} is not a PJSIP trunk object"
        for key, _ in section.options:
            assert key not in SIP_CONF_KEYS, f"{where}: '{key}' is sip.conf syntax"
            assert key in ALLOWED_KEYS[section.type], f"{where}: '{key}' is not a {section.type} option used here"
        assert len(section.all("type")) == 1, f"{where}: exactly one type = line"


def test_rendered_template_is_a_pjsip_trunk(template: Template) -> None:
    name = template.path.name
    rendered = template.render(template.examples)
    assert "${" not in rendered, f"{name}: placeholder left after rendering"
    sections = parse_asterisk_config(rendered)
    by_type: dict[str, list[Section]] = {}
    for section in sections:
        by_type.setdefault(section.type or "", []).append(section)
    names_of = {kind: {s.name for s in by_type.get(kind, [])} for kind in PJSIP_TYPES}

    endpoints = by_type.get("endpoint", [])
    assert len(endpoints) == 1, f"{name}: expected exactly one endpoint, found {len(endpoints)}"
    endpoint = endpoints[0]
    assert endpoint.name == TRUNK_SAMPLE, f"{name}: the endpoint must be [${{TRUNK}}], is [{endpoint.name}]"
    assert endpoint.get("context") == "from-trunk", f"{name}: endpoint context must be from-trunk"
    assert endpoint.get("direct_media") == "no", f"{name}: direct_media = no (media stays on the PBX)"
    assert endpoint.get("disallow") == "all", f"{name}: disallow = all before allow"
    codecs = {c.strip() for value in endpoint.all("allow") for c in value.split(",")}
    assert "ulaw" in codecs, f"{name}: ulaw must be allowed"
    assert codecs <= CODECS, f"{name}: unexpected codecs {sorted(codecs - CODECS)}"

    transport = endpoint.get("transport")
    assert transport in TRANSPORTS, f"{name}: transport must be transport-udp (or transport-tls), is {transport}"
    if transport == "transport-tls":
        comments = " ".join(line for line in template.lines if line.lstrip().startswith(";"))
        assert re.search(r"TLS.*requir|requir.*TLS", comments), f"{name}: say in a comment that TLS is required"

    aors = [a.strip() for a in (endpoint.get("aors") or "").split(",") if a.strip()]
    assert aors, f"{name}: endpoint without aors"
    for aor in aors:
        assert aor in names_of["aor"], f"{name}: endpoint aors names [{aor}], which is not an aor section"
    for aor in by_type["aor"]:
        contacts = aor.all("contact")
        assert contacts, f"{name}: aor [{aor.name}] without a contact (the trunk could not be dialled)"
        assert all(c.startswith(("sip:", "sips:")) for c in contacts), f"{name}: contact must be a SIP URI"

    identifies = by_type.get("identify", [])
    assert identifies, f"{name}: no identify section (inbound calls would not reach the endpoint)"
    for identify in identifies:
        assert identify.get("endpoint") == endpoint.name, f"{name}: identify must point at the endpoint"
        matches = [m.strip() for m in (identify.get("match") or "").split(",")]
        assert matches and all(matches), f"{name}: identify without (or with an empty) match"

    if endpoint.get("outbound_auth") is not None:
        assert endpoint.get("outbound_auth") in names_of["auth"], f"{name}: endpoint outbound_auth has no section"
    for registration in by_type.get("registration", []):
        where = f"{name} registration [{registration.name}]"
        assert registration.get("outbound_auth") in names_of["auth"], f"{where}: outbound_auth has no auth section"
        assert (registration.get("server_uri") or "").startswith("sip:"), f"{where}: server_uri"
        assert (registration.get("client_uri") or "").startswith("sip:"), f"{where}: client_uri"
        if registration.get("endpoint") is not None:
            assert registration.get("endpoint") == endpoint.name, f"{where}: endpoint must be the trunk endpoint"
        if registration.get("transport") is not None:
            assert registration.get("transport") == transport, f"{where}: transport differs from the endpoint's"
    referenced = {endpoint.get("outbound_auth")} | {r.get("outbound_auth") for r in by_type.get("registration", [])}
    for auth in by_type.get("auth", []):
        assert auth.name in referenced, f"{name}: auth [{auth.name}] is not used by the endpoint or a registration"
        assert auth.get("auth_type") == "userpass", f"{name}: auth [{auth.name}] must be auth_type = userpass"
        assert auth.get("username") and auth.get("password"), f"{name}: auth [{auth.name}] needs username/password"


def test_two_trunks_from_one_template_do_not_collide(template: Template) -> None:
    first = {(s.name, s.type) for s in parse_asterisk_config(template.render(template.examples, trunk="one"))}
    second = {(s.name, s.type) for s in parse_asterisk_config(template.render(template.examples, trunk="two"))}
    assert not first & second, f"{template.path.name}: section names that do not depend on ${{TRUNK}}: {first & second}"


def test_readme_lists_every_template_with_its_fields() -> None:
    readme = (TRUNKS_DIR / "README.md").read_text(encoding="utf-8")
    for path in TEMPLATES:
        assert path.name in readme, f"README.md does not list {path.name}"
        for name in read_template(path).fields:
            assert name in readme, f"README.md does not mention field {name} of {path.name}"


def test_the_parser_rejects_what_it_should() -> None:
    assert [s.name for s in parse_asterisk_config("[a]\ntype = aor\n[a](tpl)\ntype = endpoint ; c\n")] == ["a", "a"]
    assert parse_asterisk_config("[a]\nmatch = x\\;y ; comment\n")[0].get("match") == "x\\;y"
    for bad in ("type = aor\n", "[a]\nregister => u:p@host\n", "[a]\njust words\n", "[a b]\ntype = aor\n"):
        with pytest.raises(ValueError):
            parse_asterisk_config(bad)


# -------------------------------------------------------------------- defaults, host fields, outbound identity

HOST_USES = re.compile(
    r"^(?:from_domain = |(?:contact|server_uri|client_uri) = sips?:(?:[^@\s]*@)?)\$\{(\w+)\}(?=$|[:;])"
)


def test_the_header_reads_the_same_in_the_service(template: Template) -> None:
    header = read_template_header(template.path)
    assert header.fields == template.fields
    assert dict(header.defaults) == template.defaults
    assert dict(header.hosts) == template.hosts


def test_every_field_put_in_a_uri_or_from_domain_is_a_host_field(template: Template) -> None:
    # A field missing from `hosts:` would let `check` pass 127.0.0.1:5090, which makes an invalid From domain.
    for line in template.body_lines():
        used = HOST_USES.match(line)
        if used and used.group(1) != "TRUNK":
            assert used.group(1) in template.hosts, f"{template.path.name}: {used.group(1)} is not on the hosts line"
    for host, port in template.hosts.items():
        assert port == "" or template.defaults.get(port) == "5060", f"{template.path.name}: {host}'s port field"


def test_every_trunk_asserts_the_caller_id_to_the_carrier(template: Template) -> None:
    [endpoint] = [s for s in parse_asterisk_config(template.render(template.examples)) if s.type == "endpoint"]
    assert endpoint.get("send_pai") == "yes", f"{template.path.name}: no P-Asserted-Identity on outbound calls"
    assert endpoint.get("trust_id_outbound") == "yes", f"{template.path.name}: a withheld caller ID sends no PAI"
    assert endpoint.get("from_user") is None, f"{template.path.name}: from_user would replace the caller ID"
