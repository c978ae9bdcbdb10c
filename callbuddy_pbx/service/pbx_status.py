"""What the running PBX says about the phones and trunks the YAML describes, and what to fix.

`fetch_pbx_status` asks Asterisk over AMI (PJSIPShowEndpoints, PJSIPShowContacts, PJSIPShowRegistrationsOutbound) and
keeps only the fields compared here: names, states, URIs, user agents. PJSIPShowRegistrationsOutbound also sends an
`AuthDetail` event with the trunk's password for each registration; such events are dropped unread, so no secret is
ever part of a `PbxStatus`. `problems` compares a status with the configuration; it does no I/O apart from reading the
trunk templates (to know which trunks register).

Everything in a `PbxStatus` came from the PBX: show it through `untrusted.printable`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from callbuddy_pbx.asterisk.ami import PERMISSION_DENIED, AmiActionError, AmiActionTimeout, AmiClient, AmiMessage
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.pbx import Phone, Trunk

Level = Literal["ok", "warning", "error", "info"]

# Contact statuses that mean the phone is registered and (as far as Asterisk knows) reachable. Asterisk 22 says
# Avail / Unavail / NonQualified / Unknown; older versions said Reachable / Unreachable.
REGISTERED_CONTACT_STATUSES = frozenset({"Avail", "NonQualified", "Reachable"})
REGISTERED = "Registered"  # OutboundRegistrationDetail Status of a working trunk registration

ENDPOINTS_ACTION = "PJSIPShowEndpoints"
CONTACTS_ACTION = "PJSIPShowContacts"
REGISTRATIONS_ACTION = "PJSIPShowRegistrationsOutbound"

# PJSIPShowEndpoints and PJSIPShowContacts need the `system` write class, which the AMI user `render` writes does not
# have on purpose (it would also allow GetConfig, every phone's password): refused, they are reported as info.
_NOT_ALLOWED = (
    "not checked: the AMI user may not list PJSIP {what} (no `system` write class in manager.conf, on purpose)"
)
_ASK_ASTERISK = "see them with `asterisk -rx 'pjsip show {what}'`"
_APPLY = "run `callbuddy-pbx render --config ... --out /etc/asterisk`, then `asterisk -rx 'pjsip reload'`"
_REGISTRATION_SECTION = re.compile(r"^\s*type\s*=\s*registration\s*(;.*)?$", re.IGNORECASE | re.MULTILINE)
_DEFAULT_SIP_PORT = 5060
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One `EndpointList` event."""

    name: str
    device_state: str = ""
    active_channels: str = ""


@dataclass(frozen=True, slots=True)
class Contact:
    """One `ContactList` event (a registered or static contact)."""

    endpoint: str
    uri: str
    status: str
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class Registration:
    """One `OutboundRegistrationDetail` event (a trunk that registers to its carrier)."""

    name: str
    endpoint: str
    server_uri: str
    status: str


@dataclass(frozen=True, slots=True)
class PbxStatus:
    """The PBX's answers; None where it did not answer the action (`unavailable` says why)."""

    endpoints: tuple[Endpoint, ...] | None
    contacts: tuple[Contact, ...] | None
    registrations: tuple[Registration, ...] | None
    unavailable: tuple[tuple[str, str], ...] = ()  # (action, Asterisk's message)


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    subject: str  # "phone 100 (Front desk)", "trunk trunk", "endpoint 999"
    state: str  # what the PBX says; may contain text from the PBX (escape it before printing)
    fix: str  # what to do about it ("" when nothing)


# -- parsing (pure) ----------------------------------------------------------------------------------------------------


def parse_endpoints(items: Iterable[AmiMessage]) -> tuple[Endpoint, ...]:
    return tuple(
        Endpoint(item.get("ObjectName", ""), item.get("DeviceState", ""), item.get("ActiveChannels", ""))
        for item in items
        if item.get("Event") == "EndpointList" and item.get("ObjectName")
    )


def parse_contacts(items: Iterable[AmiMessage]) -> tuple[Contact, ...]:
    return tuple(
        Contact(
            endpoint=item.get("Endpoint", ""),
            uri=item.get("Uri", ""),
            status=item.get("Status", ""),
            user_agent=item.get("UserAgent", ""),
        )
        for item in items
        if item.get("Event") == "ContactList"
    )


