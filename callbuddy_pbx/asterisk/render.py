"""Render Asterisk's configuration from the installer's YAML: pure (config in, file texts out), deterministic.

Every file starts with MARKER so `render` can tell its own files from an installer's. The installer's own additions
go in `*_custom.conf` files, which the rendered files include with `#tryinclude` and which are never written.

Numbers with `routing: callbuddy` enter the service's Stasis application: `Stasis(<ari.app>,inbound,<DID without +>)`.
Fail open: whenever Stasis() returns with the caller still there and still in this extension, the next priorities
are the same ring steps and no-answer action as `routing: dialplan`, so the phones ring whether or not the service
is up. That is the case when Stasis() fails (STASISSTATUS=FAILED: no WebSocket connected for the app, or the app is
only left over and not active, traces 32 and 33) and when the service hands a call back with
`POST /channels/{id}/continue` and no target (STASISSTATUS=SUCCESS: routing/router.py relies on it). A call the
service ends is hung up (Asterisk runs no further priority), and a call it sends on is elsewhere.
cel.conf and cel_sqlite3_custom.conf make Asterisk keep its own record of every call (CEL) in SQLite, where the
service reads the calls it did not see over AMI (`cel:` in callbuddy.yaml).
The fallback contract: when nobody answered, the service continues the caller with
`POST /channels/{id}/continue?context=callbuddy-fallback&extension=<DID without +>&priority=1`; that extension of
`[callbuddy-fallback]` runs the ring group's no-answer action (voicemail, forward through the trunk, or hang up).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from callbuddy_pbx.config import Business, Config
from callbuddy_pbx.config.asterisk import ARI_USER as ARI_USER  # the default ARI user, rendered unless ari.username
from callbuddy_pbx.config.asterisk import ari_password, http_prefix, loopback_bind
from callbuddy_pbx.config.derived_secrets import derive_secret
from callbuddy_pbx.config.pbx import AUTO_SECRET, CALLBUDDY_ONLY_STRATEGIES, NoAnswer, Phone, RingGroup, Trunk
from callbuddy_pbx.shipped import places, shipped_dir

MARKER = "; Written by callbuddy-pbx render"
DIALPLANS_DIR = shipped_dir("dialplans")  # inside the installed package, or the checkout's top-level folder
LIBRARY_GLOB = "callbuddy-*.conf"  # shipped dialplan files the rendered extensions.conf includes
FALLBACK_CONTEXT = "callbuddy-fallback"  # where the service continues an unanswered `routing: callbuddy` call
HTTP_BIND = ("127.0.0.1", 8088)  # Asterisk's HTTP server (ARI) unless ari.url names another loopback address/port
CODECS = "ulaw,alaw,g722"
CAUSE_NO_ANSWER = 19  # Q.850 no answer from user: Asterisk sends 480 Temporarily Unavailable
CAUSE_BUSY = 17  # Q.850 user busy: 486 Busy Here
NANP_DID = re.compile(r"1\d{10}")  # a North American (+1) number without +: carriers may send its last 10 digits
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
CEL_SQLITE_CONF = "cel_sqlite3_custom.conf"  # the service reads what it configures: no custom file beside it


class RenderError(ValueError):
    """The configuration cannot be rendered (e.g. a trunk template is missing a value); says which and where."""


def header(name: str) -> str:
    if name == CEL_SQLITE_CONF:
        return f"{MARKER}. Do not edit: render overwrites it, and the service reads the rows it describes.\n"
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
        "http.conf": render_http(config),
        "ari.conf": render_ari(config),
        "pjsip.conf": render_pjsip(config, config.pbx.templates_dir),
        "extensions.conf": render_extensions(sorted(library)),
        "extensions_callbuddy.conf": render_dialplan(config),
        "voicemail.conf": render_voicemail(config),
        "cel.conf": render_cel(),
        CEL_SQLITE_CONF: render_cel_sqlite(),
        **library,
    }
    return {name: header(name) + text for name, text in files.items()}


def dialplans_dir() -> Path:
    """The shipped dialplan library: inside the installed package, or beside it in a checkout (see shipped.py)."""
    for place in places("dialplans"):
        if place.is_dir():
            return place
    raise RenderError(f"the dialplan library ({DIALPLANS_DIR.name}/{LIBRARY_GLOB}) was not found")


# ---- AMI, HTTP, ARI: loopback only ------------------------------------------------------------------------------


# The AMI user's classes. `read` filters only the events it is sent: call (channels, Dial, bridges, hangups,
# DeviceStateChange), dialplan (Newexten), agent (Queue*), system (FullyBooted, Shutdown, ContactStatus).
# `write` decides which actions it may send: one allowed when the user has any one of the classes Asterisk registered
# it with. `reporting` covers every action the service sends (Login, Logoff and Ping need none): CoreShowChannels
# (system|reporting), DeviceStateList (call|reporting), PJSIPShowRegistrationsOutbound (system|reporting). Never
# `system` (GetConfig reads pjsip.conf with every phone's password; Originate of the System application runs a shell
# command), nor `config`, `command` or `originate`: nothing the service does needs them. Without `system`,
# PJSIPShowEndpoints and PJSIPShowContacts (registered with `system` alone) are refused: phone states then come from
# DeviceStateList, the DeviceStateChange and ContactStatus events, and ARI.
AMI_READ = ("call", "dialplan", "agent", "system")
AMI_WRITE = ("reporting",)


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
read = {",".join(AMI_READ)}
write = {",".join(AMI_WRITE)}
eventfilter = !Event: VarSet
eventfilter = !Event: RTCP
eventfilter = !Event: CEL
eventfilter = !Event: Cdr

#tryinclude manager_custom.conf
"""


