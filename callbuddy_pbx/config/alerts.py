"""Alerts to the installer and the owners' daily digest: the types, and the YAML that sets them.

`alerts:` (top level) says when the installer is told that something is wrong, and how (a text through one of
the gateways and/or an HTTP webhook). A business's `digest:` says when and where its owner gets yesterday's figures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import yaml

from callbuddy_pbx.config.gateways import GatewayReader
from callbuddy_pbx.config.reader import INT, STR, Reader, key_node, line_of, shown
from callbuddy_pbx.config.texting import TextBack
from callbuddy_pbx.phone import to_e164


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


class TextingBusiness(Protocol):
    """What choosing an alert sender needs of a configured business (config.Business)."""

    @property
    def numbers(self) -> tuple[str, ...]: ...

    @property
    def text_back(self) -> TextBack: ...


def default_sender(gateway: str, businesses: Iterable[TextingBusiness]) -> str:
    """The sender of the first business that texts through `gateway` (its text_back.sender, else its first number:
    what its missed-call texts are sent from), or "" when none does."""
    for business in businesses:
        if business.text_back.gateway == gateway:
            return business.text_back.sender or (business.numbers[0] if business.numbers else "")
    return ""


# ---------------------------------------------------------------------------------------------------------------------
# YAML

ALERTS_KEYS = (
    "sms_to",
    "gateway",
    "sender",
    "webhook_url",
    "ami_down_after_s",
    "gateway_down_after_s",
    "failures_threshold",
    "failures_window_s",
    "repeat_after_s",
)
DIGEST_KEYS = ("time", "sms_to", "webhook_url")
MAX_RECIPIENTS = 10  # each alert or digest is one text per number: a long list is a mistake (or a cost)
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_PHONE_LIKE = re.compile(r"\+?[\d\s().-]+")
_ALPHANUMERIC_ID = re.compile(r"[A-Za-z0-9 ]{1,11}")


class AlertsReader:
    """Reads `alerts:` and each business's `digest:` with a Reader (whose problem list it adds to).

    The gateways are read first: `alerts.gateway` must name one, and a text needs at least one. `alerts` runs after
    the businesses, whose senders are the default sender of alert texts.
    """

    def __init__(self, reader: Reader, gateways: GatewayReader) -> None:
        self.r = reader
        self._gateways = gateways

    def alerts(self, node: yaml.Node, region: str, businesses: Sequence[TextingBusiness]) -> AlertsConfig:
        section = self.r.mapping(node, "alerts", ALERTS_KEYS)
        base = AlertsConfig()
        if not section:
            return base
        sms_to = self._numbers(section["sms_to"], "alerts.sms_to", region) if "sms_to" in section else ()
        gateway = ""
        if "gateway" in section:
            gateway = self._gateways.reference(section["gateway"], "alerts.gateway") or ""
        elif self._gateways.names:
            gateway = next(iter(self._gateways.names))  # the first gateway
        sender = self._sender(section["sender"], "alerts.sender", region) if "sender" in section else ""
        webhook = ""
        if "webhook_url" in section:
            webhook = self.r.url(section["webhook_url"], "alerts.webhook_url", "a webhook URL", quoted=False) or ""

        def seconds(key: str, default: float) -> float:
            value = self.r.positive(section[key], f"alerts.{key}") if key in section else None
            return default if value is None else value

        threshold = base.failures_threshold
        if "failures_threshold" in section:
            threshold = self.r.integer(section["failures_threshold"], "alerts.failures_threshold", 1, 100_000) or 1
        if sms_to:
            where = key_node(node, "sms_to") or section["sms_to"]
            if not self._gateways.entries:
                self.r.problem(where, "alerts.sms_to", _NO_GATEWAY)
            elif gateway and not sender and "sender" not in section:
                sender = default_sender(gateway, businesses)
                if not sender:
                    self.r.problem(
                        where,
                        "alerts.sms_to",
                        f"no business texts through gateway {gateway!r}, so alert texts have no sender "
                        "(set alerts.sender: a number or sender id that gateway may send from)",
                    )
        return AlertsConfig(
            sms_to=sms_to,
            gateway=gateway,
            sender=sender,
            webhook_url=webhook,
            ami_down_after_s=seconds("ami_down_after_s", base.ami_down_after_s),
            gateway_down_after_s=seconds("gateway_down_after_s", base.gateway_down_after_s),
            failures_threshold=threshold,
            failures_window_s=seconds("failures_window_s", base.failures_window_s),
            repeat_after_s=seconds("repeat_after_s", base.repeat_after_s),
        )

    def digest(self, entry: yaml.Node, node: yaml.Node, path: str, region: str) -> DigestConfig | None:
        """The `digest:` (`node`) of a business entry (`entry`, whose `digest` key problems about it point to)."""
        where = key_node(entry, "digest") or node
        section = self.r.mapping(node, path, DIGEST_KEYS)
        if section is None:
            return None
        base = DigestConfig()
        at = self._time(section["time"], f"{path}.time") if "time" in section else base.time
        sms_to = self._numbers(section["sms_to"], f"{path}.sms_to", region) if "sms_to" in section else ()
        webhook = ""
        if "webhook_url" in section:
            webhook = self.r.url(section["webhook_url"], f"{path}.webhook_url", "a webhook URL", quoted=False) or ""
        if sms_to and not self._gateways.entries:
            self.r.problem(key_node(node, "sms_to") or section["sms_to"], f"{path}.sms_to", _NO_GATEWAY)
        if not sms_to and not webhook and "sms_to" not in section and "webhook_url" not in section:
            self.r.problem(where, path, "nowhere to send the digest (give sms_to, webhook_url or both)")
        if at is None:
            return None
        return DigestConfig(time=at, sms_to=sms_to, webhook_url=webhook)

    def _numbers(self, node: yaml.Node, path: str, region: str) -> tuple[str, ...]:
        """A list of phone numbers in E.164 (one number alone is accepted too)."""
        items = [(node, f"{path}[0]")] if isinstance(node, yaml.ScalarNode) else self.r.items(node, path)
        numbers: dict[str, int] = {}
        for item, item_path in items or ():
            raw = self.r.text(item, item_path)
            if raw is None:
                continue
            number = to_e164(raw, region)
            if number is None:
                expected = f"expected e.g. +15550001000 or a number valid in region {region}"
                self.r.problem(item, item_path, f"{shown(raw)} is not a phone number ({expected})")
            elif number in numbers:
                self.r.problem(item, item_path, f"{number} is listed twice (first on line {numbers[number]})")
            else:
                numbers[number] = line_of(item)
        if len(numbers) > MAX_RECIPIENTS:
            self.r.problem(node, path, f"{len(numbers)} numbers; at most {MAX_RECIPIENTS}")
        return tuple(numbers)

    def _sender(self, node: yaml.Node, path: str, region: str) -> str:
        """An E.164 number or an alphanumeric sender id, as text_back.sender."""
        value = self.r.non_empty(node, path, "a phone number or an alphanumeric sender id")
        if value is None:
            return ""
        if _PHONE_LIKE.fullmatch(value) and sum(char.isdigit() for char in value) >= 7:
            number = to_e164(value, region)
            if number is None:
                self.r.problem(node, path, f"{shown(value)} is not a phone number (expected e.g. +15550001000)")
            return number or ""
        if _ALPHANUMERIC_ID.fullmatch(value):
            return value
        self.r.problem(
            node,
            path,
            f"{shown(value)} is neither an E.164 number (e.g. +15550001000) nor an alphanumeric sender id "
            "(up to 11 letters, digits or spaces)",
        )
        return ""

    def _time(self, node: yaml.Node, path: str) -> str | None:
        """HH:MM on a 24-hour clock. Unquoted 8:30 is a YAML 1.1 base-60 number; its text is what was written."""
        raw = str(node.value) if isinstance(node, yaml.ScalarNode) and node.tag == INT else None
        if raw is None:
            if not isinstance(node, yaml.ScalarNode) or node.tag != STR:
                self.r.problem(node, path, 'expected a time of day such as "08:00"')
                return None
            raw = self.r.expand(node, path, str(node.value))
            if raw is None:
                return None
        match = _TIME.fullmatch(raw.strip())
        if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            self.r.problem(node, path, f"{shown(raw)} is not a time of day (expected HH:MM, e.g. 08:00)")
            return None
        return f"{int(match.group(1)):02d}:{match.group(2)}"


_NO_GATEWAY = "texts need a gateway, and none is configured (add one under `gateways:`)"