def parse_registrations(items: Iterable[AmiMessage]) -> tuple[Registration, ...]:
    """OutboundRegistrationDetail events only: the AuthDetail events in between (with passwords) are skipped."""
    return tuple(
        Registration(
            name=item.get("ObjectName", ""),
            endpoint=item.get("Endpoint", ""),
            server_uri=item.get("ServerUri", ""),
            status=item.get("Status", ""),
        )
        for item in items
        if item.get("Event") == "OutboundRegistrationDetail"
    )


# -- fetching ----------------------------------------------------------------------------------------------------------


async def fetch_pbx_status(client: AmiClient) -> PbxStatus:
    """Ask a connected client's PBX. An action answered with `Response: Error` (module not loaded, no permission) or
    not answered in time is recorded as unknown; a lost connection raises the client's AmiError."""
    unavailable: list[tuple[str, str]] = []

    async def items(action: str) -> list[AmiMessage] | None:
        try:
            _, found = await client.list_action(action)
        except AmiActionError as exc:
            unavailable.append((action, exc.message or "error"))
            return None
        except AmiActionTimeout:
            unavailable.append((action, "no answer in time"))
            return None
        return found

    endpoints = await items(ENDPOINTS_ACTION)
    contacts = await items(CONTACTS_ACTION)
    registrations = await items(REGISTRATIONS_ACTION)
    return PbxStatus(
        endpoints=None if endpoints is None else parse_endpoints(endpoints),
        contacts=None if contacts is None else parse_contacts(contacts),
        registrations=None if registrations is None else parse_registrations(registrations),
        unavailable=tuple(unavailable),
    )


# -- comparing ---------------------------------------------------------------------------------------------------------


def problems(config: Config, status: PbxStatus) -> list[Finding]:
    """Each phone and trunk of the YAML as the PBX sees it, then the PBX's endpoints the YAML does not know."""
    pbx = config.pbx
    why = dict(status.unavailable)
    findings: list[Finding] = []
    endpoints = None if status.endpoints is None else {endpoint.name: endpoint for endpoint in status.endpoints}
    for phone in pbx.phones:
        findings.append(_phone(config, phone, endpoints, status.contacts, why))
    for trunk in pbx.trunks:
        findings.append(_trunk(trunk, pbx.templates_dir, endpoints, status.registrations, why))
    if endpoints is None and why.get(ENDPOINTS_ACTION) == PERMISSION_DENIED:
        what = "endpoints"
        findings.append(
            Finding("info", "PJSIP endpoints", _NOT_ALLOWED.format(what=what), _ASK_ASTERISK.format(what=what))
        )
        return findings
    if endpoints is None:
        reason = why.get(ENDPOINTS_ACTION, "not asked")
        findings.append(
            Finding(
                "warning",
                "PJSIP endpoints",
                f"unknown: {ENDPOINTS_ACTION} failed ({reason})",
                "load res_pjsip (`asterisk -rx 'module load res_pjsip.so'`)",
            )
        )
        return findings
    known = {phone.extension for phone in pbx.phones} | {trunk.name for trunk in pbx.trunks}
    for name in sorted(endpoints.keys() - known):
        findings.append(
            Finding(
                "info",
                f"endpoint {name}",
                "on the PBX, not in the YAML",
                "add it to pbx.phones or pbx.trunks, or remove it from Asterisk's pjsip files if nobody uses it",
            )
        )
    return findings


def _phone(
    config: Config,
    phone: Phone,
    endpoints: dict[str, Endpoint] | None,
    contacts: Sequence[Contact] | None,
    why: dict[str, str],
) -> Finding:
    subject = f"phone {phone.extension} ({phone.name})"
    if endpoints is None and why.get(ENDPOINTS_ACTION) == PERMISSION_DENIED:
        what = "contacts" if why.get(CONTACTS_ACTION) == PERMISSION_DENIED else "endpoints"
        return Finding("info", subject, _NOT_ALLOWED.format(what=what), _ASK_ASTERISK.format(what=what))
    if endpoints is None:
        return Finding("warning", subject, "unknown (the PBX did not list its endpoints)", "")
    if phone.extension not in endpoints:
        return Finding("error", subject, "not on the PBX (no PJSIP endpoint)", _APPLY)
    configure = (
        f"configure the phone with server {sip_server(config)}, user {phone.extension} and its secret "
        "(`callbuddy-pbx render` wrote it to pjsip.conf)"
    )
    if contacts is None and why.get(CONTACTS_ACTION) == PERMISSION_DENIED:
        what = "contacts"
        return Finding("info", subject, _NOT_ALLOWED.format(what=what), _ASK_ASTERISK.format(what=what))
    if contacts is None:
        reason = why.get(CONTACTS_ACTION, "not asked")
        return Finding("warning", subject, f"registration unknown ({CONTACTS_ACTION} failed: {reason})", "")
    mine = [contact for contact in contacts if contact.endpoint == phone.extension]
    registered = [contact for contact in mine if contact.status in REGISTERED_CONTACT_STATUSES]
    if registered:
        contact = registered[0]
        agent = f", {contact.user_agent}" if contact.user_agent else ""
        return Finding("ok", subject, f"registered ({contact.status}{agent})", "")
    if mine:
        statuses = ", ".join(sorted({contact.status or "no status" for contact in mine}))
        return Finding(
            "warning",
            subject,
            f"registered but not reachable ({statuses})",
            "check that the phone is on and can reach the PBX (network, NAT, firewall on UDP "
            f"{config.pbx.sip_port}); if it moved, {configure}",
        )
    return Finding("warning", subject, "not registered", configure)


