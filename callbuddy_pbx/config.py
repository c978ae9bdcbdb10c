"""Typed, frozen configuration. (The YAML loader with file:line errors is added below these types.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class InboundConfig:
    """How an inbound call is recognised when no business numbers are configured (and which trunks are ours)."""

    contexts: tuple[str, ...] = DEFAULT_INBOUND_CONTEXTS
    trunk_endpoints: tuple[str, ...] = ()  # e.g. ("PJSIP/trunk",): calls whose first channel is on these endpoints


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
    default_region: str = "US"  # for callers' numbers when no business applies
    source: str | None = None  # the file this came from, for messages
