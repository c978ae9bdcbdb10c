"""Render Asterisk's configuration from the installer's YAML: pure (config in, file texts out), deterministic.

Every file starts with MARKER so `render` can tell its own files from an installer's. The installer's own additions
go in `*_custom.conf` files, which the rendered files include with `#tryinclude` and which are never written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from callbuddy_pbx.config import Business, Config
from callbuddy_pbx.config_pbx import AUTO_SECRET, Phone, RingGroup, Trunk
from callbuddy_pbx.pbx_secrets import derive_secret

MARKER = "; Written by callbuddy-pbx render"
DIALPLANS_DIR = Path(__file__).resolve().parents[2] / "dialplans"
LIBRARY_GLOB = "callbuddy-*.conf"  # shipped dialplan files the rendered extensions.conf includes
ARI_USER = "callbuddy"
CODECS = "ulaw,alaw,g722"
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class RenderError(ValueError):
    """The configuration cannot be rendered (e.g. a trunk template is missing a value); says which and where."""


def header(name: str) -> str:
    shared = name.startswith(("extensions", "callbuddy-"))  # the dialplan files share one custom file
    custom = "extensions_custom.conf" if shared else name.replace(".conf", "_custom.conf")
    return f"{MARKER}. Do not edit: render overwrites it. Your own settings go in {custom}.\n"


def phone_secret(config: Config, phone: Phone) -> str:
    return derive_secret(config.pbx.secret_key, phone.extension) if phone.secret == AUTO_SECRET else phone.secret


def voicemail_pin(config: Config, phone: Phone) -> str:
    digits = "".join(str(ord(ch) % 10) for ch in derive_secret(config.pbx.secret_key, f"voicemail:{phone.extension}"))
    return digits[:6]


def render_all(config: Config) -> dict[str, str]:
    """Every file, by name, with its text."""
    library = {path.name: path.read_text() for path in sorted(dialplans_dir().glob(LIBRARY_GLOB))}
    files = {
        "manager.conf": render_manager(config),
        "http.conf": render_http(),
        "ari.conf": render_ari(config),
        "pjsip.conf": render_pjsip(config, config.pbx.templates_dir),
        "extensions.conf": render_extensions(sorted(library)),
        "extensions_callbuddy.conf": render_dialplan(config),
        "voicemail.conf": render_voicemail(config),
        **library,
    }
    return {name: header(name) + text for name, text in files.items()}


def dialplans_dir() -> Path:
    """The shipped dialplan library: beside the package in a checkout, else where an install put it."""
    for place in (DIALPLANS_DIR, Path("/usr/share/callbuddy/dialplans")):
        if place.is_dir():
            return place
    raise RenderError(f"the dialplan library ({DIALPLANS_DIR.name}/{LIBRARY_GLOB}) was not found")


# ---- AMI, HTTP, ARI: loopback only ------------------------------------------------------------------------------


def render_manager(config: Config) -> str:
    ami = config.asterisk
    return f"""
[general]
enabled = yes
port = {ami.port}
bindaddr = 127.0.0.1
timestampevents = yes

