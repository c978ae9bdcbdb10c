"""How the service reaches Asterisk's REST Interface (ARI): the type, and the reader of the YAML `ari:` section.

Every setting has a default that matches what `callbuddy-pbx render` writes (http.conf on 127.0.0.1:8088, the ARI
user `callbuddy` in ari.conf with a password derived from `pbx.secret_key`), so a rendered PBX and the service agree
without a second secret to keep in step.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yaml

from callbuddy_pbx.config_pbx import MIN_SIP_SECRET_CHARS, PbxConfig, PbxReader, public_address
from callbuddy_pbx.config_reader import Reader, shown
from callbuddy_pbx.pbx_secrets import derive_secret

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

    def ari(self, node: yaml.Node, pbx: PbxConfig) -> AriConfig:
        section = self.r.mapping(node, "ari", ARI_KEYS) or {}
        base = AriConfig()
        url = self._url(section["url"]) if "url" in section else base.url
        username = app = None
        if "username" in section:
            username = self._name(section["username"], "ari.username", "an ARI user name")
        if "app" in section:
            app = self._name(section["app"], "ari.app", "a Stasis application name")
        password = self._password(section["password"]) if "password" in section else ""
        if "password" not in section and not pbx.secret_key:
            self._no_password()

        def seconds(key: str, default: float, most: float) -> float:
            value = self.r.positive(section[key], f"ari.{key}") if key in section else None
            if value is not None and value > most:
                self.r.problem(section[key], f"ari.{key}", f"{value:g} is too long (at most {most:g} seconds)")
                value = None
            return default if value is None else value

        reconnect_max_s = seconds("reconnect_max_s", base.reconnect_max_s, 300.0)
        if reconnect_max_s < base.reconnect_min_s:
            self.r.problem(
                section["reconnect_max_s"],
                "ari.reconnect_max_s",
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
        value = self.r.url(node, "ari.url", "Asterisk's HTTP server, such as http://127.0.0.1:8088")
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
            # A password in the URL would end up in logs; ARI's goes in a header (ari.password).
            self.r.problem(
                node, "ari.url", "expected only scheme, host, port and path (put the password in ari.password)"
            )
            return None
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number or out of range)
        except ValueError:
            self.r.problem(node, "ari.url", f"{shown(value)} has an invalid port")
            return None
        if not _PATH.fullmatch(parts.path):
            self.r.problem(node, "ari.url", f"{shown(parts.path)} is not a usable path (expected none, or /ari)")
            return None
        if parts.hostname and public_address(parts.hostname) is not None:
            self.r.problem(
                node,
                "ari.url",
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
        value = self.r.secret(node, "ari.password", "the ARI user's password (ari.conf)")
        if value is None:
            return None
        # ari.conf reads `;` as the start of a comment; leading/trailing spaces would be trimmed there.
        if len(value) < MIN_SIP_SECRET_CHARS or value != value.strip() or not value.isprintable() or ";" in value:
            self.r.problem(
                node,
                "ari.password",
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
