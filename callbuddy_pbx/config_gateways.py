"""Gateway and web configuration: the types, and the YAML sections `gateways:` and `web:` that set them.

Everything is importable from callbuddy_pbx.config as well. Secrets (passwords, tokens, header values, URLs that
may carry keys) never appear in a problem message.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import yaml

from callbuddy_pbx import config_users  # a module import: config_users builds this module's WebUser
from callbuddy_pbx.config_reader import Reader, did_you_mean, is_null, join, key_node, kind_of, line_of, shown
from callbuddy_pbx.sms.text import fields_of, template_problem

GATEWAY_KINDS: tuple[str, ...] = ("smpp", "twilio", "kannel", "generic", "simulated")
GENERIC_BODY_FIELDS: tuple[str, ...] = ("to", "sender", "text", "key")
TWILIO_API = "https://api.twilio.com"
MIN_WEBHOOK_TOKEN_CHARS = 16
MIN_API_TOKEN_CHARS = 24


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """One way of sending texts. `kind` picks the implementation; the other fields are those it uses."""

    name: str
    kind: str  # "smpp" | "twilio" | "kannel" | "generic" | "simulated"
    rate_per_s: float = 1.0  # per sender number; 0 = unlimited
    # smpp
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = field(default="", repr=False)
    system_type: str = ""
    window: int = 10  # outstanding submit_sm without a response
    enquire_link_s: float = 30.0
    # http (twilio, kannel, generic)
    url: str = ""  # Twilio: API base (default https://api.twilio.com); Kannel: the sendsms URL; generic: the URL
    account_sid: str = ""
    auth_token: str = field(default="", repr=False)
    username: str = ""  # Kannel sendsms user
    # generic
    method: str = "POST"
    body_format: str = "form"  # "form" or "json"
    body: tuple[tuple[str, str], ...] = ()  # field -> template using {to} {sender} {text} {key}
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may carry an auth header
    message_id_path: str = ""  # dotted path into the JSON answer, e.g. "messages.0.id"
    error_path: str = ""


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A bearer token of the JSON API (/api/v1); `businesses` empty = every business."""

    name: str
    token: str = field(repr=False)
    businesses: tuple[str, ...] = ()


USER_ROLES: tuple[str, ...] = ("admin", "business")


@dataclass(frozen=True, slots=True)
class WebUser:
    """Someone who may log in to the dashboard.

    An admin sees every business and full phone numbers; a business user sees only `businesses`, with callers'
    numbers masked unless `show_numbers`."""

    name: str
    password_hash: str = field(repr=False)  # "scrypt$..." as written by `callbuddy-pbx user add`
    role: str = "business"  # "admin" | "business"
    businesses: tuple[str, ...] = ()
    show_numbers: bool = False  # admins always see numbers


