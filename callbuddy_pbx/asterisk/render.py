"""Render Asterisk's configuration from the installer's YAML: pure (config in, file texts out), deterministic.

Every file starts with MARKER so `render` can tell its own files from an installer's. The installer's own additions
go in `*_custom.conf` files, which the rendered files include with `#tryinclude` and which are never written.
This module renders the loopback-only links (manager.conf, http.conf, ari.conf), CEL (cel.conf,
cel_sqlite3_custom.conf: Asterisk's own record of every call, in SQLite, where the service reads the calls it did
not see over AMI) and logger.conf (with the security log fail2ban reads); `render_pjsip` the phones and trunks;
`render_dialplan` the dialplan and voicemail.
"""

from __future__ import annotations

from pathlib import Path

from callbuddy_pbx.asterisk.render_base import RenderError as RenderError
from callbuddy_pbx.asterisk.render_base import custom_include
from callbuddy_pbx.asterisk.render_dialplan import FALLBACK_CONTEXT as FALLBACK_CONTEXT
from callbuddy_pbx.asterisk.render_dialplan import render_dialplan, render_extensions, render_voicemail
from callbuddy_pbx.asterisk.render_pjsip import render_pjsip
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.asterisk import ARI_USER as ARI_USER  # the default ARI user, rendered unless ari.username
from callbuddy_pbx.config.asterisk import ari_password, http_prefix, loopback_bind
from callbuddy_pbx.shipped import places, shipped_dir

MARKER = "; Written by callbuddy-pbx render"
DIALPLANS_DIR = shipped_dir("dialplans")  # inside the installed package, or the checkout's top-level folder
LIBRARY_GLOB = "callbuddy-*.conf"  # shipped dialplan files the rendered extensions.conf includes
HTTP_BIND = ("127.0.0.1", 8088)  # Asterisk's HTTP server (ARI) unless ari.url names another loopback address/port
CEL_SQLITE_CONF = "cel_sqlite3_custom.conf"  # the service reads what it configures: no custom file beside it


def header(name: str) -> str:
    if name == CEL_SQLITE_CONF:
        return f"{MARKER}. Do not edit: render overwrites it, and the service reads the rows it describes.\n"
    shared = name.startswith(("extensions", "callbuddy-"))  # the dialplan files share one custom file
    custom = "extensions_custom.conf" if shared else name.replace(".conf", "_custom.conf")
    return f"{MARKER}. Do not edit: render overwrites it. Your own settings go in {custom}.\n"


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
        "logger.conf": render_logger(),
        **library,
    }
    return {name: header(name) + text for name, text in files.items()}


def dialplans_dir() -> Path:
    """The shipped dialplan library: inside the installed package, or beside it in a checkout (see shipped.py)."""
    for place in places("dialplans"):
        if place.is_dir():
            return place
    raise RenderError(f"the dialplan library ({DIALPLANS_DIR.name}/{LIBRARY_GLOB}) was not found")


def _custom(name: str) -> str:
    """The end of a rendered file: the installer's custom file, included so it cannot join a rendered section."""
    return "\n".join(custom_include(name))


# ---- AMI, HTTP, ARI: loopback only ------------------------------------------------------------------------------


# The AMI user's classes. `read` filters only the events it is sent: call (channels, Dial, bridges, hangups,
# DeviceStateChange), dialplan (Newexten), agent (Queue*), system (FullyBooted, Shutdown, ContactStatus).
# `write` decides which actions it may send: one allowed when the user has any one of the classes Asterisk registered
# it with. `reporting` covers what the service reads (Login, Logoff and Ping need none): CoreShowChannels
# (system|reporting), DeviceStateList (call|reporting), PJSIPShowRegistrationsOutbound (system|reporting).
# `originate` is the Originate of a call back (asterisk/callback.py): to Exten/Context/Priority of
# [callbuddy-callback] only, for which Asterisk asks `originate` alone (manager.c demands `system` as well for an
# Application such as System, Exec or AGI, which the service never sends). Never `system` (GetConfig reads
# pjsip.conf with every phone's password; Originate of the System application runs a shell command), nor `config`
# or `command`: nothing the service does needs them. Without `system`, PJSIPShowEndpoints and PJSIPShowContacts
# (registered with `system` alone) are refused: phone states then come from DeviceStateList, the
# DeviceStateChange and ContactStatus events, and ARI.
AMI_READ = ("call", "dialplan", "agent", "system")
AMI_WRITE = ("reporting", "originate")


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

{_custom("manager_custom.conf")}
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
    lines += ["", *custom_include("http_custom.conf"), ""]
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

{_custom("ari_custom.conf")}
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

{_custom("cel_custom.conf")}
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


# ---- logs: the security log fail2ban reads ---------------------------------------------------------------------------

SECURITY_LOG = "security"  # a file in Asterisk's log folder (astlogdir, /var/log/asterisk by default)


def render_logger() -> str:
    """Asterisk's usual logs, plus its security events (failed registrations and authentications, requests from no
    known endpoint) in a file of their own, which fail2ban's stock `asterisk` filter reads (see the README)."""
    return f"""
[general]
; No dateformat: Asterisk's default timestamp ([Dec  6 14:13:41]) is the one fail2ban's asterisk filter reads.

[logfiles]
console => notice,warning,error
messages => notice,warning,error
{SECURITY_LOG} => security

{_custom("logger_custom.conf")}
"""
