"""Alerts to the installer and the owners' daily digest: the types, and the YAML that sets them.

`alerts:` (top level) says when the installer is told that something is wrong, and how (a text through one of
the gateways and/or an HTTP webhook). A business's `digest:` says when and where its owner gets yesterday's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """When to tell the installer; with neither `sms_to` nor `webhook_url` no alert is sent (they are still logged)."""

    sms_to: tuple[str, ...] = ()  # E.164 numbers texted through `gateway`
    gateway: str = ""  # which gateway sends alert texts (default: the first configured)
    sender: str = ""  # the sender of alert texts (default: the gateway's first business sender)
    webhook_url: str = field(default="", repr=False)  # POSTed a JSON body per alert; may carry a key
    ami_down_after_s: float = 120.0  # AMI not logged in for this long -> alert
    gateway_down_after_s: float = 300.0  # a gateway down (not bound / failing) for this long -> alert
    failures_threshold: int = 3  # this many failed texts ...
    failures_window_s: float = 3600.0  # ... within this window -> alert
    repeat_after_s: float = 3600.0  # the same problem is alerted again at most this often while it lasts


@dataclass(frozen=True, slots=True)
class DigestConfig:
    """A business's daily digest: at `time` (local, the business's time zone), yesterday's figures."""

    time: str = "08:00"  # HH:MM
    sms_to: tuple[str, ...] = ()  # the owner's numbers (E.164)
    webhook_url: str = field(default="", repr=False)