@dataclass(frozen=True, slots=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # how gateways reach us for receipts and inbound texts, e.g. https://cb.example.com
    webhook_token: str = field(default="", repr=False)  # shared secret in webhook URLs (Kannel, generic)
    api_tokens: tuple[ApiToken, ...] = ()  # who may read the JSON API; none = the API answers 401 to everyone
    users: tuple[WebUser, ...] = ()  # dashboard logins: `web.users` plus those in `users_file`
    users_file: Path | None = None  # a YAML list of users that `callbuddy-pbx user add` maintains
    session_hours: float = 12.0  # a dashboard login lasts this long
    # "auto": Secure when public_url is https or the request came over TLS; "always"; "never"
    secure_cookies: str = "auto"


# ---------------------------------------------------------------------------------------------------------------------
# YAML

_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "smpp": ("host", "port", "system_id", "password", "system_type", "window", "enquire_link_seconds"),
    "twilio": ("account_sid", "auth_token", "url"),
    "kannel": ("url", "username", "password"),
    "generic": ("url", "method", "body_format", "body", "headers", "message_id_path", "error_path"),
    "simulated": (),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "smpp": ("host", "system_id", "password"),
    "twilio": ("account_sid", "auth_token"),
    "kannel": ("url", "username", "password"),
    "generic": ("url", "body"),
    "simulated": (),
}
_COMMON_GATEWAY_KEYS = ("name", "kind", "rate_per_second")
_ALL_GATEWAY_KEYS = tuple(dict.fromkeys(_COMMON_GATEWAY_KEYS + tuple(chain.from_iterable(_KIND_KEYS.values()))))
_WEB_KEYS = ("host", "port", "public_url", "webhook_token", "api_tokens")
_WEB_LOGIN_KEYS = ("users", "users_file", "session_hours", "secure_cookies")  # read by config_users
_API_TOKEN_KEYS = ("name", "token", "businesses")
_METHODS = ("GET", "POST", "PUT", "PATCH")
_BODY_FORMATS = ("form", "json")
_GATEWAY_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_JSON_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class GatewayReader:
    """Reads `gateways:` and `web:` with a Reader (whose problem list it adds to).

    Gateways come first (a business's `text_back.gateway` must name one, see `names`); `finish(web)` then checks
    the rules that need both sections.
    """

    def __init__(self, reader: Reader) -> None:
        self.r = reader
        self.names: dict[str, int] = {}  # every well-named gateway entry → its line, even one with other problems
        self.entries = 0  # entries under `gateways:`, valid or not
        self._gateways: list[tuple[GatewayConfig, yaml.Node, str]] = []
        self._businesses: Collection[str] | None = None  # the configured business names, once `web` is read

    def reference(self, node: yaml.Node, path: str) -> str | None:
        """A key that names one of the gateways (e.g. `text_back.gateway`): the name, or None after a problem."""
        value = self.r.non_empty(node, path, "the name of a gateway")
        if value is None:
            return None
        if value not in self.names:
            names = list(self.names)
            hint = did_you_mean(value, names) if names else "no gateways are configured"
            self.r.problem(node, path, f"{value!r} is not a configured gateway ({hint})")
            return None
        return value

    def gateways(self, node: yaml.Node) -> tuple[GatewayConfig, ...]:
        if is_null(node):
            return ()
        entries = self.r.items(node, "gateways")
        if entries is None:
            return ()
        self.entries = len(entries)
        for entry, path in entries:
            gateway = self._gateway(entry, path)
            if gateway is not None:
                self._gateways.append((gateway, entry, path))
        return tuple(gateway for gateway, _, _ in self._gateways)

    def _gateway(self, entry: yaml.Node, path: str) -> GatewayConfig | None:
        section = self.r.mapping(entry, path, _ALL_GATEWAY_KEYS)
        if section is None:
            return None
        name = self._gateway_name(section, entry, path)
        kind: str | None = None
        if "kind" not in section:
            self.r.problem(entry, path, f"missing required key 'kind' (one of {', '.join(GATEWAY_KINDS)})")
        else:
            kind = self.r.choice(section["kind"], f"{path}.kind", GATEWAY_KINDS, upper=False)
        if kind is None:
            return None
        allowed = _COMMON_GATEWAY_KEYS + _KIND_KEYS[kind]
        for key, value in section.items():
            if key not in allowed:
                self.r.problem(
                    key_node(entry, key) or value,
                    join(path, key),
                    f"not used by kind {kind} (its keys: {', '.join(allowed)})",
                )
        values = _GatewayValues(self.r, section, path)
        missing = [key for key in _REQUIRED[kind] if key not in section]
        if missing:
            needs = ", ".join(_REQUIRED[kind])
            keys = f"key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
            self.r.problem(entry, path, f"missing required {keys} (kind {kind} needs {needs})")
            values.failed = True
        rate = values.number("rate_per_second", "texts per second", allow_zero=True, default=1.0)
        if kind == "smpp":
            gateway = GatewayConfig(
                name or "",
                kind,
                rate,
                host=values.word("host", "a host name or address", "127.0.0.1"),
                port=values.integer("port", 1, 65535, 2775),
                system_id=values.word("system_id", "an SMPP system_id", ""),
                password=values.secret("password", "the SMPP password"),
                system_type=values.word("system_type", "an SMPP system_type", ""),
                window=values.integer("window", 1, 1000, 10),
                enquire_link_s=values.number("enquire_link_seconds", "seconds", allow_zero=False, default=30.0),
            )
            # SMPP 3.4 fields are C-octet strings of fixed maximum size; longer values would be cut on the wire.
            for key, text, limit in (("system_id", gateway.system_id, 15), ("password", gateway.password, 8)):
                if len(text) > limit:
                    self.r.problem(section[key], f"{path}.{key}", f"is {len(text)} characters; SMPP allows {limit}")
        elif kind == "twilio":
            gateway = GatewayConfig(
                name or "",
                kind,
                rate,
                url=values.url("url", TWILIO_API),
                account_sid=values.word("account_sid", "a Twilio Account SID", ""),
                auth_token=values.secret("auth_token", "the Twilio auth token"),
            )
        elif kind == "kannel":
            gateway = GatewayConfig(
                name or "",
                kind,
                rate,
                url=values.url("url", ""),
                username=values.word("username", "a Kannel sendsms user name", ""),
                password=values.secret("password", "the Kannel sendsms password"),
            )
        elif kind == "generic":
            gateway = self._generic(values, section, path, name or "", rate)
        else:
            gateway = GatewayConfig(name or "", kind, rate)
        return gateway if name is not None and not values.failed else None

    def _gateway_name(self, section: dict[str, yaml.Node], entry: yaml.Node, path: str) -> str | None:
        if "name" not in section:
            self.r.problem(entry, path, "missing required key 'name'")
            return None
        node = section["name"]
        name = self.r.non_empty(node, f"{path}.name", "a gateway name")
        if name is None:
            return None
        if not _GATEWAY_NAME.fullmatch(name):
            self.r.problem(node, f"{path}.name", f"{shown(name)} is not valid (letters, digits, '_', '-', '.')")
            return None
        if name in self.names:
            self.r.problem(node, f"{path}.name", f"{name!r} is already used (line {self.names[name]})")
            return None
        self.names[name] = line_of(node)
        return name

    def _generic(
        self, values: _GatewayValues, section: dict[str, yaml.Node], path: str, name: str, rate: float
    ) -> GatewayConfig:
        method = values.choice("method", _METHODS, upper=True, default="POST")
        body_format = values.choice("body_format", _BODY_FORMATS, upper=False, default="form")
        if method == "GET" and body_format == "json" and "body_format" in section:
            self.r.problem(section["body_format"], f"{path}.body_format", "a GET request has no JSON body (use POST)")
            values.failed = True
        body = self._body(section["body"], f"{path}.body") if "body" in section else ()
        headers = self._headers(section["headers"], f"{path}.headers") if "headers" in section else ()
        if body is None or headers is None:
            values.failed = True
        return GatewayConfig(
            name,
            "generic",
            rate,
            url=values.url("url", ""),
            method=method,
            body_format=body_format,
            body=body or (),
            headers=headers or (),
            message_id_path=values.json_path("message_id_path"),
            error_path=values.json_path("error_path"),
        )

    def _body(self, node: yaml.Node, path: str) -> tuple[tuple[str, str], ...] | None:
        if not isinstance(node, yaml.MappingNode):
            self.r.problem(node, path, f"expected a mapping of request fields to templates, got {kind_of(node)}")
            return None
        result: list[tuple[str, str]] = []
        ok = True
        for key, _, value_node in self.r.pairs(node, path):
            value = self.r.text(value_node, join(path, key))
            if value is None:
                ok = False
                continue
            problem = template_problem(value, GENERIC_BODY_FIELDS) if value.strip() else None
            if problem is not None:
                self.r.problem(value_node, join(path, key), problem)
                ok = False
                continue
            result.append((key, value))
        if not ok:
            return None
        used = {name for _, value in result for name in fields_of(value)}
        for needed, why in (("to", "where to send the text"), ("text", "what to send")):
            if needed not in used:
                self.r.problem(node, path, f"no field uses {{{needed}}} (the gateway would not know {why})")
                ok = False
        return tuple(result) if ok else None

    def _headers(self, node: yaml.Node, path: str) -> tuple[tuple[str, str], ...] | None:
        if not isinstance(node, yaml.MappingNode):
            self.r.problem(node, path, f"expected a mapping of header names to values, got {kind_of(node)}")
            return None
        result: list[tuple[str, str]] = []
        ok = True
        for key, name_node, value_node in self.r.pairs(node, path):
            if not _HEADER_NAME.fullmatch(key):
                self.r.problem(name_node, join(path, key), f"{shown(key)} is not a valid HTTP header name")
                ok = False
                continue
            value = self.r.text(value_node, join(path, key), secret=True)
            if value is None:
                ok = False
            elif "\r" in value or "\n" in value:
                self.r.problem(value_node, join(path, key), "the value contains a line break")
                ok = False
            else:
                result.append((key, value))
        return tuple(result) if ok else None

    # -- businesses ----------------------------------------------------------------------------------------------
    def web(
        self, node: yaml.Node, base_dir: Path | None = None, businesses: Collection[str] | None = None
    ) -> WebConfig:
        """`businesses`: the configured names that tokens and users may name (None: not checked)."""
        self._businesses = businesses
        section = self.r.mapping(node, "web", _WEB_KEYS + _WEB_LOGIN_KEYS)
        base = WebConfig()
        if not section:
            return base
        host, port, public_url, token = base.host, base.port, base.public_url, base.webhook_token
        if "host" in section:
            host = self.r.non_empty(section["host"], "web.host", "a host name or address") or host
        if "port" in section:
            port = self.r.integer(section["port"], "web.port", 1, 65535) or port
        if "public_url" in section:
            url = self.r.url(section["public_url"], "web.public_url", "the URL gateways reach us at")
            public_url = (url or "").rstrip("/")
        if "webhook_token" in section:
            token = self.r.secret(section["webhook_token"], "web.webhook_token", "a webhook token") or ""
            if token and len(token) < MIN_WEBHOOK_TOKEN_CHARS:
                self.r.problem(
                    section["webhook_token"],
                    "web.webhook_token",
                    f"too short: at least {MIN_WEBHOOK_TOKEN_CHARS} characters (e.g. from `openssl rand -hex 16`)",
                )
                token = ""
        api_tokens = self._api_tokens(section["api_tokens"]) if "api_tokens" in section else ()
        logins = config_users.UsersReader(self.r, businesses).settings(section, base_dir or Path())
        return WebConfig(
            host=host,
            port=port,
            public_url=public_url,
            webhook_token=token,
            api_tokens=api_tokens,
            users=logins.users,
            users_file=logins.users_file,
            session_hours=logins.session_hours,
            secure_cookies=logins.secure_cookies,
        )

    def _api_tokens(self, node: yaml.Node) -> tuple[ApiToken, ...]:
        """`web.api_tokens: [{name, token, businesses}]`; an entry with a problem is left out (and reported)."""
        if is_null(node):
            return ()
        entries = self.r.items(node, "web.api_tokens")
        if entries is None:
            return ()
        result: list[ApiToken] = []
        names: dict[str, int] = {}
        tokens: dict[str, int] = {}
        for entry, path in entries:
            section = self.r.mapping(entry, path, _API_TOKEN_KEYS)
            if section is None:
                continue
            missing = [key for key in ("name", "token") if key not in section]
            if missing:
                self.r.problem(
                    entry,
                    path,
                    f"missing required key{'s' if len(missing) > 1 else ''} " + ", ".join(map(repr, missing)),
                )
            name = self.r.non_empty(section["name"], f"{path}.name", "a token name") if "name" in section else None
            if name is not None and name in names:
                self.r.problem(section["name"], f"{path}.name", f"{name!r} is already used (line {names[name]})")
                name = None
            elif name is not None:
                names[name] = line_of(section["name"])
            token = self.r.secret(section["token"], f"{path}.token", "an API token") if "token" in section else None
            if token is not None and len(token) < MIN_API_TOKEN_CHARS:
                self.r.problem(
                    section["token"],
                    f"{path}.token",
                    f"too short: at least {MIN_API_TOKEN_CHARS} characters (e.g. from `openssl rand -hex 24`)",
                )
                token = None
            elif token is not None and token in tokens:
                self.r.problem(section["token"], f"{path}.token", f"the same token as on line {tokens[token]}")
                token = None
            elif token is not None:
                tokens[token] = line_of(section["token"])
            businesses = (
                self._token_businesses(section["businesses"], f"{path}.businesses") if ("businesses" in section) else ()
            )
            if name is not None and token is not None and businesses is not None:
                result.append(ApiToken(name, token, businesses))
        return tuple(result)

    def _token_businesses(self, node: yaml.Node, path: str) -> tuple[str, ...] | None:
        """The businesses a token may read: a non-empty list of names (leave the key out for every business)."""
        items = self.r.items(node, path)
        if items is None:
            return None
        if not items:
            self.r.problem(node, path, "an empty list would allow nothing (leave the key out for every business)")
            return None
        names: list[str] = []
        for item, item_path in items:
            name = self.r.non_empty(item, item_path, "a business name")
            if name is None:
                return None
            problem = config_users.unknown_business(name, self._businesses)
            if problem is not None:
                self.r.problem(item, item_path, problem)
                return None
            if name not in names:
                names.append(name)
        return tuple(names)

    def finish(self, web: WebConfig) -> None:
        """Gateways that call us back need the web settings."""
        for gateway, entry, path in self._gateways:
            if gateway.kind in ("kannel", "generic") and not web.webhook_token:
                self.r.problem(
                    entry,
                    path,
                    f"a {gateway.kind} gateway needs web.webhook_token "
                    "(the shared secret in the URLs it calls with receipts and replies)",
                )
            if gateway.kind == "twilio" and not web.public_url:
                self.r.problem(
                    entry, path, "a twilio gateway needs web.public_url (where Twilio posts delivery status and texts)"
                )


