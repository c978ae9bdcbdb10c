"""Typed, frozen configuration, and its YAML loader that reports every problem with its file and line."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from callbuddy_pbx.config_alerts import AlertsConfig, AlertsReader, DigestConfig
from callbuddy_pbx.config_ari import AriConfig, AriReader
from callbuddy_pbx.config_gateways import GATEWAY_KINDS, GatewayConfig, GatewayReader, WebConfig, WebUser
from callbuddy_pbx.config_pbx import PbxConfig, PbxReader, public_address
from callbuddy_pbx.config_reader import NULL, Reader, shown
from callbuddy_pbx.config_texting import (
    BUSINESS_TEXTING_KEYS,
    DEFAULT_HELP_TEXT,
    DEFAULT_OPT_OUT_TEXT,
    DEFAULT_TEMPLATE,
    MISSED_OUTCOMES,
    QuietHours,
    TextBack,
    TextingReader,
    WeeklyHours,
)
from callbuddy_pbx.phone import to_e164

__all__ = [
    "DEFAULT_HELP_TEXT",
    "DEFAULT_INBOUND_CONTEXTS",
    "DEFAULT_INTERNAL_CONTEXTS",
    "DEFAULT_OPT_OUT_TEXT",
    "DEFAULT_TEMPLATE",
    "GATEWAY_KINDS",
    "MISSED_OUTCOMES",
    "SECRET_ENV_VAR",
    "AlertsConfig",
    "AsteriskConfig",
    "Business",
    "Config",
    "ConfigError",
    "DigestConfig",
    "GatewayConfig",
    "InboundConfig",
    "LoggingConfig",
    "QuietHours",
    "StorageConfig",
    "TextBack",
    "WebConfig",
    "WebUser",
    "WeeklyHours",
    "default_config",
    "load_config",
]

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
    digest: DigestConfig | None = None  # the owner's daily digest (None: none is sent)


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
class Config:
    asterisk: AsteriskConfig = AsteriskConfig()
    businesses: tuple[Business, ...] = ()
    inbound: InboundConfig = InboundConfig()
    storage: StorageConfig = StorageConfig()
    logging: LoggingConfig = LoggingConfig()
    gateways: tuple[GatewayConfig, ...] = ()
    web: WebConfig = field(default_factory=WebConfig)
    pbx: PbxConfig = field(default_factory=PbxConfig)  # phones, ring groups, trunks: what `render` writes
    alerts: AlertsConfig = field(default_factory=AlertsConfig)  # when and how the installer is told of trouble
    ari: AriConfig = field(default_factory=AriConfig)  # for `routing: callbuddy` ring groups
    default_region: str = "US"  # for callers' numbers when no business applies
    source: str | None = None  # the file this came from, for messages


# ---------------------------------------------------------------------------------------------------------------------
# YAML loader: walks yaml's node tree (not the constructed objects) so every problem can name its file and line.

_TOP_KEYS = (
    "default_region",
    "asterisk",
    "businesses",
    "inbound",
    "storage",
    "logging",
    "gateways",
    "web",
    "pbx",
    "alerts",
    "ari",
)
_ASTERISK_KEYS = ("host", "port", "username", "secret")
_TIMING_KEYS = (
    "connect_timeout_s",
    "action_timeout_s",
    "ping_interval_s",
    "ping_timeout_s",
    "reconnect_min_s",
    "reconnect_max_s",
)
_BUSINESS_KEYS = ("name", "numbers", "timezone", "default_region", *BUSINESS_TEXTING_KEYS, "digest")
_INBOUND_KEYS = ("contexts", "trunk_endpoints", "internal_contexts")
_STORAGE_KEYS = ("path",)
_LOGGING_KEYS = ("level", "format")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMATS = ("text", "json")
SECRET_ENV_VAR = "CALLBUDDY_AMI_SECRET"  # noqa: S105 (a variable name) - read when the file has no asterisk.secret

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


class _Reader(Reader):
    """Turns the node tree into a Config, collecting problems instead of stopping at the first one."""

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
        empty = yaml.ScalarNode(NULL, "")
        senders = GatewayReader(self)
        gateways = senders.gateways(top.get("gateways", empty))  # before businesses, which name them
        texting = TextingReader(self, senders)
        notices = AlertsReader(self, senders)  # alerts and digests name gateways and default to business senders
        businesses = self.businesses(top.get("businesses", empty), region, texting, notices)
        alerts = notices.alerts(top.get("alerts", empty), region, businesses)
        texting.finish()
        web = senders.web(top.get("web", empty), base_dir, [business.name for business in businesses])
        senders.finish(web)
        texting.finish_web(web)
        pbx_reader = PbxReader(self, businesses, region)
        pbx = pbx_reader.pbx(top.get("pbx", empty), base_dir)  # after the businesses
        ari = AriReader(self, pbx_reader).ari(top.get("ari", empty), pbx)  # after pbx: its key, its routing
        return Config(
            asterisk=self.asterisk(top.get("asterisk", empty)),
            businesses=businesses,
            inbound=self.inbound(top.get("inbound", empty)),
            storage=self.storage(top.get("storage", empty), base_dir),
            logging=self.logging(top.get("logging", empty)),
            gateways=gateways,
            web=web,
            pbx=pbx,
            alerts=alerts,
            ari=ari,
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
            if public_address(host) is not None:  # an IP literal only: names are not resolved while reading
                self.problem(
                    section["host"],
                    "asterisk.host",
                    f"{host} is a public address: AMI must not be reached over the internet; "
                    "put CallBuddy on the PBX host or a private network",
                )
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

    def businesses(
        self, node: yaml.Node, default_region: str, texting: TextingReader, notices: AlertsReader
    ) -> tuple[Business, ...]:
        if isinstance(node, yaml.ScalarNode) and node.tag == NULL:
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
            extra = texting.business(entry, section, path, region)
            digest = None
            if "digest" in section:
                digest = notices.digest(entry, section["digest"], f"{path}.digest", region)
            if name is not None:
                result.append(
                    Business(
                        name,
                        tuple(numbers),
                        timezone,
                        region,
                        booking_url=extra.booking_url,
                        text_back=extra.text_back,
                        hours=extra.hours,
                        holidays=extra.holidays,
                        digest=digest,
                    )
                )
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
                self.problem(item, item_path, f"{shown(raw)} is not a phone number ({expected})")
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
                self.problem(item, item_path, f"{shown(value)} contains spaces (expected {what})")
                continue
            if pattern is not None and not pattern.fullmatch(value):
                self.problem(item, item_path, f"{shown(value)} is not valid (expected {what})")
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
