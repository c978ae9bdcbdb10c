"""Typed, frozen configuration, and its YAML loader that reports every problem with its file and line."""

from __future__ import annotations

import difflib
import math
import os
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from datetime import time as time_of_day
from pathlib import Path

import phonenumbers
import yaml

from callbuddy_pbx.phone import to_e164

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
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Business:
    name: str
    numbers: tuple[str, ...]  # E.164, normalised with the business's default_region
    timezone: str = "UTC"
    default_region: str = "US"
    booking_url: str = ""
    text_back: TextBack = field(default_factory=lambda: TextBack())
    hours: WeeklyHours | None = None  # None: always "business hours" (the after-hours template is never used)
    holidays: tuple[date, ...] = ()  # whole days treated as after hours


MISSED_OUTCOMES: tuple[str, ...] = ("no_answer", "busy", "abandoned", "unavailable", "voicemail", "queue_abandoned")
DEFAULT_TEMPLATE = (
    "Hi, this is {business}. Sorry we missed your call! Book online: {booking_url} Reply STOP to opt out."
)
DEFAULT_HELP_TEXT = "{business}: missed-call texts. Book online: {booking_url} Reply STOP to opt out."
DEFAULT_OPT_OUT_TEXT = "{business}: you will get no more texts from us. Reply START to undo."


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in the business's time zone when texts wait (may cross midnight: 21:00-08:00)."""

    start: time_of_day
    end: time_of_day


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Opening hours: for each weekday (0 = Monday), the (open, close) intervals of that day."""

    days: tuple[tuple[tuple[time_of_day, time_of_day], ...], ...]  # exactly 7 entries


@dataclass(frozen=True, slots=True)
class TextBack:
    """Per business: who gets a text back after a missed call, what it says, how it is sent."""

    enabled: bool = True
    outcomes: tuple[str, ...] = MISSED_OUTCOMES  # Outcome values that get a text
    template: str = DEFAULT_TEMPLATE  # fields: {business} {booking_url} {caller_name} {date} {time}
    after_hours_template: str | None = None  # used outside `hours` (and on holidays) when set
    help_text: str = DEFAULT_HELP_TEXT  # the answer to HELP
    opt_out_text: str = DEFAULT_OPT_OUT_TEXT  # the one confirmation after STOP
    sender: str | None = None  # E.164 or alphanumeric sender id; None: the business number that was called
    gateway: str | None = None  # a name from `gateways`; None: the first gateway
    window_s: float = 24 * 3600.0  # at most one text per caller per business in this window
    min_ring_s: float = 0.0  # a caller who hangs up sooner than this (pocket dial) gets no text
    hold_off_s: float = 0.0  # wait this long; an answered call from the same caller meanwhile cancels the text
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True, slots=True)
class InboundConfig:
    """How an inbound call is recognised when no business numbers are configured (and which trunks are ours)."""

    contexts: tuple[str, ...] = DEFAULT_INBOUND_CONTEXTS
    trunk_endpoints: tuple[str, ...] = ()  # e.g. ("PJSIP/trunk",): calls whose first channel is on these endpoints
    # Calls that start in these contexts are placed by desk phones: never inbound, whatever number they dial.
    internal_contexts: tuple[str, ...] = DEFAULT_INTERNAL_CONTEXTS


@dataclass(frozen=True, slots=True)
class StorageConfig:
    path: Path = Path("data/callbuddy.sqlite3")


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "text"  # "text" or "json"


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
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # how gateways reach us for receipts and inbound texts, e.g. https://cb.example.com
    webhook_token: str = field(default="", repr=False)  # shared secret in webhook URLs (Kannel, generic)


@dataclass(frozen=True, slots=True)
class Config:
    asterisk: AsteriskConfig = AsteriskConfig()
    businesses: tuple[Business, ...] = ()
    inbound: InboundConfig = InboundConfig()
    storage: StorageConfig = StorageConfig()
    logging: LoggingConfig = LoggingConfig()
    gateways: tuple[GatewayConfig, ...] = ()
    web: WebConfig = WebConfig()
    default_region: str = "US"  # for callers' numbers when no business applies
    source: str | None = None  # the file this came from, for messages


# ---------------------------------------------------------------------------------------------------------------------
# YAML loader: walks yaml's node tree (not the constructed objects) so every problem can name its file and line.

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"

_TOP_KEYS = ("default_region", "asterisk", "businesses", "inbound", "storage", "logging")
_ASTERISK_KEYS = ("host", "port", "username", "secret")
_TIMING_KEYS = (
    "connect_timeout_s",
    "action_timeout_s",
    "ping_interval_s",
    "ping_timeout_s",
    "reconnect_min_s",
    "reconnect_max_s",
)
_BUSINESS_KEYS = ("name", "numbers", "timezone", "default_region")
_INBOUND_KEYS = ("contexts", "trunk_endpoints", "internal_contexts")
_STORAGE_KEYS = ("path",)
_LOGGING_KEYS = ("level", "format")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMATS = ("text", "json")
SECRET_ENV_VAR = "CALLBUDDY_AMI_SECRET"  # noqa: S105 (a variable name) - read when the file has no asterisk.secret

# `$${` is a literal `${`; `${...}` without its `}` is reported rather than kept verbatim.
_ENV_REF = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_ENV_INNER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_ENDPOINT = re.compile(r"[A-Za-z][A-Za-z0-9]*/\S+")


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` lists every one found, each as `file:line: key: what`."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


def load_config(path: str | Path) -> Config:
    """Read, validate and normalise a YAML configuration; raise ConfigError listing every problem at once."""
    source = str(path)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: no such file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError([f"{source}:{line}: YAML syntax error: {what}"]) from None
    except yaml.reader.ReaderError as exc:  # a control character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError([f"{source}:{line}: YAML syntax error: character U+{code:04X} is not allowed"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: YAML error: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"]) from None
    reader = _Reader(source)
    config = reader.config(root, file.absolute().parent)
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


def default_config(data_dir: Path) -> Config:
    """The configuration of the demo: no businesses (every inbound call counts), the database under data_dir."""
    return Config(storage=StorageConfig(path=data_dir / "callbuddy.sqlite3"))


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _shown(text: str) -> str:
    """A value quoted for a message, bounded so a huge value cannot flood the output."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return {_NULL: "nothing", _BOOL: "true/false", _INT: "a number", _FLOAT: "a number"}.get(node.tag, "a string")


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "expected one of: " + ", ".join(choices)


