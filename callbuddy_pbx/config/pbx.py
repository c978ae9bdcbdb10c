"""Typed configuration of the PBX itself (phones, ring groups, trunks), from which Asterisk's files are rendered,
and the reader of the YAML `pbx:` section (below the types).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from callbuddy_pbx.config.dialing import PLANS, plan_for
from callbuddy_pbx.config.reader import NULL, Reader, did_you_mean, is_null, join, key_node, kind_of, line_of, shown
from callbuddy_pbx.config.trunk_templates import (
    TemplateHeader,
    TemplateHeaderError,
    host_problem,
    port_problem,
    read_template_header,
    with_defaults,
)
from callbuddy_pbx.config.trunk_templates import is_host_name as is_host_name  # re-exported: used beside the PBX
from callbuddy_pbx.phone import to_e164
from callbuddy_pbx.shipped import shipped_dir

RING_STRATEGIES: tuple[str, ...] = ("ring_all", "in_order", "last_active_first")
# Only the service knows which device was active last: the dialplan has no equivalent (fail-open hunts in order).
CALLBUDDY_ONLY_STRATEGIES: tuple[str, ...] = ("last_active_first",)
ROUTINGS: tuple[str, ...] = ("dialplan", "callbuddy")
DEFAULT_MAX_OUTBOUND_CALLS = 2  # a phone's calls out at once: a call and a consult call for a transfer
NO_ANSWER_ACTIONS: tuple[str, ...] = ("hangup", "voicemail", "forward")
ASTERISK_VERSIONS: tuple[int, ...] = (20, 22)
# The provider templates: inside the installed package, or beside it in a checkout (shipped.py says where else);
# `pbx.templates_dir` overrides it (relative to the configuration file).
DEFAULT_TEMPLATES_DIR = shipped_dir("sip_trunks")


@dataclass(frozen=True, slots=True)
class Outbound:
    """What a phone may dial beyond national numbers; None: as its business allows (allow_international, ...)."""

    international: bool | None = None
    premium: bool | None = None


@dataclass(frozen=True, slots=True)
class Phone:
    """A desk phone or softphone: one PJSIP endpoint + auth + aor."""

    extension: str  # "100"
    name: str  # shown as caller ID name on internal calls
    business: str  # the business it belongs to (exactly one)
    secret: str = field(default="auto", repr=False)  # "auto": derived from pbx.secret_key (stable across renders)
    voicemail: bool = True  # a mailbox <extension>@default exists
    person: str = ""  # who uses it; a person's phones ring together under `routing: callbuddy` ("": its own person)
    location: str = ""  # the dispatchable location for emergency calls, one line of free text ("": not given)
    outbound: Outbound = Outbound()  # may it dial international / premium numbers (None: as its business)
    max_outbound_calls: int = DEFAULT_MAX_OUTBOUND_CALLS  # calls out at once; emergency calls are never counted
    push: bool = False  # a mobile softphone woken by push (also detected from its registration's Contact URI)


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """What happens when nobody in the ring group answers."""

    action: str = "hangup"  # "hangup" | "voicemail" | "forward"
    extension: str = ""  # voicemail: whose mailbox
    number: str = ""  # forward: an external number, E.164


@dataclass(frozen=True, slots=True)
class RingGroup:
    """How calls to one business number ring the phones."""

    number: str  # the DID, E.164 (one of the business's numbers)
    members: tuple[str, ...]  # extensions, in order (the order matters for in_order)
    strategy: str = "ring_all"  # "ring_all" | "in_order" | "last_active_first" (the last only with callbuddy routing)
    ring_s: int = 20  # ring_all: how long all members ring; in_order: how long each member rings
    total_s: int = 60  # in_order: at most this long in all
    no_answer: NoAnswer = NoAnswer()
    business: str = ""  # the business owning `number`
    # "dialplan": Asterisk rings the members itself; "callbuddy": the call enters the service's Stasis app, which
    # rings the members' devices that are registered and free at that moment (and the dialplan rings the group
    # itself when the app is not connected: fail open).
    routing: str = "dialplan"


@dataclass(frozen=True, slots=True)
class Trunk:
    """A SIP trunk from a template in sip_trunks/ with the installer's values."""

    name: str  # the PJSIP endpoint name, e.g. "trunk"
    template: str  # file stem in sip_trunks/, e.g. "twilio-elastic-sip"
    fields: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # the template's placeholders -> values
    dids: tuple[str, ...] = ()  # E.164 numbers this trunk delivers


