"""The whole configuration (`Config`) and its YAML loader, which reports every problem with its file and line.

Each section is read by its own module (asterisk, businesses, texting, alerts, gateways, web, users, pbx); this one
reads the top level, `storage:` and `logging:`, and calls the section readers in the order their rules need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from callbuddy_pbx.config.alerts import AlertsConfig, AlertsReader
from callbuddy_pbx.config.asterisk import (
    AmiReader,
    AriConfig,
    AriReader,
    AsteriskConfig,
    AsteriskNode,
    InboundConfig,
)
from callbuddy_pbx.config.businesses import Business, BusinessesReader
from callbuddy_pbx.config.cel import CelConfig, CelReader
from callbuddy_pbx.config.forwarding import ForwardingReader, SmtpConfig, SmtpReader
from callbuddy_pbx.config.gateways import GatewayConfig, GatewayReader
from callbuddy_pbx.config.pbx import PbxConfig, PbxReader
from callbuddy_pbx.config.push import PushConfig, PushReader
from callbuddy_pbx.config.reader import NULL, Reader, compose_bounded, is_null, read_bounded
from callbuddy_pbx.config.texting import TextingReader
from callbuddy_pbx.config.web import WebConfig, WebReader
from callbuddy_pbx.db_url import UrlError, check_postgresql, engine_of, masked, sqlite_path


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where calls and texts are kept: an SQLite file (`path`, the default), or the PostgreSQL database `url` names
    (postgresql://user@host:port/database; its password from the environment, never from the file)."""

    path: Path = Path("data/callbuddy.sqlite3")
    url: str | None = None  # None: SQLite at `path`; else a postgresql:// URL (sqlite:/// URLs become `path`)

    @property
    def engine(self) -> str:
        return "sqlite" if self.url is None else "postgresql"

    @property
    def spool_path(self) -> Path | None:
        """Where calls judged while PostgreSQL takes no writes are kept until stored (store/spool.py): beside where
        the SQLite file would be, on this machine. None on SQLite: the store is on this machine already."""
        return None if self.url is None else self.path.with_name("callbuddy-spool.sqlite3")

    @property
    def shown(self) -> str:
        """Where the store is, as it may be printed or logged: the file, or the URL with no password in it."""
        return str(self.path) if self.url is None else masked(self.url)


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """How long texts wait for a gateway that cannot take them, and what becomes of a send that got no answer."""

    max_age_s: float = 24 * 3600.0  # a text not sent this long after it was queued is expired, with the reason
    resend_unknown_after_s: float | None = None  # None: a text sent with no answer is never sent again


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "text"  # "text" or "json"
    library_level: str = "WARNING"  # other libraries' loggers (their DEBUG lines can carry SQL parameters)