def render_http(config: Config) -> str:
    """Where `ari.url` points when that is plain http on loopback; else loopback on the default port, and a note."""
    bind = loopback_bind(config.ari.url)
    address, port = bind or HTTP_BIND
    lines = ["", "[general]", "enabled = yes", f"bindaddr = {address}", f"bindport = {port}"]
    prefix = http_prefix(config.ari.url)
    if bind and prefix:
        lines.append(f"prefix = {prefix}")
    if bind is None:
        lines += [
            "; ari.url is not plain http on this machine's loopback, so ARI stays on loopback here: bind where the",
            "; service reaches it (a private address, TLS) in http_custom.conf, never on a public address.",
        ]
    lines += ["", "#tryinclude http_custom.conf", ""]
    return "\n".join(lines)


def render_ari(config: Config) -> str:
    """The ARI user the service logs in as: the same name and password as `config.ari` (derived from the key)."""
    password = ari_password(config.ari.password, config.pbx.secret_key)
    if not password:
        raise RenderError("ari.conf needs a password: set pbx.secret_key (or ari.password)")
    return f"""
[general]
enabled = yes
pretty = no

[{config.ari.username}]
type = user
read_only = no
password = {password}

#tryinclude ari_custom.conf
"""


# ---- CEL: Asterisk's own record of every call, in SQLite ------------------------------------------------------------

CEL_APPS = ("dial", "queue", "voicemail", "stasis", "playback")  # APP_START / APP_END are written for these only
# cel_sqlite3_custom's table: `columns` are the table's, `fields` the CEL event fields written into them, pairwise.
CEL_COLUMNS = (
    "eventtype, eventtime, cidname, cidnum, cidani, cidrdnis, ciddnid, exten, context, channame, appname, appdata, "
    "amaflags, accountcode, uniqueid, linkedid, peer, peeraccount, userfield, userdeftype, extra"
)
CEL_FIELDS = (
    "EventType, EventTime(float), Name, Num, ani, rdnis, dnid, Exten, Context, ChanName, AppName, AppData, AMAFlags, "
    "AccountCode, UniqueID, LinkedID, Peer, PeerAccount, UserField, userdeftype, EventExtra"
)


def render_cel() -> str:
    return f"""
[general]
enable = yes
apps = {",".join(CEL_APPS)}
events = ALL
; No dateformat on purpose: eventtime is then unix seconds with microseconds (1796543878.250289), exact and in no
; time zone. A dateformat (e.g. %F %T) makes it local wall-clock text to the second; then set cel.timezone.

#tryinclude cel_custom.conf
"""


