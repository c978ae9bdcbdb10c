"""Gateway configuration: the type, and the YAML section `gateways:` that sets it.

Everything is importable from callbuddy_pbx.config as well. Secrets (passwords, tokens, header values, URLs that
may carry keys) never appear in a problem message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import chain

import yaml

from callbuddy_pbx.config.reader import Reader, did_you_mean, is_null, join, key_node, kind_of, line_of, shown
from callbuddy_pbx.config.web import WebConfig
from callbuddy_pbx.message_text import fields_of, template_problem

GATEWAY_KINDS: tuple[str, ...] = ("smpp", "twilio", "kannel", "generic", "simulated")
GENERIC_BODY_FIELDS: tuple[str, ...] = ("to", "sender", "text", "key")
TWILIO_API = "https://api.twilio.com"


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
    timeout_s: float = 15.0  # HTTP kinds: a send with no answer by then is `unknown` (it may have been taken)
    error_path: str = ""


# ---------------------------------------------------------------------------------------------------------------------
# YAML

_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "smpp": ("host", "port", "system_id", "password", "system_type", "window", "enquire_link_seconds"),
    "twilio": ("account_sid", "auth_token", "url", "timeout_seconds"),
    "kannel": ("url", "username", "password", "timeout_seconds"),
    "generic": ("url", "method", "body_format", "body", "headers", "message_id_path", "error_path", "timeout_seconds"),
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
_METHODS = ("GET", "POST", "PUT", "PATCH")
_BODY_FORMATS = ("form", "json")
_GATEWAY_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_JSON_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


class GatewayReader:
    """Reads `gateways:` with a Reader (whose problem list it adds to).

    Gateways come first (a business's `text_back.gateway` must name one, see `names`); `finish(web)` then checks
    the rules that need the `web:` section too.
    """

    def __init__(self, reader: Reader) -> None:
        self.r = reader
        self.names: dict[str, int] = {}  # every well-named gateway entry → its line, even one with other problems
        self.entries = 0  # entries under `gateways:`, valid or not
        self._gateways: list[tuple[GatewayConfig, yaml.Node, str]] = []

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
        if "timeout_seconds" in _KIND_KEYS[kind]:
            timeout = values.number("timeout_seconds", "seconds", allow_zero=False, default=gateway.timeout_s)
            gateway = replace(gateway, timeout_s=timeout)
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
