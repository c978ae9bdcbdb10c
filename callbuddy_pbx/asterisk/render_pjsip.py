"""pjsip.conf: how requests are identified (no guests), one transport, the phones (endpoint + auth + aor each) and
the trunks from their templates."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from callbuddy_pbx.asterisk.render_base import RenderError, custom_include, phone_secret, quoted
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.pbx import Phone, Trunk
from callbuddy_pbx.config.trunk_templates import PLACEHOLDER

CODECS = "ulaw,alaw,g722"
# How PJSIP finds the endpoint of a request: a trunk by the address it comes from (identify), a phone by its name
# in From (username). Without `anonymous` no request falls through to a guest endpoint: anything else is refused
# and written to the security log (logger.conf), where fail2ban sees it.
IDENTIFIER_ORDER = ("ip", "username")


def render_pjsip(config: Config, templates_dir: Path) -> str:
    lines = [*_global_section(), *_transport(config)]
    for phone in sorted(config.pbx.phones, key=lambda p: p.extension):
        lines += _phone_sections(config, phone)
    for trunk in config.pbx.trunks:
        lines += ["", f"; trunk {trunk.name} ({trunk.template})", trunk_text(trunk, templates_dir).strip()]
    lines += ["", *custom_include("pjsip_custom.conf"), ""]
    return "\n".join(lines)


def _global_section() -> list[str]:
    return [
        "",
        "; No guests: a request is a trunk's (by source address) or a phone's (by user name), never anonymous.",
        "[global]",
        "type = global",
        f"endpoint_identifier_order = {','.join(IDENTIFIER_ORDER)}",
    ]


def _transport(config: Config) -> list[str]:
    pbx = config.pbx
    host = f"[{pbx.sip_bind}]" if ipaddress.ip_address(pbx.sip_bind).version == 6 else pbx.sip_bind
    lines = [
        "",
        "[transport-udp]",
        "type = transport",
        "protocol = udp",
        "; pbx.sip_bind: the address phones and trunks reach; 0.0.0.0 is every IPv4 address of this host",
        f"bind = {host}:{pbx.sip_port}",
    ]
    for net in pbx.local_net:
        lines.append(f"local_net = {net}")
    if pbx.external_address:
        lines += [
            f"external_media_address = {pbx.external_address}",
            f"external_signaling_address = {pbx.external_address}",
        ]
    return lines


def _phone_sections(config: Config, phone: Phone) -> list[str]:
    ext = phone.extension
    endpoint = [
        "",
        f"; {phone.name} ({phone.business})",
        f"[{ext}]",
        "type = endpoint",
        "transport = transport-udp",
        "context = from-internal",
        "disallow = all",
        f"allow = {CODECS}",
        f"auth = {ext}",
        f"aors = {ext}",
        f'callerid = "{quoted(phone.name)}" <{ext}>',
        "direct_media = no",
        "rtp_symmetric = yes",
        "force_rport = yes",
        "rewrite_contact = yes",
    ]
    if phone.voicemail:
        endpoint.append(f"mailboxes = {ext}@default")
    auth = ["", f"[{ext}]", "type = auth", "auth_type = userpass", f"username = {ext}",
            f"password = {phone_secret(config, phone)}"]  # fmt: skip
    aor = ["", f"[{ext}]", "type = aor", "max_contacts = 2", "remove_existing = yes", "qualify_frequency = 60"]
    return endpoint + auth + aor


def trunk_text(trunk: Trunk, templates_dir: Path) -> str:
    """The template's body with the trunk's values (the config reader filled in the optional fields' defaults)."""
    path = templates_dir / f"{trunk.template}.conf"
    try:
        template = path.read_text()
    except OSError as exc:
        raise RenderError(f"trunk {trunk.name}: template {path} cannot be read ({exc.strerror})") from None
    values = {"TRUNK": trunk.name, **dict(trunk.fields)}
    body = "\n".join(line for line in template.splitlines() if not line.startswith(";"))
    missing = sorted({m.group(1) for m in PLACEHOLDER.finditer(body)} - values.keys())
    if missing:
        raise RenderError(f"trunk {trunk.name}: template {trunk.template} needs {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], body)