def render_cel_sqlite() -> str:
    """The table the service reads. linkedid must be among the columns (the sample Asterisk ships has none)."""
    return f"""
; The service reads the rows Asterisk writes with this: `cel.sqlite` in callbuddy.yaml names the database (master.db
; in Asterisk's log folder, default /var/log/asterisk/master.db), `cel.table` the table. Keep linkedid: it groups
; the rows of one call (the sample file Asterisk ships has no linkedid column).
[master]
table = cel
columns = {CEL_COLUMNS}
fields = {CEL_FIELDS}
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
    groups = sorted(pbx.ring_groups, key=lambda g: g.number)
    for group in groups:
        out += _ring_group(group, business_of.get(group.number), phones, _first_trunk(pbx.trunks), config.ari.app)
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
    routed = [group for group in groups if group.routing == "callbuddy"]
    if routed:
        out += _fallback_context(routed, business_of, phones, trunk)
    return "\n".join(out) + "\n"


def _first_trunk(trunks: Iterable[Trunk]) -> str:
    return next((t.name for t in trunks), "")


def _contacts(extensions: Iterable[str]) -> str:
    # Only the phones registered at this moment: an unregistered one gives an empty item, which Dial skips.
    return "&".join(f"${{PJSIP_DIAL_CONTACTS({ext})}}" for ext in extensions)


def _voicemail(extension: str) -> str:
    return f"VoiceMail({extension}@default,u)"


def _ring_group(
    group: RingGroup, business: Business | None, phones: dict[str, Phone], trunk: str, app: str
) -> list[str]:
    """One DID: ring the registered phones (all together, or one after the other), then the no-answer action.

    A step whose phones are all unregistered is skipped: Dial with an empty list would end the call at once.
    With `routing: callbuddy` the Stasis entry comes first and the steps are its fail-open path.
    """
    did = group.number.lstrip("+")
    via = " via callbuddy" if group.routing == "callbuddy" else ""
    label = f"{business.name if business else 'unknown business'}: {group.strategy}{via}"
    lines = [f"exten => {did},1,NoOp(CallBuddy {_quoted(label)})"]
    if group.routing == "callbuddy":
        lines += _stasis_entry(group, did, app)
    if group.strategy in ("in_order", *CALLBUDDY_ONLY_STRATEGIES):
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
    app = _no_answer_app(group.no_answer, phones, trunk)
    lines.append(f" same => n(noanswer),{app or 'NoOp(nobody answered)'}")
    lines += _unanswered_end(app)
    lines.append(" same => n(done),Hangup()")
    # Carriers differ: some deliver the number with a leading +, some without, some (NANP) only its 10 digits.
    lines += [f"exten => {alias},1,Goto({did},1)" for alias in did_aliases(group.number)]
    return lines


def did_aliases(number: str) -> list[str]:
    """The other forms carriers deliver a business number in: with a leading +, and a NANP number (+1 and 10 digits)
    also as its 10-digit national number."""
    did = number.lstrip("+")
    aliases = [f"+{did}"]
    if NANP_DID.fullmatch(did):
        aliases.append(did[1:])
    return aliases


def _unanswered_end(app: str) -> list[str]:
    """After a no-answer action that leaves the caller unanswered: hang up with the cause the carrier should see,
    486 Busy Here (cause 17) when the last Dial found the phones busy, else 480 Temporarily Unavailable (cause 19).
    A bare Hangup() would send 603 Decline, which tells the carrier not to try elsewhere. Voicemail answered the
    caller: the call ends normally (done). A forward that was answered ends normally too."""
    if app.startswith("VoiceMail("):
        return []
    answered = [' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)'] if app else []
    return [
        *answered,
        ' same => n,GotoIf($["${DIALSTATUS}" = "BUSY"]?busy)',
        f" same => n,Hangup({CAUSE_NO_ANSWER})",
        f" same => n(busy),Hangup({CAUSE_BUSY})",
    ]


def _no_answer_app(action: NoAnswer, phones: dict[str, Phone], trunk: str) -> str:
    """The application of a no-answer action ("" for hang up)."""
    if action.action == "voicemail" and action.extension in phones:
        return _voicemail(action.extension)
    if action.action == "forward" and trunk:
        return f"Dial(PJSIP/{action.number}@{trunk},30)"
    return ""


def _stasis_entry(group: RingGroup, did: str, app: str) -> list[str]:
    """Hand the call to the service; whatever Stasis() returns, the next priority rings the group (fail open).

    FAILED: no app connected, or one left over and not active (traces 32, 33). SUCCESS with the caller still here:
    the service handed the call back (continue without a target). Deliberately no `GotoIf` on STASISSTATUS: a
    handed-back call must ring, not hang up. The NoOp shows which in AMI's Newexten events (VarSet is filtered out).
    """
    lines = [
        f" same => n,Stasis({app},inbound,{did})",
        " same => n,NoOp(STASISSTATUS=${STASISSTATUS})",
    ]
    if group.strategy in CALLBUDDY_ONLY_STRATEGIES:
        lines.append(f"; {group.strategy} has no dialplan equivalent: without the service it rings in_order")
    return lines


def _fallback_context(
    groups: Iterable[RingGroup], business_of: dict[str, Business], phones: dict[str, Phone], trunk: str
) -> list[str]:
    """Where the service continues a `routing: callbuddy` call nobody answered: the group's no-answer action."""
    out = [
        "",
        f"[{FALLBACK_CONTEXT}]",
        "; Calls to numbers with routing: callbuddy that nobody answered. The CallBuddy service continues them with",
        f";   POST /ari/channels/{{id}}/continue?context={FALLBACK_CONTEXT}&extension=<number without +>&priority=1",
        "; and the number's extension runs its ring group's no-answer action. A call the service never had",
        "; (Stasis() failed) does not come here: its extension in [from-trunk] rings the phones, then does the same.",
    ]
    for group in groups:
        did = group.number.lstrip("+")
        business = business_of.get(group.number)
        label = f"{business.name if business else 'unknown business'}: nobody answered"
        out.append(f"exten => {did},1,NoOp(CallBuddy {_quoted(label)})")
        app = _no_answer_app(group.no_answer, phones, trunk)
        if app:
            out.append(f" same => n,{app}")
        out += _unanswered_end(app)
        out.append(" same => n(done),Hangup()")
    return out


# ---- voicemail --------------------------------------------------------------------------------------------------


def render_voicemail(config: Config) -> str:
    lines = ["", "[general]", "format = wav49|wav", "attach = no", "", "[default]"]
    for phone in sorted(config.pbx.phones, key=lambda p: p.extension):
        if phone.voicemail:
            lines.append(f"{phone.extension} => {voicemail_pin(config, phone)},{_quoted(phone.name)}")
    lines += ["", "#tryinclude voicemail_custom.conf", ""]
    return "\n".join(lines)