def _trunk(
    trunk: Trunk,
    templates_dir: Path,
    endpoints: dict[str, Endpoint] | None,
    registrations: Sequence[Registration] | None,
    why: dict[str, str],
) -> Finding:
    subject = f"trunk {trunk.name} ({trunk.template})"
    denied = endpoints is None and why.get(ENDPOINTS_ACTION) == PERMISSION_DENIED
    if endpoints is None and not denied:
        return Finding("warning", subject, "unknown (the PBX did not list its endpoints)", "")
    if endpoints is not None and trunk.name not in endpoints:
        return Finding("error", subject, "not on the PBX (no PJSIP endpoint)", _APPLY)
    mine = [r for r in registrations or () if r.endpoint == trunk.name or r.name in (trunk.name, f"{trunk.name}-reg")]
    if not mine and not template_registers(templates_dir / f"{trunk.template}.conf"):
        if denied:
            what = "endpoints"
            return Finding("info", subject, _NOT_ALLOWED.format(what=what), _ASK_ASTERISK.format(what=what))
        return Finding("ok", subject, "endpoint present (no registration: the carrier sends calls to this PBX)", "")
    if registrations is None:
        reason = why.get(REGISTRATIONS_ACTION, "not asked")
        return Finding("warning", subject, f"registration unknown ({REGISTRATIONS_ACTION} failed: {reason})", "")
    if not mine:
        return Finding("error", subject, "its outbound registration is not on the PBX", _APPLY)
    bad = [r for r in mine if r.status != REGISTERED]
    if not bad:
        return Finding("ok", subject, f"registered to {mine[0].server_uri or 'the carrier'}", "")
    registration = bad[0]
    where = f" to {registration.server_uri}" if registration.server_uri else ""
    return Finding(
        "warning",
        subject,
        f"registration {registration.name}{where}: {registration.status or 'no status'}",
        _registration_fix(trunk, registration),
    )


def _registration_fix(trunk: Trunk, registration: Registration) -> str:
    retry = f"then `asterisk -rx 'pjsip send register {registration.name}'`"
    if registration.status == "Rejected":
        return (
            f"the carrier refused the login: check the user name and password in the fields of trunk {trunk.name} "
            f"(the SIP credentials, not the web portal's), render, {retry}"
        )
    if registration.status == "Stopped":
        return f"Asterisk gave up retrying: fix the cause (see `pjsip show registrations`), {retry}"
    return (
        "no answer from the carrier yet: check its host name resolves and that the PBX can send UDP 5060 to it "
        f"(firewall, NAT); Asterisk retries on its own, or {retry.removeprefix('then ')}"
    )


def template_registers(path: Path) -> bool:
    """True when a trunk template has a `type = registration` section (the PBX registers to the carrier)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return _REGISTRATION_SECTION.search(text) is not None


def sip_server(config: Config) -> str:
    """The address phones register to: the AMI host unless it is this machine, else the public address if set."""
    host = config.asterisk.host
    if host.lower() in _LOOPBACK_HOSTS:
        host = config.pbx.external_address or "the PBX's address"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = config.pbx.sip_port
    return host if port == _DEFAULT_SIP_PORT else f"{host} port {port}"


__all__ = [
    "CONTACTS_ACTION",
    "ENDPOINTS_ACTION",
    "REGISTERED_CONTACT_STATUSES",
    "REGISTRATIONS_ACTION",
    "Contact",
    "Endpoint",
    "Finding",
    "Level",
    "PbxStatus",
    "Registration",
    "fetch_pbx_status",
    "parse_contacts",
    "parse_endpoints",
    "parse_registrations",
    "problems",
    "sip_server",
    "template_registers",
]