class _Reader:
    """Turns the node tree into a Config, collecting problems instead of stopping at the first one."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._found: list[tuple[int, str]] = []

    @property
    def problems(self) -> list[str]:
        """In file order, whatever order the sections were checked in."""
        return [message for _, message in sorted(self._found, key=lambda found: found[0])]

    def problem(self, node: yaml.Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        where = f"{path}: " if path else ""
        self._found.append((line, f"{self.source}:{line}: {where}{message}"))

    # -- generic values ------------------------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, path: str, known: Sequence[str]) -> dict[str, yaml.Node] | None:
        """Known keys → value nodes. Unknown and repeated keys are problems; an empty section (null) is {}."""
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL and path:
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, f"expected a mapping of settings ({', '.join(known)}), got {_kind(node)}")
            return None
        found: dict[str, yaml.Node] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, f"expected a key name, got {_kind(key_node)}")
                continue
            key = str(key_node.value)
            key_path = _join(path, key)
            if key in first_line:
                self.problem(key_node, key_path, f"given twice (first on line {first_line[key]})")
                continue
            first_line[key] = key_node.start_mark.line + 1
            if key not in known:
                self.problem(key_node, key_path, f"unknown key ({_did_you_mean(key, known)})")
                continue
            found[key] = value_node
        return found

    def expand(self, node: yaml.Node, path: str, text: str) -> str | None:
        """Replace ${VAR} and ${VAR:-default} from the environment. Values never appear in messages."""
        ok = True

        def substitute(match: re.Match[str]) -> str:
            nonlocal ok
            if match.group(0) == "$${":
                return "${"
            inner, closed = match.group(1), match.group(2)
            parsed = _ENV_INNER.fullmatch(inner) if closed else None
            if parsed is None:
                self.problem(
                    node, path, f"malformed {_shown(match.group(0))} (expected ${{NAME}} or ${{NAME:-default}})"
                )
                ok = False
                return ""
            name, default = parsed.group(1), parsed.group(2)
            value = os.environ.get(name)
            if default is not None and not value:  # like the shell: the default also replaces an empty value
                return default
            if value is None:
                self.problem(node, path, f"environment variable {name} is not set (or write ${{{name}:-default}})")
                ok = False
                return ""
            return value

        result = _ENV_REF.sub(substitute, text)
        return result if ok else None

    def text(self, node: yaml.Node, path: str, *, secret: bool = False) -> str | None:
        """A string. Unquoted numbers (`+15550001000`, `0123`) keep their exact text rather than YAML's reading."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
            self.problem(node, path, f"expected {'a secret string' if secret else 'a string'}, got {_kind(node)}")
            return None
        if node.tag.startswith("!"):  # application tags mean nothing here; better said than silently ignored
            self.problem(node, path, f"unsupported YAML tag {_shown(node.tag)} (expected a plain string)")
            return None
        value = str(node.value)
        return self.expand(node, path, value) if node.tag == _STR else value

    def non_empty(self, node: yaml.Node, path: str, what: str) -> str | None:
        value = self.text(node, path)
        if value is None:
            return None
        value = value.strip()
        if not value:
            self.problem(node, path, f"expected {what}, got an empty string")
            return None
        return value

    def integer(self, node: yaml.Node, path: str, low: int, high: int) -> int | None:
        expected = f"expected a whole number from {low} to {high}"
        value: int | None = None
        if isinstance(node, yaml.ScalarNode) and node.tag == _INT:
            value = yaml.SafeLoader("").construct_object(node)  # handles 0x.., 1_000
        elif isinstance(node, yaml.ScalarNode) and node.tag == _STR:  # e.g. port: ${AMI_PORT}
            text = self.expand(node, path, str(node.value))
            if text is None:
                return None
            try:
                value = int(text.strip())
            except ValueError:
                self.problem(node, path, f"{_shown(text)} is not a whole number ({expected})")
                return None
        else:
            self.problem(node, path, f"{expected}, got {_kind(node)}")
            return None
        if not low <= value <= high:
            self.problem(node, path, f"{value} is out of range ({expected})")
            return None
        return value

    def positive(self, node: yaml.Node, path: str) -> float | None:
        expected = "expected a positive number of seconds"
        value: float | None = None
        if isinstance(node, yaml.ScalarNode) and node.tag in (_INT, _FLOAT):
            value = float(yaml.SafeLoader("").construct_object(node))
        elif isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            text = self.expand(node, path, str(node.value))
            if text is None:
                return None
            try:
                value = float(text.strip())
            except ValueError:
                self.problem(node, path, f"{_shown(text)} is not a number ({expected})")
                return None
        else:
            self.problem(node, path, f"{expected}, got {_kind(node)}")
            return None
        if not (math.isfinite(value) and value > 0):
            self.problem(node, path, f"{value:g} is not allowed ({expected})")
            return None
        return value

    def items(self, node: yaml.Node, path: str) -> list[tuple[yaml.Node, str]] | None:
        """A list of values as (node, path) pairs, for per-item checks and messages."""
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, f"expected a list, got {_kind(node)}")
            return None
        return [(item, f"{path}[{index}]") for index, item in enumerate(node.value)]

    def choice(self, node: yaml.Node, path: str, choices: Sequence[str], *, upper: bool) -> str | None:
        value = self.non_empty(node, path, "one of " + ", ".join(choices))
        if value is None:
            return None
        value = value.upper() if upper else value.lower()
        if value not in choices:
            self.problem(node, path, f"{_shown(value)} is not allowed ({_did_you_mean(value, choices)})")
            return None
        return value

    def region(self, node: yaml.Node, path: str) -> str | None:
        value = self.non_empty(node, path, "a two-letter region code")
        if value is None:
            return None
        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            self.problem(
                node, path, f"{_shown(value)} is not a region known to phonenumbers (expected e.g. US, GB, DE)"
            )
            return None
        return value

    def timezone(self, node: yaml.Node, path: str) -> str | None:
        value = self.non_empty(node, path, "a time zone name")
        if value is None:
            return None
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else "expected e.g. America/New_York or Europe/London"
            self.problem(node, path, f"{_shown(value)} is not a known time zone ({hint})")
            return None
        return value

    # -- sections --------------------------------------------------------------------------------------------------

    def config(self, root: yaml.Node | None, base_dir: Path) -> Config:
        if root is None:
            self.problem(None, "", "the file is empty (expected settings such as asterisk, businesses)")
            return Config()
        top = self.mapping(root, "", _TOP_KEYS)
        if top is None:
            return Config()
        region = Config().default_region
        if "default_region" in top:
            region = self.region(top["default_region"], "default_region") or region
        empty = yaml.ScalarNode(_NULL, "")
        return Config(
            asterisk=self.asterisk(top.get("asterisk", empty)),
            businesses=self.businesses(top.get("businesses", empty), region),
            inbound=self.inbound(top.get("inbound", empty)),
            storage=self.storage(top.get("storage", empty), base_dir),
            logging=self.logging(top.get("logging", empty)),
            default_region=region,
            source=self.source,
        )

    def asterisk(self, node: yaml.Node) -> AsteriskConfig:
        section = self.mapping(node, "asterisk", _ASTERISK_KEYS + _TIMING_KEYS)
        base = AsteriskConfig(secret=os.environ.get(SECRET_ENV_VAR, ""))
        if not section:
            return base
        host, port, username, secret = base.host, base.port, base.username, base.secret
        if "host" in section:
            host = self.non_empty(section["host"], "asterisk.host", "a host name or address") or host
        if "port" in section:
            port = self.integer(section["port"], "asterisk.port", 1, 65535) or port
        if "username" in section:
            username = self.non_empty(section["username"], "asterisk.username", "an AMI user name") or username
        if "secret" in section:
            secret = self.text(section["secret"], "asterisk.secret", secret=True) or ""

        def seconds(key: str, default: float) -> float:
            value = self.positive(section[key], f"asterisk.{key}") if key in section else None
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
            self.problem(
                section.get("reconnect_min_s", section.get("reconnect_max_s")),
                "asterisk.reconnect_min_s",
                f"{config.reconnect_min_s:g} is more than reconnect_max_s ({config.reconnect_max_s:g})",
            )
        return config

    def businesses(self, node: yaml.Node, default_region: str) -> tuple[Business, ...]:
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return ()
        entries = self.items(node, "businesses")
        if entries is None:
            return ()
        result: list[Business] = []
        names: dict[str, int] = {}  # casefolded name → line
        owners: dict[str, tuple[str, int]] = {}  # E.164 → (business, line)
        for entry, path in entries:
            section = self.mapping(entry, path, _BUSINESS_KEYS)
            if section is None:
                continue
            name: str | None = None
            if "name" not in section:
                self.problem(entry, path, "missing required key 'name'")
            else:
                name = self.non_empty(section["name"], f"{path}.name", "a business name")
                if name is not None:
                    line = section["name"].start_mark.line + 1
                    if name.casefold() in names:
                        first = names[name.casefold()]
                        self.problem(section["name"], f"{path}.name", f"{name!r} is already used (line {first})")
                    else:
                        names[name.casefold()] = line
            region = default_region
            if "default_region" in section:
                region = self.region(section["default_region"], f"{path}.default_region") or default_region
            timezone = "UTC"
            if "timezone" in section:
                timezone = self.timezone(section["timezone"], f"{path}.timezone") or timezone
            numbers: list[str] = []
            if "numbers" not in section:
                self.problem(entry, path, "missing required key 'numbers' (a list of the business's phone numbers)")
            else:
                numbers = self.numbers(section["numbers"], f"{path}.numbers", region, name or path, owners)
            if name is not None:
                result.append(Business(name, tuple(numbers), timezone, region))
        return tuple(result)

    def numbers(
        self, node: yaml.Node, path: str, region: str, owner: str, owners: dict[str, tuple[str, int]]
    ) -> list[str]:
        items = self.items(node, path)
        if items is None:
            return []
        if not items:
            self.problem(node, path, "expected at least one phone number")
        numbers: list[str] = []
        for item, item_path in items:
            raw = self.text(item, item_path)
            if raw is None:
                continue
            number = to_e164(raw, region)
            if number is None:
                expected = f"expected e.g. +15550001000 or a number valid in region {region}"
                self.problem(item, item_path, f"{_shown(raw)} is not a phone number ({expected})")
                continue
            line = item.start_mark.line + 1
            if number in owners:
                other, first = owners[number]
                if other == owner:
                    self.problem(item, item_path, f"{number} is listed twice (first on line {first})")
                else:
                    self.problem(item, item_path, f"{number} is already a number of business {other!r} (line {first})")
                continue
            owners[number] = (owner, line)
            numbers.append(number)
        return numbers

    def inbound(self, node: yaml.Node) -> InboundConfig:
        section = self.mapping(node, "inbound", _INBOUND_KEYS)
        if not section:
            return InboundConfig()
        contexts = InboundConfig().contexts
        if "contexts" in section:
            values = self.names(section["contexts"], "inbound.contexts", "a dialplan context name")
            if values is not None and not values:
                self.problem(section["contexts"], "inbound.contexts", "expected at least one dialplan context")
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
        items = self.items(node, path)
        if items is None:
            return None
        values: list[str] = []
        for item, item_path in items:
            value = self.non_empty(item, item_path, what)
            if value is None:
                continue
            if any(ch.isspace() for ch in value):
                self.problem(item, item_path, f"{_shown(value)} contains spaces (expected {what})")
                continue
            if pattern is not None and not pattern.fullmatch(value):
                self.problem(item, item_path, f"{_shown(value)} is not valid (expected {what})")
                continue
            values.append(value)
        return values if len(values) == len(items) else None

    def storage(self, node: yaml.Node, base_dir: Path) -> StorageConfig:
        section = self.mapping(node, "storage", _STORAGE_KEYS)
        path = StorageConfig().path
        if section and "path" in section:
            path = Path(self.non_empty(section["path"], "storage.path", "a file path") or path).expanduser()
        # Relative to the configuration file, so the service finds the same database whatever its working directory.
        return StorageConfig(path=base_dir / path)

    def logging(self, node: yaml.Node) -> LoggingConfig:
        section = self.mapping(node, "logging", _LOGGING_KEYS)
        base = LoggingConfig()
        if not section:
            return base
        level, format_ = base.level, base.format
        if "level" in section:
            level = self.choice(section["level"], "logging.level", _LOG_LEVELS, upper=True) or level
        if "format" in section:
            format_ = self.choice(section["format"], "logging.format", _LOG_FORMATS, upper=False) or format_
        return LoggingConfig(level=level, format=format_)
