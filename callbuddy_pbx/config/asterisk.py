"""How the service reaches Asterisk: AMI (`asterisk:`, `inbound:`) and the REST Interface (ARI, `ari:`).

ARI:

Every setting has a default that matches what `callbuddy-pbx render` writes (http.conf on 127.0.0.1:8088, the ARI
user `callbuddy` in ari.conf with a password derived from `pbx.secret_key`), so a rendered PBX and the service agree
without a second secret to keep in step.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from callbuddy_pbx.config.cel import CelConfig, CelReader
from callbuddy_pbx.config.derived_secrets import derive_secret
from callbuddy_pbx.config.pbx import MIN_SIP_SECRET_CHARS, PbxConfig, PbxReader, public_address
from callbuddy_pbx.config.reader import Reader, shown

# ---------------------------------------------------------------------------------------------------------------------
# AMI: how the service reaches Asterisk's Manager Interface (`asterisk:`), and which calls are inbound (`inbound:`)

# Dialplan contexts in which calls from carriers usually start (FreePBX, Asterisk samples, common tutorials).
DEFAULT_INBOUND_CONTEXTS: tuple[str, ...] = (
    "from-trunk",
    "from-pstn",
    "from-external",
    "from-did-direct",
    "from-carrier",
    "from-sip-external",
    "from-inbound",
    "incoming",
    "inbound",
)

# Contexts where desk phones' own calls run (FreePBX and the usual hand-written dialplans).
DEFAULT_INTERNAL_CONTEXTS: tuple[str, ...] = (
    "from-internal",
    "from-internal-xfer",
    "from-internal-noxfer",
    "from-extensions",
    "internal",
    "phones",
)


@dataclass(frozen=True, slots=True)
class AsteriskConfig:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "callbuddy"
    secret: str = field(default="", repr=False)  # never printed or logged
    connect_timeout_s: float = 5.0
    action_timeout_s: float = 10.0
    # A half-open link (Asterisk gone silent, TCP still open) is noticed within ping_interval_s + ping_timeout_s
    # of the last byte received: 6 s by default, so /healthz tells the truth within 10 s.
    ping_interval_s: float = 3.0
    ping_timeout_s: float = 3.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class InboundConfig:
    """How an inbound call is recognised when no business numbers are configured (and which trunks are ours)."""

    contexts: tuple[str, ...] = DEFAULT_INBOUND_CONTEXTS
    trunk_endpoints: tuple[str, ...] = ()  # e.g. ("PJSIP/trunk",): calls whose first channel is on these endpoints
    # Calls that start in these contexts are placed by desk phones: never inbound, whatever number they dial.
    internal_contexts: tuple[str, ...] = DEFAULT_INTERNAL_CONTEXTS


_ASTERISK_KEYS = ("host", "port", "username", "secret")
_NODE_KEYS = ("name", *_ASTERISK_KEYS, "systemname", "cel", "ari")
_TIMING_KEYS = (
    "connect_timeout_s",
    "action_timeout_s",
    "ping_interval_s",
    "ping_timeout_s",
    "reconnect_min_s",
    "reconnect_max_s",
)
_INBOUND_KEYS = ("contexts", "trunk_endpoints", "internal_contexts")
SECRET_ENV_VAR = "CALLBUDDY_AMI_SECRET"  # noqa: S105 (a variable name) - read when the file has no asterisk.secret
_ENDPOINT = re.compile(r"[A-Za-z][A-Za-z0-9]*/\S+")


# A node's name goes into every call key (`<linkedid>@<name>`), URLs and lock names: short, plain, lower case.
NODE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_SYSTEMNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class AsteriskNode:
    """One Asterisk server the service follows: its AMI link and its CEL source.

    `name` is "" for the one Asterisk of a config without `asterisk.nodes` (its calls keep their plain Linkedids as
    keys, as before); a named node's calls are keyed `<linkedid>@<name>`, since Linkedids are unique per server only.
    """

    name: str
    ami: AsteriskConfig
    cel: CelConfig = field(default_factory=CelConfig)
    systemname: str | None = None  # Asterisk's `systemname` (asterisk.conf), when set: checked at each login
    # Its ARI, for `routing: callbuddy` numbers ringing on it (None: none of its own; the first server's is `ari:`).
    ari: AriConfig | None = None

    @property
    def shown(self) -> str:
        return self.name or "Asterisk"


def node_secret_env_var(name: str) -> str:
    """`CALLBUDDY_AMI_SECRET_SITE_B` for node `site-b`: each node's AMI secret may come from its own variable."""
    return f"{SECRET_ENV_VAR}_{name.upper().replace('-', '_')}"


