"""Render Asterisk's configuration from the installer's YAML: pure (config in, file texts out), deterministic.

Every file starts with MARKER so `render` can tell its own files from an installer's. The installer's own additions
go in `*_custom.conf` files, which the rendered files include with `#tryinclude` and which are never written.
This module renders the loopback-only links (manager.conf, http.conf, ari.conf), CEL (cel.conf, and
cel_sqlite3_custom.conf or, with `cel.pgsql`, cel_pgsql.conf: Asterisk's own record of every call, where the service
reads the calls it did not see over AMI) and logger.conf (with the security log fail2ban reads); `render_pjsip` the
phones and trunks; `render_dialplan` the dialplan and voicemail.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from callbuddy_pbx.asterisk.render_base import RenderError as RenderError
from callbuddy_pbx.asterisk.render_base import custom_include
from callbuddy_pbx.asterisk.render_dialplan import FALLBACK_CONTEXT as FALLBACK_CONTEXT
from callbuddy_pbx.asterisk.render_dialplan import render_dialplan, render_extensions, render_voicemail
from callbuddy_pbx.asterisk.render_pjsip import render_pjsip
from callbuddy_pbx.config import CelConfig, Config
from callbuddy_pbx.config.asterisk import ARI_USER as ARI_USER  # the default ARI user, rendered unless ari.username
from callbuddy_pbx.config.asterisk import ari_password, http_prefix, loopback_bind
from callbuddy_pbx.shipped import places, shipped_dir

MARKER = "; Written by callbuddy-pbx render"
DIALPLANS_DIR = shipped_dir("dialplans")  # inside the installed package, or the checkout's top-level folder
LIBRARY_GLOB = "callbuddy-*.conf"  # shipped dialplan files the rendered extensions.conf includes
HTTP_BIND = ("127.0.0.1", 8088)  # Asterisk's HTTP server (ARI) unless ari.url names another loopback address/port
CEL_SQLITE_CONF = "cel_sqlite3_custom.conf"  # the service reads what it configures: no custom file beside it
CEL_PGSQL_CONF = "cel_pgsql.conf"  # its custom file holds the password alone ([global](+), password = ...)


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
        **_cel_backend(config),
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


def _cel_backend(config: Config) -> dict[str, str]:
    """The CEL backend the service reads: cel_pgsql's table when `cel.pgsql` names one, else cel_sqlite3_custom."""
    if config.cel.pgsql is not None:
        return {CEL_PGSQL_CONF: render_cel_pgsql(config.cel, config.storage.url)}
    return {CEL_SQLITE_CONF: render_cel_sqlite()}


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


def render_cel_pgsql(cel: CelConfig, storage_url: str | None) -> str:
    """cel_pgsql's connection and table: the database of `cel.pgsql.url` (else the store's), never a password."""
    from callbuddy_pbx.asterisk.cel_pgsql import CEL_PGSQL_ADD_ID, CEL_PGSQL_TABLE  # psycopg: PostgreSQL only

    if cel.pgsql is None:
        raise RenderError("cel_pgsql.conf needs cel.pgsql")
    url = cel.pgsql.url or storage_url
    if url is None:
        raise RenderError("cel_pgsql.conf needs a database: set cel.pgsql.url (the store is SQLite)")
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    host = parts.hostname or query.get("host", "")
    settings = {
        "hostname": host if host and not host.startswith("/") else "",  # none: Unix socket
        "port": str(parts.port or query.get("port", "") or ""),
        "dbname": unquote(parts.path.lstrip("/")),
        "user": unquote(parts.username or query.get("user", "")),
    }
    zone = cel.timezone or "UTC"
    lines = [
        "",
        "; The service reads the rows Asterisk writes with this: `cel.pgsql` in callbuddy.yaml names the database",
        f"; and the table ({cel.pgsql.table}), one table per Asterisk server. Create it once, as its owner:",
        *(f";   {line}" for line in CEL_PGSQL_TABLE.format(table=cel.pgsql.table).splitlines()),
        f"; A table made without an id: {CEL_PGSQL_ADD_ID.format(table=cel.pgsql.table)}",
        "; Asterisk's user needs INSERT on it and USAGE on its id sequence; the service's user SELECT.",
        "; The password goes in cel_pgsql_custom.conf ([global](+), then password = ...) or in ~/.pgpass of the user",
        "; Asterisk runs as; never here.",
        "[global]",
        *(f"{key} = {value}" for key, value in settings.items() if value),
        f"table = {cel.pgsql.table}",
        "appname = asterisk-cel",
    ]
    if zone == "UTC":
        lines.append("usegmtime = yes  ; eventtime in UTC: the service reads it so (cel.timezone not set)")
    else:
        lines.append(f"usegmtime = no  ; eventtime in Asterisk's local time, which must be {zone} (cel.timezone)")
    lines += ["", *custom_include("cel_pgsql_custom.conf"), ""]
    return "\n".join(lines)


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