[{ami.username}]
secret = {ami.secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = call,dialplan,agent,system
write = system,reporting,originate
eventfilter = !Event: VarSet
eventfilter = !Event: RTCP
eventfilter = !Event: CEL
eventfilter = !Event: Cdr

#tryinclude manager_custom.conf
"""


def render_http() -> str:
    return """
[general]
enabled = yes
bindaddr = 127.0.0.1
bindport = 8088

#tryinclude http_custom.conf
"""


def render_ari(config: Config) -> str:
    password = derive_secret(config.pbx.secret_key, "ari")
    return f"""
[general]
enabled = yes
pretty = no

[{ARI_USER}]
type = user
read_only = no
password = {password}

#tryinclude ari_custom.conf
"""


# ---- PJSIP: one transport, phones, trunks -------------------------------------------------------------------------


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
        f'callerid = "{_quoted(phone.name)}" <{ext}>',
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


def _quoted(text: str) -> str:
    return re.sub(r'["\\\r\n;]', "", text)


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


# ---- dialplan ---------------------------------------------------------------------------------------------------


def render_extensions(library: list[str]) -> str:
    includes = "".join(f"#include {name}\n" for name in library)
    return f"""
[general]
static=yes
writeprotect=yes

[globals]

{includes}#include extensions_callbuddy.conf
#tryinclude extensions_custom.conf
"""


def render_dialplan(config: Config) -> str:
    pbx = config.pbx
    phones = {p.extension: p for p in pbx.phones}
    business_of = {number: b for b in config.businesses for number in b.numbers}
    out = ["", "[from-trunk]", "; Calls from carriers: each business number rings its group of phones."]
    for group in sorted(pbx.ring_groups, key=lambda g: g.number):
        out += _ring_group(group, business_of.get(group.number), phones, _first_trunk(pbx.trunks))
    out += ["", "[from-internal]", "; Desk phones: extensions, voicemail, and calls out through the trunk."]
    for phone in sorted(pbx.phones, key=lambda p: p.extension):
        mailbox = int(phone.voicemail)
        out.append(f"exten => {phone.extension},1,Gosub(callbuddy-desk,s,1({phone.extension},{mailbox},20))")
        out.append(" same => n,Hangup()")
    if any(p.voicemail for p in pbx.phones):
        out.append("exten => *97,1,VoiceMailMain(${CALLERID(num)}@default)")
    trunk = _first_trunk(pbx.trunks)
    if trunk:
        for pattern in ("_+X.", "_1NXXNXXXXXX"):
            out.append(f"exten => {pattern},1,Gosub(callbuddy-outbound,s,1(${{EXTEN}},{trunk}))")
            out.append(" same => n,Hangup()")
    return "\n".join(out) + "\n"


def _first_trunk(trunks: Iterable[Trunk]) -> str:
    return next((t.name for t in trunks), "")


def _contacts(extensions: Iterable[str]) -> str:
    # Only the phones registered at this moment: an unregistered one gives an empty item, which Dial skips.
    return "&".join(f"${{PJSIP_DIAL_CONTACTS({ext})}}" for ext in extensions)


def _voicemail(extension: str) -> str:
    return f"VoiceMail({extension}@default,u)"


def _ring_group(group: RingGroup, business: Business | None, phones: dict[str, Phone], trunk: str) -> list[str]:
    """One DID: ring the registered phones (all together, or one after the other), then the no-answer action.

    A step whose phones are all unregistered is skipped: Dial with an empty list would end the call at once.
    """
    did = group.number.lstrip("+")
    label = f"{business.name if business else 'unknown business'}: {group.strategy}"
    lines = [f"exten => {did},1,NoOp(CallBuddy {_quoted(label)})"]
    if group.strategy == "in_order":
        steps = [[member] for member in group.members[: max(1, group.total_s // group.ring_s)]]
    else:
        steps = [list(group.members)]
    for index, members in enumerate(steps, start=1):
        after = f"step{index + 1}" if index < len(steps) else "noanswer"
        lines += [
            f" same => n(step{index}),Set(CB_DIAL={_contacts(members)})",
            f" same => n,GotoIf($[${{LEN(${{STRREPLACE(CB_DIAL,&,)}})}} = 0]?{after})",
            f" same => n,Dial(${{CB_DIAL}},{group.ring_s})",
            ' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)',
        ]
    action = group.no_answer
    if action.action == "voicemail" and action.extension in phones:
        lines.append(f" same => n(noanswer),{_voicemail(action.extension)}")
    elif action.action == "forward" and trunk:
        lines.append(f" same => n(noanswer),Dial(PJSIP/{action.number}@{trunk},30)")
    else:
        lines.append(" same => n(noanswer),NoOp(nobody answered)")
    lines.append(" same => n(done),Hangup()")
    # Carriers differ: some deliver the number with a leading +, some without.
    lines.append(f"exten => +{did},1,Goto({did},1)")
    return lines


# ---- voicemail --------------------------------------------------------------------------------------------------


def render_voicemail(config: Config) -> str:
    lines = ["", "[general]", "format = wav49|wav", "attach = no", "", "[default]"]
    for phone in sorted(config.pbx.phones, key=lambda p: p.extension):
        if phone.voicemail:
            lines.append(f"{phone.extension} => {voicemail_pin(config, phone)},{_quoted(phone.name)}")
    lines += ["", "#tryinclude voicemail_custom.conf", ""]
    return "\n".join(lines)