class AmiReader:
    """Reads `asterisk:` and `inbound:` with a Reader (whose problem list it adds to)."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader
        # Each node's `ari:` section, by node name: read after `pbx:` (AriReader needs it), by `with_ari`.
        self.ari_sections: dict[str, tuple[yaml.Node, str]] = {}

    def with_ari(self, nodes: tuple[AsteriskNode, ...], ari: AriReader, pbx: PbxConfig) -> tuple[AsteriskNode, ...]:
        """The nodes with their own `ari:` read (after `pbx:`)."""
        found: list[AsteriskNode] = []
        for node in nodes:
            if node.name in self.ari_sections:
                section, path = self.ari_sections[node.name]
                node = dataclasses.replace(node, ari=ari.ari(section, pbx, path))
            found.append(node)
        return tuple(found)

    def asterisk(
        self, node: yaml.Node, base_dir: Path, store_on_postgresql: bool | None = None
    ) -> tuple[AsteriskConfig, tuple[AsteriskNode, ...]]:
        """`asterisk:`: one Asterisk's AMI settings, or `nodes:`, several named servers (then the first one's AMI
        settings stand for "the" Asterisk where one is meant, and the list is returned too; else it is ())."""
        section = self.r.mapping(node, "asterisk", (*_ASTERISK_KEYS, *_TIMING_KEYS, "nodes"))
        secret = os.environ.get(SECRET_ENV_VAR, "")
        if not section:
            return AsteriskConfig(secret=secret), ()
        if "nodes" not in section:
            return self._ami(section, "asterisk", secret), ()
        if other := [key for key in section if key != "nodes"]:
            self.r.problem(
                section[other[0]],
                f"asterisk.{other[0]}",
                "give each node its own settings under asterisk.nodes, not beside it",
            )
        nodes = self._nodes(section["nodes"], base_dir, store_on_postgresql)
        return (nodes[0].ami if nodes else AsteriskConfig(secret=secret)), nodes

    def _nodes(self, node: yaml.Node, base_dir: Path, on_postgresql: bool | None) -> tuple[AsteriskNode, ...]:
        items = self.r.items(node, "asterisk.nodes")
        if items is None:
            return ()
        if not items:
            self.r.problem(node, "asterisk.nodes", "expected at least one Asterisk server")
        found: list[AsteriskNode] = []
        names: dict[str, int] = {}  # name -> line
        links: dict[tuple[str, int], str] = {}  # (host, port) -> name
        for item, path in items:
            entry = self.r.mapping(item, path, _NODE_KEYS + _TIMING_KEYS)
            if entry is None:
                continue
            name = self._node_name(item, entry, path, names)
            secret = os.environ.get(node_secret_env_var(name), os.environ.get(SECRET_ENV_VAR, "")) if name else ""
            ami = self._ami(entry, path, secret)
            cel = CelConfig()
            if "cel" in entry:
                cel = CelReader(self.r).cel(entry["cel"], base_dir, f"{path}.cel", store_on_postgresql=on_postgresql)
            systemname = None
            if "systemname" in entry:
                systemname = self.r.non_empty(entry["systemname"], f"{path}.systemname", "Asterisk's systemname")
                if systemname is not None and not _SYSTEMNAME.fullmatch(systemname):
                    what = f"{shown(systemname)} is not a systemname"
                    self.r.problem(entry["systemname"], f"{path}.systemname", what)
                    systemname = None
            if name is None:
                continue
            if "ari" in entry:
                self.ari_sections[name] = (entry["ari"], f"{path}.ari")
            link = (ami.host, ami.port)
            if link in links:
                self.r.problem(item, path, f"{name} reaches the same AMI ({ami.host}:{ami.port}) as {links[link]}")
            links.setdefault(link, name)
            found.append(AsteriskNode(name, ami, cel, systemname))
        return tuple(found)

    def _node_name(self, item: yaml.Node, entry: dict[str, yaml.Node], path: str, names: dict[str, int]) -> str | None:
        if "name" not in entry:
            self.r.problem(item, path, "missing required key 'name' (the server's short name, such as site-a)")
            return None
        name = self.r.non_empty(entry["name"], f"{path}.name", "a node name")
        if name is None:
            return None
        if not NODE_NAME.fullmatch(name):
            self.r.problem(
                entry["name"], f"{path}.name", f"{shown(name)}: use lower-case letters, digits and '-' (at most 32)"
            )
            return None
        if name in names:
            self.r.problem(entry["name"], f"{path}.name", f"{name!r} is already used (line {names[name]})")
            return None
        names[name] = entry["name"].start_mark.line + 1
        return name

    def _ami(self, section: dict[str, yaml.Node], path: str, secret: str) -> AsteriskConfig:
        base = AsteriskConfig(secret=secret)
        host, port, username, secret = base.host, base.port, base.username, base.secret
        if "host" in section:
            host = self.r.non_empty(section["host"], f"{path}.host", "a host name or address") or host
            if public_address(host) is not None:  # an IP literal only: names are not resolved while reading
                self.r.problem(
                    section["host"],
                    f"{path}.host",
                    f"{host} is a public address: AMI must not be reached over the internet; "
                    "put CallBuddy on the PBX host or a private network",
                )
        if "port" in section:
            port = self.r.integer(section["port"], f"{path}.port", 1, 65535) or port
        if "username" in section:
            username = self.r.non_empty(section["username"], f"{path}.username", "an AMI user name") or username
        if "secret" in section:
            secret = self.r.text(section["secret"], f"{path}.secret", secret=True) or ""

        def seconds(key: str, default: float) -> float:
            value = self.r.positive(section[key], f"{path}.{key}") if key in section else None
            return default if value is None else value

        config = AsteriskConfig(
            host=host,
            port=port,
            username=username,
            secret=secret,
            connect_timeout_s=seconds("connect_timeout_s", base.connect_timeout_s),
            action_timeout_s=seconds("action_timeout_s", base.action_timeout_s),
            ping_interval_s=seconds("ping_interval_s", base.ping_interval_s),
            ping_timeout_s=seconds("ping_timeout_s", base.ping_timeout_s),
            reconnect_min_s=seconds("reconnect_min_s", base.reconnect_min_s),
            reconnect_max_s=seconds("reconnect_max_s", base.reconnect_max_s),
        )
        if config.reconnect_min_s > config.reconnect_max_s:
            self.r.problem(
                section.get("reconnect_min_s", section.get("reconnect_max_s")),
                f"{path}.reconnect_min_s",
                f"{config.reconnect_min_s:g} is more than reconnect_max_s ({config.reconnect_max_s:g})",
            )
        return config

    def inbound(self, node: yaml.Node) -> InboundConfig:
        section = self.r.mapping(node, "inbound", _INBOUND_KEYS)
        if not section:
            return InboundConfig()
        contexts = InboundConfig().contexts
        if "contexts" in section:
            values = self.names(section["contexts"], "inbound.contexts", "a dialplan context name")
            if values is not None and not values:
                self.r.problem(section["contexts"], "inbound.contexts", "expected at least one dialplan context")
            elif values:
                contexts = tuple(values)
        endpoints: tuple[str, ...] = ()
        if "trunk_endpoints" in section:
            values = self.names(
                section["trunk_endpoints"], "inbound.trunk_endpoints", "an endpoint such as PJSIP/trunk", _ENDPOINT
            )
            endpoints = tuple(values or ())
        internal = InboundConfig().internal_contexts
        if "internal_contexts" in section:
            values = self.names(section["internal_contexts"], "inbound.internal_contexts", "a dialplan context name")
            internal = tuple(values or ())
        return InboundConfig(contexts=contexts, trunk_endpoints=endpoints, internal_contexts=internal)

    def names(self, node: yaml.Node, path: str, what: str, pattern: re.Pattern[str] | None = None) -> list[str] | None:
        """A list of non-empty strings without spaces; None when the list itself is wrong or any item is."""
        items = self.r.items(node, path)
        if items is None:
            return None
        values: list[str] = []
        for item, item_path in items:
            value = self.r.non_empty(item, item_path, what)
            if value is None:
                continue
            if any(ch.isspace() for ch in value):
                self.r.problem(item, item_path, f"{shown(value)} contains spaces (expected {what})")
                continue
            if pattern is not None and not pattern.fullmatch(value):
                self.r.problem(item, item_path, f"{shown(value)} is not valid (expected {what})")
                continue
            values.append(value)
        return values if len(values) == len(items) else None


# ---------------------------------------------------------------------------------------------------------------------
# ARI

ARI_USER = "callbuddy"  # the user render writes to ari.conf unless `ari.username` names another
ARI_APP = "callbuddy"
_DERIVE_LABEL = "ari"  # derive_secret(secret_key, "ari"): phone extensions are digits, so never the same input

ARI_KEYS = ("url", "username", "password", "app", "reconnect_max_s", "heartbeat_s", "request_timeout_s")
# An ari.conf section name and a Stasis() argument: no brackets, commas, semicolons, colons (Basic auth) or spaces.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LOOPBACK_NAMES = ("localhost",)
_PATH = re.compile(r"(/[A-Za-z0-9_.-]+)*/?")  # http.conf's `prefix` (usually none), then optionally /ari


@dataclass(frozen=True, slots=True)
class AriConfig:
    """ARI over HTTP + WebSocket (Asterisk's http.conf and ari.conf).

    `url` is the HTTP server's base ("http://host:8088"); a trailing "/ari" is accepted too. The WebSocket URL
    is derived from it (ws:// or wss://). The password goes in an Authorization header, never in a URL.
    """

    url: str = "http://127.0.0.1:8088"
    username: str = ARI_USER
    password: str = field(default="", repr=False)  # never printed or logged
    app: str = ARI_APP  # the Stasis application name the dialplan's Stasis() uses
    reconnect_min_s: float = 0.5  # first retry after a drop (trace 34: Asterisk answers again ~1 s after a restart)
    reconnect_max_s: float = 30.0  # backoff cap; also the wait after a refused login
    heartbeat_s: float = 3.0  # WebSocket ping after this much silence; no pong within half of it = dead link
    request_timeout_s: float = 5.0  # each REST request, and the WebSocket handshake


def derived_ari_password(secret_key: str) -> str:
    """The ARI password render writes to ari.conf when `ari.password` is not set."""
    return derive_secret(secret_key, _DERIVE_LABEL)


def ari_password(given: str, secret_key: str) -> str:
    """The password the service uses and render writes: `ari.password`, else derived from the key ("" with neither)."""
    if given:
        return given
    return derived_ari_password(secret_key) if secret_key else ""


def http_prefix(url: str) -> str:
    """http.conf's `prefix` for `url` ("" for the usual http://host:8088 or http://host:8088/ari)."""
    return urlsplit(url).path.rstrip("/").removesuffix("/ari").strip("/")


def loopback_bind(url: str) -> tuple[str, int] | None:
    """(address, port) for http.conf when `url` is plain http on this machine's loopback, else None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "http" or not host:
        return None
    if host in _LOOPBACK_NAMES:
        address = "127.0.0.1"
    else:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return None
        if not ip.is_loopback:
            return None
        address = str(ip)
    try:
        port = parts.port or 80
    except ValueError:
        return None
    return address, port


class AriReader:
    """Reads `ari:` with a Reader (whose problem list it adds to), after `pbx:`: the default password is derived
    from pbx.secret_key, and `routing: callbuddy` ring groups need one."""

    def __init__(self, reader: Reader, pbx_reader: PbxReader) -> None:
        self.r = reader
        self._pbx_reader = pbx_reader
        self._key = "ari"

    def ari(self, node: yaml.Node, pbx: PbxConfig, key: str = "ari") -> AriConfig:
        """The section at `node`; `key` is its path in messages (`asterisk.nodes[1].ari` for a server's own)."""
        self._key = key
        section = self.r.mapping(node, key, ARI_KEYS) or {}
        base = AriConfig()
        url = self._url(section["url"]) if "url" in section else base.url
        username = app = None
        if "username" in section:
            username = self._name(section["username"], f"{key}.username", "an ARI user name")
        if "app" in section:
            app = self._name(section["app"], f"{key}.app", "a Stasis application name")
        password = self._password(section["password"]) if "password" in section else ""
        if "password" not in section and not pbx.secret_key:
            self._no_password()

        def seconds(key: str, default: float, most: float) -> float:
            value = self.r.positive(section[key], f"{self._key}.{key}") if key in section else None
            if value is not None and value > most:
                self.r.problem(section[key], f"{self._key}.{key}", f"{value:g} is too long (at most {most:g} seconds)")
                value = None
            return default if value is None else value

        reconnect_max_s = seconds("reconnect_max_s", base.reconnect_max_s, 300.0)
        if reconnect_max_s < base.reconnect_min_s:
            self.r.problem(
                section["reconnect_max_s"],
                f"{key}.reconnect_max_s",
                f"{reconnect_max_s:g} is less than the first retry's wait ({base.reconnect_min_s:g} seconds)",
            )
            reconnect_max_s = base.reconnect_max_s
        return AriConfig(
            url=url or base.url,
            username=username or base.username,
            # The service and render must agree: without `ari.password` both use the one derived from the key.
            password=ari_password(password or "", pbx.secret_key),
            app=app or base.app,
            reconnect_max_s=reconnect_max_s,
            heartbeat_s=seconds("heartbeat_s", base.heartbeat_s, 60.0),
            request_timeout_s=seconds("request_timeout_s", base.request_timeout_s, 60.0),
        )

    def _url(self, node: yaml.Node) -> str | None:
        value = self.r.url(node, f"{self._key}.url", "Asterisk's HTTP server, such as http://127.0.0.1:8088")
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
            # A password in the URL would end up in logs; ARI's goes in a header (ari.password).
            self.r.problem(
                node, f"{self._key}.url", "expected only scheme, host, port and path (put the password in ari.password)"
            )
            return None
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number or out of range)
        except ValueError:
            self.r.problem(node, f"{self._key}.url", f"{shown(value)} has an invalid port")
            return None
        if not _PATH.fullmatch(parts.path):
            self.r.problem(
                node, f"{self._key}.url", f"{shown(parts.path)} is not a usable path (expected none, or /ari)"
            )
            return None
        if parts.hostname and public_address(parts.hostname) is not None:
            self.r.problem(
                node,
                f"{self._key}.url",
                f"{parts.hostname} is a public address: ARI controls every call and must not be reached over the "
                "internet; run CallBuddy on the PBX host (the default http://127.0.0.1:8088) or a private network",
            )
            return None
        return value.rstrip("/")

    def _name(self, node: yaml.Node, path: str, what: str) -> str | None:
        value = self.r.non_empty(node, path, what)
        if value is not None and not _NAME.fullmatch(value):
            self.r.problem(
                node, path, f"{shown(value)} is not allowed (expected {what}: letters, digits, '.', '_', '-')"
            )
            return None
        return value

    def _password(self, node: yaml.Node) -> str | None:
        value = self.r.secret(node, f"{self._key}.password", "the ARI user's password (ari.conf)")
        if value is None:
            return None
        # ari.conf reads `;` as the start of a comment; leading/trailing spaces would be trimmed there.
        if len(value) < MIN_SIP_SECRET_CHARS or value != value.strip() or not value.isprintable() or ";" in value:
            self.r.problem(
                node,
                f"{self._key}.password",
                f"expected at least {MIN_SIP_SECRET_CHARS} printable characters on one line, without ';' or "
                "surrounding spaces (`callbuddy-pbx secrets` prints strong ones)",
            )
            return None
        return value

    def _no_password(self) -> None:
        """Without a key nor a password nothing can be derived: a problem only if a number is routed by the service
        (and the key is not already reported as wrong)."""
        routing = self._pbx_reader.callbuddy_routing
        if routing is None or self._pbx_reader.secret_key_given:
            return
        node, path = routing
        self.r.problem(
            node,
            path,
            "'callbuddy' needs an ARI password: set pbx.secret_key (render and the service derive the same one) "
            "or ari.password",
        )
