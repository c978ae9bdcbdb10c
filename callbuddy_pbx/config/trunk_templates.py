"""The machine-readable header of a SIP trunk template (sip_trunks/*.conf) and the rules for the values put in it.

    ; fields: CARRIER_SIP_HOST CARRIER_SIP_PORT=5060 CARRIER_FROM_DOMAIN=${CARRIER_SIP_HOST}
    ; hosts: CARRIER_SIP_HOST:CARRIER_SIP_PORT CARRIER_FROM_DOMAIN

`fields` lists the placeholders in order; `NAME=default` makes one optional (a default may name fields listed
before it). `hosts` lists the fields that go into SIP URIs, From domains and identify matches, where only a bare
host name or IPv4 address is valid; `HOST:PORT` names the field that takes that host's port.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_FIELDS_HEADER = re.compile(r";\s*fields:(.*)")
_HOSTS_HEADER = re.compile(r";\s*hosts:(.*)")
_FIELD = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<default>\S*))?")
_HOST_ENTRY = re.compile(r"(?P<host>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<port>[A-Za-z_][A-Za-z0-9_]*))?")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_SCHEME = re.compile(r"(?:sips?|udp|tcp|tls|https?):(?://)?", re.IGNORECASE)
_WITH_PORT = re.compile(r"(?P<host>[^:\[\]]+):(?P<port>\d+)")


class TemplateHeaderError(ValueError):
    """A template's header is malformed (a template author's mistake, reported against the trunk using it)."""


@dataclass(frozen=True, slots=True)
class TemplateHeader:
    fields: tuple[str, ...] = ()  # every placeholder, in order
    defaults: tuple[tuple[str, str], ...] = ()  # optional fields -> default (may hold ${EARLIER_FIELD})
    hosts: tuple[tuple[str, str], ...] = ()  # host field -> its port field ("" when the template has none)

    def default(self, name: str) -> str | None:
        return dict(self.defaults).get(name)

    def port_field(self, host: str) -> str | None:
        """The port field of a host field ("" when it has none); None when `host` is no host field."""
        return dict(self.hosts).get(host)

    @property
    def port_fields(self) -> frozenset[str]:
        return frozenset(port for _, port in self.hosts if port)


def read_template_header(path: Path) -> TemplateHeader:
    """The `; fields:` and `; hosts:` lines of a template (either may span several lines)."""
    fields: list[str] = []
    defaults: dict[str, str] = {}
    hosts: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if found := _FIELDS_HEADER.match(line.strip()):
            for token in found.group(1).split():
                name, default = _field(token)
                if name not in fields:
                    fields.append(name)
                if default is not None:
                    defaults[name] = default
        elif found := _HOSTS_HEADER.match(line.strip()):
            hosts.update(_host_entry(token) for token in found.group(1).split())
    header = TemplateHeader(tuple(fields), tuple(defaults.items()), tuple(hosts.items()))
    _check_header(header)
    return header


def _field(token: str) -> tuple[str, str | None]:
    found = _FIELD.fullmatch(token)
    if found is None:
        raise TemplateHeaderError(f"{token!r} on the fields line is not NAME or NAME=default")
    return found["name"], found["default"]


def _host_entry(token: str) -> tuple[str, str]:
    found = _HOST_ENTRY.fullmatch(token)
    if found is None:
        raise TemplateHeaderError(f"{token!r} on the hosts line is not NAME or NAME:PORT_NAME")
    return found["host"], found["port"] or ""


def _check_header(header: TemplateHeader) -> None:
    for name, default in header.defaults:
        earlier = header.fields[: header.fields.index(name)]
        unknown = [ref for ref in PLACEHOLDER.findall(default) if ref not in earlier]
        if unknown:
            raise TemplateHeaderError(
                f"the default of {name} names {unknown[0]}, which is not a field listed before it"
            )
    for host, port in header.hosts:
        for name in (host, port):
            if name and name not in header.fields:
                raise TemplateHeaderError(f"the hosts line names {name}, which is not on the fields line")


def with_defaults(header: TemplateHeader, given: dict[str, str]) -> dict[str, str]:
    """Every field's value: the given ones, the others from their defaults (in order, so a default can name an
    earlier field). A field that has neither is left out."""
    values: dict[str, str] = {}
    for name in header.fields:
        default = header.default(name)
        if name in given:
            values[name] = given[name]
        elif default is not None:
            values[name] = PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), default)
    return values


def is_host_name(text: str) -> bool:
    """A DNS host name (RFC 1123 labels); an all-numeric dotted name is an (invalid) address, not a name."""
    labels = text.removesuffix(".").split(".")
    if len(text) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def host_problem(value: str, port_field: str) -> str | None:
    """Why `value` is not a bare host name or IPv4 address, saying where its port goes; None when it is one."""
    if is_host_name(value) or _is_ipv4(value):
        return None
    found = _WITH_PORT.fullmatch(value)
    if found and (is_host_name(found["host"]) or _is_ipv4(found["host"])):
        where = f"its port {found['port']} in {port_field}" if port_field else "no port (this template takes none)"
        return f"has a port: write the host alone here ({found['host']}) and {where}"
    if found := _SCHEME.match(value):
        return f"has a scheme ({found.group(0)}): write the host alone here, without a scheme or a port"
    if _is_ipv6(value):
        return "is an IPv6 address, which the template cannot put in a SIP URI: use a host name or IPv4 address"
    return "is not a host name or IPv4 address (expected e.g. sip.carrier.example or 203.0.113.20)"


def port_problem(value: str) -> str | None:
    if value.isdigit() and 1 <= int(value) <= 65535:
        return None
    return "is not a port (expected a whole number from 1 to 65535, e.g. 5060)"


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text.strip("[]"))
    except ValueError:
        return False
    return True