@dataclass(frozen=True, slots=True)
class Config:
    asterisk: AsteriskConfig = field(default_factory=AsteriskConfig)
    businesses: tuple[Business, ...] = ()
    inbound: InboundConfig = field(default_factory=InboundConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    gateways: tuple[GatewayConfig, ...] = ()
    web: WebConfig = field(default_factory=WebConfig)
    pbx: PbxConfig = field(default_factory=PbxConfig)  # phones, ring groups, trunks: what `render` writes
    alerts: AlertsConfig = field(default_factory=AlertsConfig)  # when and how the installer is told of trouble
    ari: AriConfig = field(default_factory=AriConfig)  # for `routing: callbuddy` ring groups
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    cel: CelConfig = field(default_factory=CelConfig)  # Asterisk's call records, read to fill gaps in what AMI saw
    push: PushConfig = field(default_factory=PushConfig)  # APNs and FCM credentials that wake mobile softphones
    smtp: SmtpConfig | None = None  # the server replies forwarded by e-mail go through (None: none configured)
    default_region: str = "US"  # for callers' numbers when no business applies
    source: str | None = None  # the file this came from, for messages
    nodes: tuple[AsteriskNode, ...] = ()  # `asterisk.nodes`: several named Asterisk servers (() : one, `asterisk`)

    @property
    def asterisk_nodes(self) -> tuple[AsteriskNode, ...]:
        """Every Asterisk server followed: the named nodes, or the one unnamed Asterisk of `asterisk:` and `cel:`."""
        return self.nodes or (AsteriskNode("", self.asterisk, self.cel),)


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
    "outbox",
    "cel",
    "push",
    "smtp",
)
_STORAGE_KEYS = ("path", "url")
_OUTBOX_KEYS = ("max_age_hours", "resend_unknown_after_minutes")
_LOGGING_KEYS = ("level", "format", "library_level")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LOG_FORMATS = ("text", "json")


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
        text = read_bounded(file)
    except FileNotFoundError:
        raise ConfigError([f"{source}: no such file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{source}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    try:
        root = compose_bounded(text)
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
        smtp = SmtpReader(self).smtp(top.get("smtp"))  # before the businesses: an e-mail target needs it
        forwarding = ForwardingReader(self, senders, smtp_configured=smtp is not None or "smtp" in top)
        storage = self.storage(top.get("storage", empty), base_dir)
        ami_reader = AmiReader(self)
        asterisk, nodes = ami_reader.asterisk(top.get("asterisk", empty), base_dir, storage.url is not None)
        if nodes and "cel" in top:
            self.problem(top["cel"], "cel", "with asterisk.nodes, give each node its own cel: section")
        businesses = BusinessesReader(self, forwarding, nodes=[node.name for node in nodes]).businesses(
            top.get("businesses", empty), region, texting, notices
        )
        alerts = notices.alerts(top.get("alerts", empty), region, businesses)
        texting.finish()
        web = WebReader(self).web(top.get("web", empty), base_dir, [business.name for business in businesses])
        senders.finish(web)
        texting.finish_web(web)
        pbx_reader = PbxReader(self, businesses, region)
        pbx = pbx_reader.pbx(top.get("pbx", empty), base_dir)  # after the businesses
        ari_reader = AriReader(self, pbx_reader)
        ari = ari_reader.ari(top.get("ari", empty), pbx)  # after pbx: its key, its routing
        nodes = ami_reader.with_ari(nodes, ari_reader, pbx)
        if nodes and nodes[0].ari is not None:  # the first server's own: "the" ARI, where one is meant
            if "ari" in top:
                self.problem(top["ari"], "ari", "the first of asterisk.nodes has its own ari: give one of them")
            ari = nodes[0].ari
        on_postgresql = storage.url is not None
        cel = (
            nodes[0].cel
            if nodes
            else CelReader(self).cel(top.get("cel", empty), base_dir, store_on_postgresql=on_postgresql)
        )
        return Config(
            asterisk=asterisk,
            nodes=nodes,
            businesses=businesses,
            inbound=AmiReader(self).inbound(top.get("inbound", empty)),
            storage=storage,
            logging=self.logging(top.get("logging", empty)),
            outbox=self.outbox(top.get("outbox", empty)),
            cel=cel,
            push=PushReader(self).push(top.get("push", empty), base_dir),
            smtp=smtp,
            gateways=gateways,
            web=web,
            pbx=pbx,
            alerts=alerts,
            ari=ari,
            default_region=region,
            source=self.source,
        )

    def storage(self, node: yaml.Node, base_dir: Path) -> StorageConfig:
        section = self.mapping(node, "storage", _STORAGE_KEYS)
        path = StorageConfig().path
        if section and "path" in section:
            path = Path(self.non_empty(section["path"], "storage.path", "a file path") or path).expanduser()
        url = None
        if section and "url" in section:
            if "path" in section:
                self.problem(section["url"], "storage.url", "give storage.path or storage.url, not both")
            url = self.storage_url(section["url"])
            if url is not None and engine_of(url) == "sqlite":
                path, url = sqlite_path(url).expanduser(), None
        # Relative to the configuration file, so the service finds the same database whatever its working directory.
        return StorageConfig(path=base_dir / path, url=url)

    def storage_url(self, node: yaml.Node) -> str | None:
        """A database URL this build can open (problems say it masked: no password shows in a message)."""
        url = self.non_empty(node, "storage.url", "a database URL (postgresql://user@host:port/database)")
        if url is None:
            return None
        try:
            if engine_of(url) == "sqlite":
                sqlite_path(url)
            else:
                check_postgresql(url)
        except UrlError as exc:
            self.problem(node, "storage.url", str(exc))
            return None
        return url

    def outbox(self, node: yaml.Node) -> OutboxConfig:
        section = self.mapping(node, "outbox", _OUTBOX_KEYS)
        base = OutboxConfig()
        if not section:
            return base
        max_age_s, resend_s = base.max_age_s, base.resend_unknown_after_s
        if "max_age_hours" in section:
            hours = self.positive(section["max_age_hours"], "outbox.max_age_hours")
            max_age_s = max_age_s if hours is None else hours * 3600
        if "resend_unknown_after_minutes" in section and not is_null(section["resend_unknown_after_minutes"]):
            minutes = self.positive(section["resend_unknown_after_minutes"], "outbox.resend_unknown_after_minutes")
            resend_s = None if minutes is None else minutes * 60
        return OutboxConfig(max_age_s=max_age_s, resend_unknown_after_s=resend_s)

    def logging(self, node: yaml.Node) -> LoggingConfig:
        section = self.mapping(node, "logging", _LOGGING_KEYS)
        base = LoggingConfig()
        if not section:
            return base
        level, format_, library_level = base.level, base.format, base.library_level
        if "level" in section:
            level = self.choice(section["level"], "logging.level", _LOG_LEVELS, upper=True) or level
        if "format" in section:
            format_ = self.choice(section["format"], "logging.format", _LOG_FORMATS, upper=False) or format_
        if "library_level" in section:
            library_level = (
                self.choice(section["library_level"], "logging.library_level", _LOG_LEVELS, upper=True) or library_level
            )
        return LoggingConfig(level=level, format=format_, library_level=library_level)