@dataclass(frozen=True, slots=True)
class PbxConfig:
    asterisk_version: int = 22
    secret_key: str = field(default="", repr=False)  # derives "auto" SIP secrets: HMAC(secret_key, extension)
    sip_port: int = 5060
    sip_bind: str = "0.0.0.0"  # noqa: S104 (SIP must reach the phones and the carrier: all IPv4 addresses unless set)
    local_net: tuple[str, ...] = ()  # e.g. ("192.168.1.0/24",): NAT settings on the transport
    external_address: str = ""  # the public address when behind NAT
    phones: tuple[Phone, ...] = ()
    ring_groups: tuple[RingGroup, ...] = ()
    trunks: tuple[Trunk, ...] = ()
    templates_dir: Path = field(default_factory=lambda: DEFAULT_TEMPLATES_DIR)  # where Trunk.template files are


# ---------------------------------------------------------------------------------------------------------------------
# YAML: the `pbx:` section, read with the shared Reader so every problem names its file, line and key path.

MIN_SECRET_KEY_CHARS = 32
MIN_SIP_SECRET_CHARS = 12
MAX_PERSON_CHARS = 60  # a name or a role ("Dr. Alvarez", "front desk"), shown on the devices page

_PBX_KEYS = (
    "asterisk_version",
    "secret_key",
    "sip_port",
    "sip_bind",
    "local_net",
    "external_address",
    "templates_dir",
    "phones",
    "ring_groups",
    "trunks",
)
_PHONE_KEYS = ("extension", "name", "business", "secret", "voicemail", "person", "location", "outbound",
               "max_outbound_calls", "push")  # fmt: skip
_OUTBOUND_KEYS = ("international", "premium")
MAX_LOCATION_CHARS = 120  # a street address with suite and floor; the dispatcher reads it, keep it on one line
# Letters, digits and the punctuation of addresses; nothing Asterisk reads as syntax (`;`, `$`, brackets, `\`).
_LOCATION = re.compile(r"[\w ,.#/'&:+-]+")
_RING_GROUP_KEYS = ("number", "members", "strategy", "ring_seconds", "total_seconds", "no_answer", "routing")
_NO_ANSWER_KEYS = ("action", "extension", "number")
_TRUNK_KEYS = ("name", "template", "fields", "dids")

_EXTENSION = re.compile(r"\d{2,6}")
_PJSIP_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TEMPLATE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SECRET_FIELD = re.compile(r"PASSWORD|SECRET", re.IGNORECASE)
# Endpoint names render must never write: `anonymous` is the endpoint PJSIP hands every unidentified request to (a
# guest), `global` and `transport-udp` are sections render writes itself.
RESERVED_TRUNK_NAMES = ("anonymous", "global", "transport-udp")
AUTO_SECRET = "auto"  # noqa: S105 (the word that asks for a derived secret, not a secret)
_MAKE_ONE = "`callbuddy-pbx secrets` prints strong ones"


class BusinessLike(Protocol):
    """What the PBX section needs of a configured business (config.Business)."""

    @property
    def name(self) -> str: ...

    @property
    def numbers(self) -> tuple[str, ...]: ...

    @property
    def default_region(self) -> str: ...


def template_fields(path: Path) -> tuple[str, ...]:
    """The placeholders a trunk template declares in its `; fields: NAME1 NAME2=default ...` header line(s)."""
    return read_template_header(path).fields


def public_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address when `host` is an IP literal reachable from the internet (not loopback, private, link-local)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None  # a host name: not resolved while reading the configuration
    return address if address.is_global else None


