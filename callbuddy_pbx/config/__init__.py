"""The YAML configuration: one frozen `Config` of typed sections, read by `load_config` with every problem named by
file and line. This package's face: the types and functions the rest of the service uses."""

from callbuddy_pbx.config.alerts import AlertsConfig, DigestConfig
from callbuddy_pbx.config.asterisk import (
    DEFAULT_INBOUND_CONTEXTS,
    DEFAULT_INTERNAL_CONTEXTS,
    SECRET_ENV_VAR,
    AriConfig,
    AsteriskConfig,
    AsteriskNode,
    InboundConfig,
)
from callbuddy_pbx.config.businesses import Business
from callbuddy_pbx.config.cel import DEFAULT_CEL_PATH, CelConfig
from callbuddy_pbx.config.gateways import GATEWAY_KINDS, GatewayConfig
from callbuddy_pbx.config.loader import (
    Config,
    ConfigError,
    LoggingConfig,
    OutboxConfig,
    StorageConfig,
    default_config,
    load_config,
)
from callbuddy_pbx.config.pbx import PbxConfig
from callbuddy_pbx.config.push import ApnsConfig, FcmConfig, PushConfig
from callbuddy_pbx.config.texting import (
    DEFAULT_HELP_TEXT,
    DEFAULT_OPT_OUT_TEXT,
    DEFAULT_TEMPLATE,
    MISSED_OUTCOMES,
    QuietHours,
    TextBack,
    WeeklyHours,
)
from callbuddy_pbx.config.users import WebUser
from callbuddy_pbx.config.web import ApiToken, WebConfig

__all__ = [
    "DEFAULT_CEL_PATH",
    "DEFAULT_HELP_TEXT",
    "DEFAULT_INBOUND_CONTEXTS",
    "DEFAULT_INTERNAL_CONTEXTS",
    "DEFAULT_OPT_OUT_TEXT",
    "DEFAULT_TEMPLATE",
    "GATEWAY_KINDS",
    "MISSED_OUTCOMES",
    "SECRET_ENV_VAR",
    "AlertsConfig",
    "ApiToken",
    "ApnsConfig",
    "AriConfig",
    "AsteriskConfig",
    "AsteriskNode",
    "Business",
    "CelConfig",
    "Config",
    "ConfigError",
    "DigestConfig",
    "FcmConfig",
    "GatewayConfig",
    "InboundConfig",
    "LoggingConfig",
    "OutboxConfig",
    "PbxConfig",
    "PushConfig",
    "QuietHours",
    "StorageConfig",
    "TextBack",
    "WebConfig",
    "WebUser",
    "WeeklyHours",
    "default_config",
    "load_config",
]