class _GatewayValues:
    """Optional gateway settings with their defaults; remembers whether any was wrong."""

    def __init__(self, reader: Reader, section: dict[str, yaml.Node], path: str) -> None:
        self.r = reader
        self.section = section
        self.path = path
        self.failed = False

    def _got(self, value: object | None) -> bool:
        if value is None:
            self.failed = True
            return False
        return True

    def word(self, key: str, what: str, default: str) -> str:
        if key not in self.section:
            return default
        value = self.r.non_empty(self.section[key], f"{self.path}.{key}", what)
        return value if self._got(value) and value is not None else default

    def secret(self, key: str, what: str) -> str:
        if key not in self.section:
            return ""
        value = self.r.secret(self.section[key], f"{self.path}.{key}", what)
        return value if self._got(value) and value is not None else ""

    def integer(self, key: str, low: int, high: int, default: int) -> int:
        if key not in self.section:
            return default
        value = self.r.integer(self.section[key], f"{self.path}.{key}", low, high)
        return value if self._got(value) and value is not None else default

    def number(self, key: str, what: str, *, allow_zero: bool, default: float) -> float:
        if key not in self.section:
            return default
        value = self.r.number(self.section[key], f"{self.path}.{key}", what, allow_zero=allow_zero)
        return value if self._got(value) and value is not None else default

    def choice(self, key: str, choices: Sequence[str], *, upper: bool, default: str) -> str:
        if key not in self.section:
            return default
        value = self.r.choice(self.section[key], f"{self.path}.{key}", choices, upper=upper)
        return value if self._got(value) and value is not None else default

    def url(self, key: str, default: str) -> str:
        if key not in self.section:
            return default
        value = self.r.url(self.section[key], f"{self.path}.{key}", "the gateway's URL", quoted=False)
        return value if self._got(value) and value is not None else default

    def json_path(self, key: str) -> str:
        if key not in self.section:
            return ""
        value = self.r.non_empty(self.section[key], f"{self.path}.{key}", "a dotted path such as data.id")
        if not self._got(value) or value is None:
            return ""
        if not _JSON_PATH.fullmatch(value):
            self.r.problem(
                self.section[key], f"{self.path}.{key}", f"{shown(value)} is not a dotted path (e.g. messages.0.id)"
            )
            self.failed = True
            return ""
        return value