class PbxReader:
    """Reads `pbx:` with a Reader (whose problem list it adds to), after the businesses it refers to."""

    def __init__(self, reader: Reader, businesses: Sequence[BusinessLike], default_region: str) -> None:
        self.r = reader
        self._businesses = {business.name: business for business in businesses}
        self._owners = {number: business.name for business in businesses for number in business.numbers}
        regions = [default_region, *(business.default_region for business in businesses)]
        self._regions = tuple(dict.fromkeys(regions))  # tried in order to read a number written nationally
        self._default_region = default_region
        # For the `ari:` section, read after this one: whether a key was written (a wrong one is reported here,
        # once), and the first `routing: callbuddy` (node, key path), which needs an ARI password.
        self.secret_key_given = False
        self.callbuddy_routing: tuple[yaml.Node, str] | None = None
        self._without_plan: set[str] = set()  # businesses whose region has no numbering plan, already reported

    def pbx(self, node: yaml.Node, base_dir: Path) -> PbxConfig:
        section = self.r.mapping(node, "pbx", _PBX_KEYS)
        if not section:
            return PbxConfig()
        base = PbxConfig()
        self.secret_key_given = "secret_key" in section
        version = self._version(section["asterisk_version"]) if "asterisk_version" in section else None
        secret_key = self._secret_key(section["secret_key"]) if "secret_key" in section else ""
        sip_port = self.r.integer(section["sip_port"], "pbx.sip_port", 1, 65535) if "sip_port" in section else None
        sip_bind = self._sip_bind(section["sip_bind"]) if "sip_bind" in section else None
        local_net = self._local_net(section["local_net"]) if "local_net" in section else ()
        external = self._external_address(section["external_address"]) if "external_address" in section else ""
        templates_dir: Path | None = base.templates_dir
        if "templates_dir" in section:  # when wrong, trunks' templates are not checked (it is reported once)
            templates_dir = self._templates_dir(section["templates_dir"], base_dir)
        phones: tuple[Phone, ...] = ()
        if "phones" in section:
            # A short or unset key is reported once, on secret_key itself, not again on every `auto` phone.
            phones = self._phones(section["phones"], "secret_key" in section)
        ring_groups = self._ring_groups(section["ring_groups"], phones) if "ring_groups" in section else ()
        trunks: tuple[Trunk, ...] = ()
        if "trunks" in section:
            trunks = self._trunks(section["trunks"], templates_dir, "templates_dir" in section, phones)
        return PbxConfig(
            asterisk_version=version or base.asterisk_version,
            secret_key=secret_key or "",
            sip_port=sip_port or base.sip_port,
            sip_bind=sip_bind or base.sip_bind,
            local_net=local_net,
            external_address=external,
            phones=phones,
            ring_groups=ring_groups,
            trunks=trunks,
            templates_dir=templates_dir or base.templates_dir,
        )

    # -- settings ------------------------------------------------------------------------------------------------------

    def _version(self, node: yaml.Node) -> int | None:
        value = self.r.integer(node, "pbx.asterisk_version", 1, 999)
        if value is not None and value not in ASTERISK_VERSIONS:
            supported = " or ".join(str(version) for version in ASTERISK_VERSIONS)
            self.r.problem(node, "pbx.asterisk_version", f"Asterisk {value} is not supported (expected {supported})")
            return None
        return value

    def _secret_key(self, node: yaml.Node) -> str | None:
        value = self.r.secret(node, "pbx.secret_key", "a secret key of at least 32 characters")
        if value is not None and len(value) < MIN_SECRET_KEY_CHARS:
            self.r.problem(
                node, "pbx.secret_key", f"too short: use at least {MIN_SECRET_KEY_CHARS} characters ({_MAKE_ONE})"
            )
            return None
        return value

    def _sip_bind(self, node: yaml.Node) -> str | None:
        value = self.r.non_empty(node, "pbx.sip_bind", "the IP address the SIP transport listens on")
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            expected = "expected one of this host's IP addresses, e.g. 192.168.1.10, or 0.0.0.0 for all"
            self.r.problem(node, "pbx.sip_bind", f"{shown(value)} is not an IP address ({expected})")
            return None

    def _local_net(self, node: yaml.Node) -> tuple[str, ...]:
        networks: list[str] = []
        for item, path in self.r.items(node, "pbx.local_net") or ():
            value = self.r.non_empty(item, path, "a network such as 192.168.1.0/24")
            if value is None:
                continue
            try:
                network = ipaddress.ip_network(value) if "/" in value else None
            except ValueError:
                try:
                    network = ipaddress.ip_network(value, strict=False)
                except ValueError:
                    network = None
                else:
                    self.r.problem(item, path, f"{shown(value)} has host bits set (did you mean {str(network)!r}?)")
                    continue
            if network is None:
                self.r.problem(item, path, f"{shown(value)} is not a network (expected e.g. 192.168.1.0/24)")
                continue
            networks.append(str(network))
        return tuple(networks)

    def _external_address(self, node: yaml.Node) -> str:
        value = self.r.non_empty(node, "pbx.external_address", "the public IP address or host name")
        if value is None:
            return ""
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
        if is_host_name(value):
            return value
        self.r.problem(
            node,
            "pbx.external_address",
            f"{shown(value)} is not an IP address or host name (expected e.g. 203.0.113.10)",
        )
        return ""

    def _templates_dir(self, node: yaml.Node, base_dir: Path) -> Path | None:
        value = self.r.non_empty(node, "pbx.templates_dir", "a folder of SIP trunk templates")
        if value is None:
            return None
        folder = base_dir / Path(value).expanduser()  # an absolute path stays as it is
        if not folder.is_dir():
            self.r.problem(node, "pbx.templates_dir", f"{shown(value)} is not a folder")
            return None
        return folder

    # -- phones --------------------------------------------------------------------------------------------------------

    def _phones(self, node: yaml.Node, has_secret_key: bool) -> tuple[Phone, ...]:
        if is_null(node):
            return ()
        phones: list[Phone] = []
        lines: dict[str, int] = {}
        for entry, path in self.r.items(node, "pbx.phones") or ():
            section = self.r.mapping(entry, path, _PHONE_KEYS)
            if section is None:
                continue
            extension = self._required(entry, section, path, "extension", "an extension of 2 to 6 digits")
            if extension is not None:
                extension = self._extension(section["extension"], f"{path}.extension")
            if extension is not None:
                if extension in lines:
                    self.r.problem(
                        section["extension"],
                        f"{path}.extension",
                        f"{extension} is already used (line {lines[extension]})",
                    )
                    extension = None
                else:
                    lines[extension] = line_of(section["extension"])
            name = self._required(entry, section, path, "name", "a name shown to callers")
            business = self._required(entry, section, path, "business", "the name of the business it belongs to")
            if business is not None:
                business = self._business(section["business"], f"{path}.business", business)
            secret = self._phone_secret(entry, section, path, has_secret_key)
            voicemail = True
            if "voicemail" in section:
                voicemail = self.r.boolean(section["voicemail"], f"{path}.voicemail") is not False
            if voicemail and not has_secret_key and secret not in (AUTO_SECRET, None):
                self._mailbox_needs_key(entry, section, path)
            # A wrong person is reported; the phone is kept so its ring groups are not reported as well.
            person = self._person(section["person"], f"{path}.person") if "person" in section else ""
            if extension is not None and business is not None:
                extension = self._dialling(section, path, extension, business)
            calling = self._calling(section, path)
            if extension is not None and name is not None and business is not None and secret is not None:
                push = "push" in section and self.r.boolean(section["push"], f"{path}.push") is True
                phones.append(Phone(extension, name, business, secret, voicemail, person or "", *calling, push=push))
        return tuple(phones)

    # -- what a phone may dial (config/dialing.py) ---------------------------------------------------------------------

    def _dialling(self, section: dict[str, yaml.Node], path: str, extension: str, business: str) -> str | None:
        """The extension, unless it is an emergency number (which every phone must reach) or its business's region
        has no numbering plan (reported on `business`; the phone is kept)."""
        region = self._businesses[business].default_region
        if plan_for(region) is None and business not in self._without_plan:
            self._without_plan.add(business)  # said once, on its first phone
            known = ", ".join(sorted(PLANS))
            self.r.problem(
                section["business"],
                f"{path}.business",
                f"{business!r} is in region {region}, which has no numbering plan for calls out (known: {known})",
            )
        plans = [plan_for(other.default_region) for other in self._businesses.values()]
        emergency = {number for plan in plans if plan is not None for number in plan.emergency}
        if extension in emergency:
            self.r.problem(
                section["extension"], f"{path}.extension", f"{extension} is an emergency number: use another extension"
            )
            return None
        return extension

    def _calling(self, section: dict[str, yaml.Node], path: str) -> tuple[str, Outbound, int]:
        """(location, outbound, max_outbound_calls); a wrong value is reported and its default kept."""
        location = self._location(section["location"], f"{path}.location") if "location" in section else ""
        outbound = self._outbound(section["outbound"], f"{path}.outbound") if "outbound" in section else Outbound()
        limit: int | None = DEFAULT_MAX_OUTBOUND_CALLS
        if "max_outbound_calls" in section:
            limit = self.r.integer(section["max_outbound_calls"], f"{path}.max_outbound_calls", 1, 30)
        return location or "", outbound, limit or DEFAULT_MAX_OUTBOUND_CALLS

    def _location(self, node: yaml.Node, path: str) -> str | None:
        value = self.r.non_empty(node, path, "the phone's address for emergency calls (street, suite, city)")
        if value is None:
            return None
        value = " ".join(value.split())
        if len(value) > MAX_LOCATION_CHARS:
            self.r.problem(node, path, f"too long: at most {MAX_LOCATION_CHARS} characters ({len(value)} given)")
            return None
        if not _LOCATION.fullmatch(value):
            allowed = "letters, digits, spaces and , . # / ' & : + -"
            self.r.problem(node, path, f"{shown(value)}: use only {allowed} (one line, e.g. Suite 4, 12 Main St)")
            return None
        return value

    def _outbound(self, node: yaml.Node, path: str) -> Outbound:
        section = self.r.mapping(node, path, _OUTBOUND_KEYS)
        if not section:
            return Outbound()
        allowed = {key: self.r.boolean(section[key], f"{path}.{key}") for key in _OUTBOUND_KEYS if key in section}
        return Outbound(allowed.get("international"), allowed.get("premium"))

    def _mailbox_needs_key(self, entry: yaml.Node, section: dict[str, yaml.Node], path: str) -> None:
        """Voicemail PINs are always derived from the key (an `auto` secret without one is reported already)."""
        self.r.problem(
            section.get("voicemail", entry),
            f"{path}.voicemail" if "voicemail" in section else path,
            f"a mailbox needs pbx.secret_key for its voicemail PIN (at least {MIN_SECRET_KEY_CHARS} characters; "
            f"{_MAKE_ONE}), or set voicemail: false",
        )

    def _required(self, entry: yaml.Node, section: dict[str, yaml.Node], path: str, key: str, what: str) -> str | None:
        if key not in section:
            self.r.problem(entry, path, f"missing required key {key!r} ({what})")
            return None
        return self.r.non_empty(section[key], f"{path}.{key}", what)

    def _extension(self, node: yaml.Node, path: str) -> str | None:
        value = self.r.non_empty(node, path, "an extension of 2 to 6 digits")
        if value is not None and not _EXTENSION.fullmatch(value):
            self.r.problem(node, path, f'{shown(value)} is not an extension (expected 2 to 6 digits, e.g. "100")')
            return None
        return value

    def _person(self, node: yaml.Node, path: str) -> str | None:
        """Who uses the phone: free text on one line, spaces collapsed (so "Ana  Ruiz" and "Ana Ruiz" are one)."""
        value = self.r.non_empty(node, path, "the name of the person who uses the phone")
        if value is None:
            return None
        if not value.isprintable():  # line breaks, tabs, control characters
            self.r.problem(node, path, "expected one line of printable text (a name such as Ana Ruiz)")
            return None
        value = " ".join(value.split())
        if len(value) > MAX_PERSON_CHARS:
            self.r.problem(node, path, f"too long: at most {MAX_PERSON_CHARS} characters ({len(value)} given)")
            return None
        return value

    def _business(self, node: yaml.Node, path: str, name: str) -> str | None:
        if name in self._businesses:
            return name
        if not self._businesses:
            self.r.problem(node, path, f"no business named {name!r} (no businesses are configured)")
        else:
            self.r.problem(node, path, f"no business named {name!r} ({did_you_mean(name, list(self._businesses))})")
        return None

    def _phone_secret(
        self, entry: yaml.Node, section: dict[str, yaml.Node], path: str, has_secret_key: bool
    ) -> str | None:
        where, key_path = entry, path
        secret = AUTO_SECRET
        if "secret" in section:
            where, key_path = section["secret"], f"{path}.secret"
            value = self.r.secret(where, key_path, f"{AUTO_SECRET!r} or a SIP password")
            if value is None:
                return None
            secret = value
        if secret == AUTO_SECRET:
            if not has_secret_key:
                self.r.problem(
                    where,
                    key_path,
                    f"secret 'auto' needs pbx.secret_key (at least {MIN_SECRET_KEY_CHARS} characters; {_MAKE_ONE})",
                )
            return secret
        if len(secret) < MIN_SIP_SECRET_CHARS or any(char in "\r\n" for char in secret):
            self.r.problem(
                where,
                key_path,
                f"expected 'auto' or a password of at least {MIN_SIP_SECRET_CHARS} characters on one line "
                f"({_MAKE_ONE})",
            )
            return None
        return secret

    # -- ring groups ---------------------------------------------------------------------------------------------------

    def _number(self, node: yaml.Node, path: str) -> tuple[str, str | None] | None:
        """(E.164, owning business or None) of a number; the regions of the businesses are tried in turn."""
        raw = self.r.text(node, path)
        if raw is None:
            return None
        numbers = [number for region in self._regions if (number := to_e164(raw, region)) is not None]
        if not numbers:
            expected = f"expected e.g. +15550001000 or a number valid in region {self._default_region}"
            self.r.problem(node, path, f"{shown(raw)} is not a phone number ({expected})")
            return None
        owned = next((number for number in numbers if number in self._owners), None)
        if owned is None:
            return numbers[0], None
        return owned, self._owners[owned]

    def _ring_groups(self, node: yaml.Node, phones: Sequence[Phone]) -> tuple[RingGroup, ...]:
        if is_null(node):
            return ()
        extensions = {phone.extension: phone for phone in phones}
        groups: list[RingGroup] = []
        lines: dict[str, int] = {}
        for entry, path in self.r.items(node, "pbx.ring_groups") or ():
            section = self.r.mapping(entry, path, _RING_GROUP_KEYS)
            if section is None:
                continue
            number: str | None = None
            business = ""
            if "number" not in section:
                self.r.problem(entry, path, "missing required key 'number' (the business number it answers)")
            else:
                found = self._number(section["number"], f"{path}.number")
                if found is not None and found[1] is None:
                    self.r.problem(
                        section["number"], f"{path}.number", f"{found[0]} is not a number of any configured business"
                    )
                elif found is not None and found[0] in lines:
                    self.r.problem(
                        section["number"],
                        f"{path}.number",
                        f"{found[0]} already has a ring group (line {lines[found[0]]})",
                    )
                elif found is not None:
                    number, business = found[0], found[1] or ""
                    lines[number] = line_of(section["number"])
            members = self._members(entry, section, path, extensions)
            routing: str | None = ROUTINGS[0]
            if "routing" in section:
                routing = self.r.choice(section["routing"], f"{path}.routing", ROUTINGS, upper=False)
                if routing == "callbuddy" and self.callbuddy_routing is None:
                    self.callbuddy_routing = (section["routing"], f"{path}.routing")
            strategy: str | None = RING_STRATEGIES[0]
            if "strategy" in section:
                strategy = self.r.choice(section["strategy"], f"{path}.strategy", RING_STRATEGIES, upper=False)
                if strategy in CALLBUDDY_ONLY_STRATEGIES and routing == "dialplan":
                    self.r.problem(
                        section["strategy"],
                        f"{path}.strategy",
                        f"{strategy!r} needs routing: callbuddy (only the service knows which phone was active "
                        "last; with routing: dialplan use ring_all or in_order)",
                    )
                    strategy = None
            ring_s: int | None = 20
            if "ring_seconds" in section:
                ring_s = self.r.integer(section["ring_seconds"], f"{path}.ring_seconds", 5, 300)
            total_s: int | None = max(60, ring_s or 0)
            if "total_seconds" in section:
                total_s = self.r.integer(section["total_seconds"], f"{path}.total_seconds", 5, 3600)
                if total_s is not None and ring_s is not None and total_s < ring_s:
                    self.r.problem(
                        section["total_seconds"],
                        f"{path}.total_seconds",
                        f"{total_s} is less than ring_seconds ({ring_s})",
                    )
                    total_s = None
            no_answer: NoAnswer | None = NoAnswer()
            if "no_answer" in section:
                no_answer = self._no_answer(section["no_answer"], f"{path}.no_answer", extensions)
            if number is None or members is None or strategy is None or ring_s is None or total_s is None:
                continue
            if no_answer is None or routing is None:
                continue
            groups.append(
                RingGroup(number, members, strategy, ring_s, total_s, no_answer, business=business, routing=routing)
            )
        return tuple(groups)

    def _members(
        self, entry: yaml.Node, section: dict[str, yaml.Node], path: str, extensions: dict[str, Phone]
    ) -> tuple[str, ...] | None:
        if "members" not in section:
            self.r.problem(entry, path, "missing required key 'members' (the extensions it rings)")
            return None
        items = self.r.items(section["members"], f"{path}.members")
        if items is None:
            return None
        if not items:
            self.r.problem(section["members"], f"{path}.members", "expected at least one extension")
            return None
        members: list[str] = []
        ok = True
        for item, item_path in items:
            value = self._extension(item, item_path)
            if value is None:
                ok = False
            elif value in members:
                self.r.problem(item, item_path, f"{value} is listed twice")
                ok = False
            elif value not in extensions:
                self.r.problem(item, item_path, f"{value} is not a phone's extension (see pbx.phones)")
                ok = False
            else:
                members.append(value)
        return tuple(members) if ok else None

    def _no_answer(self, node: yaml.Node, path: str, extensions: dict[str, Phone]) -> NoAnswer | None:
        section = self.r.mapping(node, path, _NO_ANSWER_KEYS)
        if section is None:
            return None
        if "action" not in section:
            self.r.problem(node, path, f"missing required key 'action' (one of {', '.join(NO_ANSWER_ACTIONS)})")
            return None
        action = self.r.choice(section["action"], f"{path}.action", NO_ANSWER_ACTIONS, upper=False)
        if action is None:
            return None
        needs = {"voicemail": "extension", "forward": "number"}.get(action)
        for key in ("extension", "number"):
            if key in section and key != needs:
                self.r.problem(section[key], f"{path}.{key}", f"not used with action {action!r}")
                return None
        if needs is not None and needs not in section:
            what = "whose mailbox takes the message" if needs == "extension" else "where calls are forwarded, E.164"
            self.r.problem(node, path, f"action {action!r} needs key {needs!r} ({what})")
            return None
        if action == "voicemail":
            extension = self._extension(section["extension"], f"{path}.extension")
            if extension is None:
                return None
            phone = extensions.get(extension)
            if phone is None:
                self.r.problem(
                    section["extension"],
                    f"{path}.extension",
                    f"{extension} is not a phone's extension (see pbx.phones)",
                )
                return None
            if not phone.voicemail:
                self.r.problem(section["extension"], f"{path}.extension", f"{extension} has voicemail: false")
                return None
            return NoAnswer(action, extension=extension)
        if action == "forward":
            found = self._number(section["number"], f"{path}.number")
            return None if found is None else NoAnswer(action, number=found[0])
        return NoAnswer(action)

    # -- trunks --------------------------------------------------------------------------------------------------------

    def _trunks(
        self, node: yaml.Node, templates_dir: Path | None, overridden: bool, phones: Sequence[Phone]
    ) -> tuple[Trunk, ...]:
        if is_null(node):
            return ()
        extensions = {phone.extension for phone in phones}
        trunks: list[Trunk] = []
        names: dict[str, int] = {}
        dids: dict[str, int] = {}
        for entry, path in self.r.items(node, "pbx.trunks") or ():
            section = self.r.mapping(entry, path, _TRUNK_KEYS)
            if section is None:
                continue
            name = self._required(entry, section, path, "name", "a PJSIP endpoint name such as trunk")
            if name is not None:
                name = self._trunk_name(section["name"], f"{path}.name", name, names, extensions)
            template: str | None = None
            declared: TemplateHeader | None = None
            if "template" not in section:
                self.r.problem(entry, path, "missing required key 'template' (a file name in the templates folder)")
            elif templates_dir is not None:
                found = self._template(section["template"], f"{path}.template", templates_dir, overridden)
                if found is not None:
                    template, declared = found
            fields: tuple[tuple[str, str], ...] | None = None
            if template is not None and declared is not None:
                where = key_node(entry, "fields") or entry
                given = section.get("fields", yaml.ScalarNode(NULL, ""))
                fields = self._fields(given, where, f"{path}.fields", template, declared)
            trunk_dids = self._dids(section["dids"], f"{path}.dids", dids) if "dids" in section else ()
            if name is not None and template is not None and fields is not None and trunk_dids is not None:
                trunks.append(Trunk(name, template, fields, trunk_dids))
        return tuple(trunks)

    def _trunk_name(
        self, node: yaml.Node, path: str, name: str, names: dict[str, int], extensions: set[str]
    ) -> str | None:
        if not _PJSIP_NAME.fullmatch(name):
            self.r.problem(node, path, f"{shown(name)} is not a PJSIP name (use letters, digits, - and _)")
            return None
        if name.lower() in RESERVED_TRUNK_NAMES:
            self.r.problem(node, path, f"{name!r} is reserved (PJSIP or render uses it): choose another name")
            return None
        if name in names:
            self.r.problem(node, path, f"{name!r} is already used (line {names[name]})")
            return None
        if name in extensions:
            self.r.problem(node, path, f"{name!r} is also a phone's extension (PJSIP endpoint names must differ)")
            return None
        names[name] = line_of(node)
        return name

    def _template(
        self, node: yaml.Node, path: str, folder: Path, overridden: bool
    ) -> tuple[str, TemplateHeader] | None:
        stem = self.r.non_empty(node, path, "a template name from the templates folder")
        if stem is None:
            return None
        stem = stem.removesuffix(".conf")
        where = "pbx.templates_dir" if overridden else "sip_trunks/"
        if not folder.is_dir():
            self.r.problem(node, path, f"the templates folder {where} is missing ({folder})")
            return None
        available = sorted(file.stem for file in folder.glob("*.conf"))
        file = folder / f"{stem}.conf"
        if not _TEMPLATE_STEM.fullmatch(stem) or not file.is_file():
            hint = did_you_mean(stem, available) if available else "the folder has no .conf templates"
            self.r.problem(node, path, f"no template {shown(stem)} in {where} ({hint})")
            return None
        try:
            return stem, read_template_header(file)
        except (OSError, UnicodeDecodeError) as exc:
            self.r.problem(node, path, f"cannot read template {file}: {exc}")
        except TemplateHeaderError as exc:
            self.r.problem(node, path, f"template {file} has a broken header: {exc}")
        return None

    def _fields(
        self, node: yaml.Node, where: yaml.Node, path: str, template: str, header: TemplateHeader
    ) -> tuple[tuple[str, str], ...] | None:
        """The template's placeholders → values (optional ones from their defaults); `where` is the node a missing
        field is reported on."""
        declared = header.fields
        if is_null(node):
            pairs = []
        elif isinstance(node, yaml.MappingNode):
            pairs = self.r.pairs(node, path)
        else:
            self.r.problem(node, path, f"expected a mapping of template fields to values, got {kind_of(node)}")
            return None
        values: dict[str, str] = {}
        suggested: set[str] = set()  # a misspelt field is not reported missing as well
        ok = True
        for key, key_at, value_node in pairs:
            field_path = join(path, key)
            if key not in declared:
                hint = did_you_mean(key, declared) if declared else f"template {template!r} declares no fields"
                suggested.update(difflib.get_close_matches(key, declared, n=1, cutoff=0.6))
                self.r.problem(key_at, field_path, f"unknown field ({hint})")
                ok = False
                continue
            value = self._field_value(value_node, field_path, key, header)
            if value is None:
                ok = False
                continue
            values[key] = value
        given = {key for key, _, _ in pairs} | suggested
        missing = [name for name in declared if name not in given and header.default(name) is None]
        if missing:
            said = ", ".join(missing)
            self.r.problem(
                where, path, f"template {template!r} needs {'field' if len(missing) == 1 else 'fields'} {said}"
            )
            ok = False
        return tuple(with_defaults(header, values).items()) if ok else None

    def _field_value(self, node: yaml.Node, path: str, key: str, header: TemplateHeader) -> str | None:
        """One field's value: on one line; a password long enough; a host bare (its port in the port field)."""
        secret = bool(_SECRET_FIELD.search(key))
        value = self.r.text(node, path, secret=secret)
        if value is None:
            return None
        port_field = header.port_field(key)
        if "\n" in value or "\r" in value:
            problem: str | None = "the value must be on one line (it contains a line break)"
        elif secret and len(value) < MIN_SIP_SECRET_CHARS:
            problem = f"too short: use at least {MIN_SIP_SECRET_CHARS} characters ({_MAKE_ONE})"
        elif port_field is not None:
            problem = host_problem(value, port_field)
            problem = problem and f"{shown(value)} {problem}"
        elif key in header.port_fields:
            problem = port_problem(value)
            problem = problem and f"{shown(value)} {problem}"
        else:
            problem = None
        if problem:
            self.r.problem(node, path, problem)
            return None
        return value

    def _dids(self, node: yaml.Node, path: str, seen: dict[str, int]) -> tuple[str, ...] | None:
        items = self.r.items(node, path)
        if items is None:
            return None
        numbers: list[str] = []
        ok = True
        for item, item_path in items:
            found = self._number(item, item_path)
            if found is None:
                ok = False
                continue
            number, owner = found
            if number in seen:
                self.r.problem(item, item_path, f"{number} is already a DID of a trunk (line {seen[number]})")
                ok = False
            elif owner is None:
                self.r.problem(item, item_path, f"{number} is not a number of any configured business")
                ok = False
            else:
                seen[number] = line_of(item)
                numbers.append(number)
        return tuple(numbers) if ok else None
