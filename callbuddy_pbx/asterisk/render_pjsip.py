"""pjsip.conf: one transport, the phones (endpoint + auth + aor each) and the trunks from their templates."""

from __future__ import annotations

import re
from pathlib import Path

from callbuddy_pbx.asterisk.render_base import RenderError, phone_secret, quoted
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.pbx import Phone, Trunk

CODECS = "ulaw,alaw,g722"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def render_pjsip(config: Config, templates_dir: Path) -> str:
    pbx = config.pbx
    lines = ["", "[transport-udp]", "type = transport", "protocol = udp", f"bind = 0.0.0.0:{pbx.sip_port}"]
    for net in pbx.local_net:
        lines.append(f"local_net = {net}")
    if pbx.external_address:
        lines += [
            f"external_media_address = {pbx.external_address}",
            f"external_signaling_address = {pbx.external_address}",
        ]
    for phone in sorted(pbx.phones, key=lambda p: p.extension):
        lines += _phone_sections(config, phone)
    for trunk in pbx.trunks:
        lines += ["", f"; trunk {trunk.name} ({trunk.template})", _trunk_text(trunk, templates_dir).strip()]
    lines += ["", "#tryinclude pjsip_custom.conf", ""]
    return "\n".join(lines)


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


def _trunk_text(trunk: Trunk, templates_dir: Path) -> str:
    path = templates_dir / f"{trunk.template}.conf"
    try:
        template = path.read_text()
    except OSError as exc:
        raise RenderError(f"trunk {trunk.name}: template {path} cannot be read ({exc.strerror})") from None
    values = {"TRUNK": trunk.name, **dict(trunk.fields)}
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - values.keys())
    if missing:
        raise RenderError(f"trunk {trunk.name}: template {trunk.template} needs {', '.join(missing)}")
    body = "\n".join(line for line in template.splitlines() if not line.startswith(";"))
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], body)
