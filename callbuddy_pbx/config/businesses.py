"""The businesses (`businesses:`): each one's name, numbers, time zone and region; its texting settings are read
by `texting`, its daily digest by `alerts`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import yaml

from callbuddy_pbx.config.alerts import AlertsReader, DigestConfig
from callbuddy_pbx.config.forwarding import FORWARD_KEYS, ForwardingReader, ForwardTarget
from callbuddy_pbx.config.reader import NULL, Reader, shown
from callbuddy_pbx.config.texting import BUSINESS_TEXTING_KEYS, TextBack, TextingReader, WeeklyHours
from callbuddy_pbx.phone import to_e164

_BUSINESS_KEYS = (
    "name",
    "numbers",
    "node",
    "timezone",
    "default_region",
    *BUSINESS_TEXTING_KEYS,
    "digest",
    "allow_international",
    "allow_premium",
    *FORWARD_KEYS,
)


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
    # Whether its desk phones may call abroad / premium-rate numbers (config/dialing.py; a phone's `outbound` wins).
    allow_international: bool = False
    allow_premium: bool = False
    forward_to: tuple[ForwardTarget, ...] = ()  # where its callers' replies are forwarded (config/forwarding.py)
    node: str | None = None  # the Asterisk server (asterisk.nodes) its numbers ring on; None: any of them

    def on_node(self, node: str) -> bool:
        return self.node is None or self.node == node


class BusinessesReader:
    """Reads `businesses:` with a Reader (whose problem list it adds to)."""

    def __init__(
        self, reader: Reader, forwarding: ForwardingReader | None = None, *, nodes: Sequence[str] = ()
    ) -> None:
        self.r = reader
        self._forwarding = forwarding  # None: `forward_replies_to` is not read (a reader for businesses alone)
        self._nodes = tuple(nodes)  # the names of asterisk.nodes (none: one Asterisk, `node:` is not allowed)

    def businesses(
        self, node: yaml.Node, default_region: str, texting: TextingReader, notices: AlertsReader
    ) -> tuple[Business, ...]:
        if isinstance(node, yaml.ScalarNode) and node.tag == NULL:
            return ()
        entries = self.r.items(node, "businesses")
        if entries is None:
            return ()
        result: list[Business] = []
        names: dict[str, int] = {}  # casefolded name → line
        owners: dict[str, tuple[str, int]] = {}  # E.164 → (business, line)
        for entry, path in entries:
            section = self.r.mapping(entry, path, _BUSINESS_KEYS)
            if section is None:
                continue
            name: str | None = None
            if "name" not in section:
                self.r.problem(entry, path, "missing required key 'name'")
            else:
                name = self.r.non_empty(section["name"], f"{path}.name", "a business name")
                if name is not None:
                    line = section["name"].start_mark.line + 1
                    if name.casefold() in names:
                        first = names[name.casefold()]
                        self.r.problem(section["name"], f"{path}.name", f"{name!r} is already used (line {first})")
                    else:
                        names[name.casefold()] = line
            region = default_region
            if "default_region" in section:
                region = self.r.region(section["default_region"], f"{path}.default_region") or default_region
            timezone = "UTC"
            if "timezone" in section:
                timezone = self.r.timezone(section["timezone"], f"{path}.timezone") or timezone
            numbers: list[str] = []
            if "numbers" not in section:
                self.r.problem(entry, path, "missing required key 'numbers' (a list of the business's phone numbers)")
            else:
                numbers = self.numbers(section["numbers"], f"{path}.numbers", region, name or path, owners)
            extra = texting.business(entry, section, path, region)
            digest = None
            if "digest" in section:
                digest = notices.digest(entry, section["digest"], f"{path}.digest", region)
            allow = {key: self._allowed(section, path, key) for key in ("allow_international", "allow_premium")}
            forward_to = () if self._forwarding is None else self._forwarding.targets(entry, section, path, region)
            on_node = self._node(section["node"], f"{path}.node") if "node" in section else None
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
                        **allow,
                        forward_to=forward_to,
                        node=on_node,
                    )
                )
        return tuple(result)

    def _node(self, node: yaml.Node, path: str) -> str | None:
        name = self.r.non_empty(node, path, "the name of one of asterisk.nodes")
        if name is None:
            return None
        if not self._nodes:
            self.r.problem(node, path, "there is one Asterisk (no asterisk.nodes): leave node out")
            return None
        if name not in self._nodes:
            self.r.problem(node, path, f"{shown(name)} is not one of asterisk.nodes ({', '.join(self._nodes)})")
            return None
        return name

    def _allowed(self, section: dict[str, yaml.Node], path: str, key: str) -> bool:
        return key in section and self.r.boolean(section[key], f"{path}.{key}") is True

    def numbers(
        self, node: yaml.Node, path: str, region: str, owner: str, owners: dict[str, tuple[str, int]]
    ) -> list[str]:
        items = self.r.items(node, path)
        if items is None:
            return []
        if not items:
            self.r.problem(node, path, "expected at least one phone number")
        numbers: list[str] = []
        for item, item_path in items:
            raw = self.r.text(item, item_path)
            if raw is None:
                continue
            number = to_e164(raw, region)
            if number is None:
                expected = f"expected e.g. +15550001000 or a number valid in region {region}"
                self.r.problem(item, item_path, f"{shown(raw)} is not a phone number ({expected})")
                continue
            line = item.start_mark.line + 1
            if number in owners:
                other, first = owners[number]
                if other == owner:
                    self.r.problem(item, item_path, f"{number} is listed twice (first on line {first})")
                else:
                    self.r.problem(
                        item, item_path, f"{number} is already a number of business {other!r} (line {first})"
                    )
                continue
            owners[number] = (owner, line)
            numbers.append(number)
        return numbers
