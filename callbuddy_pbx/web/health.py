"""What /healthz reports (is the service able to do its job?), as values the dashboard, the API and the alerts read.

The service is healthy only when the AMI link is logged in (and the routing app's ARI link, when it routes calls)
and every configured gateway is up; an instance standing by for another (several on one PostgreSQL) needs no
Asterisk link, only its gateways and the database its election runs on. Gateways are judged from what they expose:
SMPP by `bound` (and `last_error`), a gateway with an `up` property by that, an HTTP gateway by being started with
its last send not failed for network reasons; a gateway exposing nothing is up. Details are bounded, phone numbers
masked, known secrets scrubbed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from callbuddy_pbx.config import Config
from callbuddy_pbx.phone import redact
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.sms.http_common import HttpGateway

log = logging.getLogger(__name__)

MAX_DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class AmiHealth:
    connected: bool
    last_error: str | None = None  # why it is not connected (None while connected)


@dataclass(frozen=True, slots=True)
class GatewayHealth:
    up: bool
    detail: str


@dataclass(frozen=True, slots=True)
class CelHealth:
    """Reading Asterisk's CEL records (only when a CEL source is configured)."""

    readable: bool
    last_error: str | None
    found: int  # calls judged from CEL since start
    held: int  # calls AMI saw in part, waiting for their CEL rows


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """One of several Asterisk servers (asterisk.nodes): its link as this instance sees it."""

    ami: AmiHealth
    cel: CelHealth | None = None
    role: str | None = None  # "owner" or "standby" with several instances; None on a single box
    owner_since: float | None = None
    leadership_problem: str | None = None
    problem: str | None = None  # why its events are not followed (the server is not the one configured)
    ari: AmiHealth | None = None  # its own ARI router's link (a server after the first with `ari:`)

    @property
    def ok(self) -> bool:
        if self.role == "standby":  # another instance follows this server
            return self.leadership_problem is None
        holding = self.role == "holding"  # following on, the database away: calls wait in memory
        links_ok = self.ami.connected and (self.ari is None or self.ari.connected)
        return links_ok and not holding and self.problem is None and (self.cel is None or self.cel.readable)

    def to_json(self) -> dict[str, Any]:
        ami = {"connected": self.ami.connected, "last_error": self.ami.last_error}
        body: dict[str, Any] = {"ok": self.ok, "ami": ami, "problem": self.problem}
        if self.cel is not None:
            body["cel"] = _cel_json(self.cel)
        if self.ari is not None:
            body["ari"] = {"connected": self.ari.connected, "last_error": self.ari.last_error}
        if self.role is not None:
            problem = self.leadership_problem
            body["leadership"] = {"role": self.role, "owner_since": self.owner_since, "problem": problem}
        return body


def _cel_json(cel: CelHealth) -> dict[str, Any]:
    return {"readable": cel.readable, "last_error": cel.last_error, "found": cel.found, "held": cel.held}


@dataclass(frozen=True, slots=True)
class HealthStatus:
    ami: AmiHealth
    gateways: Mapping[str, GatewayHealth] = field(default_factory=dict)
    outbox_backlog: int | None = None
    ari: AmiHealth | None = None  # the routing app's ARI link; None when no number is routed by the service
    tasks_down: Mapping[str, str] = field(default_factory=dict)  # supervised tasks waiting to start again: why
    cel: CelHealth | None = None
    # Why Asterisk refuses call backs (asterisk/callbacks.py), for the installer; None: it does not. Not a failure of
    # /healthz: calls are still followed and texted.
    call_back_problem: str | None = None
    # With several instances on one PostgreSQL: "owner" (runs the Asterisk links) or "standby" (serves the web side
    # and sends texts; its links are the owner's job, so their being down is no failure); None on a single box.
    role: str | None = None
    owner_since: float | None = None  # epoch seconds this instance became the owner
    # Why the election's database cannot be reached: a standby that cannot ask for the lock could not take over.
    leadership_problem: str | None = None
    # With several Asterisk servers: each by name (the fields above are then the first one's, with the router's).
    nodes: Mapping[str, NodeHealth] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        gateways_ok = all(gateway.up for gateway in self.gateways.values())
        nodes_ok = all(node.ok for node in self.nodes.values())
        if self.role == "standby":
            return gateways_ok and nodes_ok and not self.tasks_down and self.leadership_problem is None
        ari_ok = self.ari is None or self.ari.connected
        cel_ok = self.cel is None or self.cel.readable
        links_ok = self.ami.connected and self.role != "holding" and ari_ok and cel_ok
        return links_ok and gateways_ok and nodes_ok and not self.tasks_down

    def to_json(self, backlog: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": self.ok,
            "ami": {"connected": self.ami.connected, "last_error": self.ami.last_error},
            "gateways": {name: {"up": g.up, "detail": g.detail} for name, g in self.gateways.items()},
            "outbox": {"backlog": self.outbox_backlog if backlog is None else backlog},
        }
        if self.ari is not None:
            body["ari"] = {"connected": self.ari.connected, "last_error": self.ari.last_error}
        if self.cel is not None:
            body["cel"] = _cel_json(self.cel)
        body["tasks"] = {"down": dict(self.tasks_down)}
        if self.role is not None:
            body["leadership"] = {
                "role": self.role,
                "owner_since": self.owner_since,
                "problem": self.leadership_problem,
            }
        if self.call_back_problem is not None:
            body["call_back"] = {"problem": self.call_back_problem}
        if self.nodes:
            body["nodes"] = {name: node.to_json() for name, node in self.nodes.items()}
        return body


def safe_detail(text: str, secrets: Iterable[str] = ()) -> str:
    """Text fit for an unauthenticated health page: secrets replaced, phone numbers masked, bounded."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return redact(text)[:MAX_DETAIL_CHARS]


def config_secrets(config: Config) -> tuple[str, ...]:
    """Every credential in the configuration, to scrub from health details."""
    found = [*(node.ami.secret for node in config.asterisk_nodes), config.web.webhook_token]
    found += [token.token for token in config.web.api_tokens]
    for gateway in config.gateways:
        found += [gateway.password, gateway.auth_token, *(value for _, value in gateway.headers)]
    return tuple(secret for secret in found if secret)


def gateway_health(
    gateway: SmsGateway, *, started: bool, network_error: str | None = None, secrets: Iterable[str] = ()
) -> GatewayHealth:
    bound = getattr(gateway, "bound", None)
    if isinstance(bound, bool):  # SMPP
        if bound:
            return GatewayHealth(True, "bound")
        reason = getattr(gateway, "last_error", None) or ("connecting" if started else "not started")
        return GatewayHealth(False, safe_detail(f"not bound: {reason}", secrets))
    up = getattr(gateway, "up", None)
    if isinstance(up, bool):
        return GatewayHealth(up, "up" if up else "down")
    if isinstance(gateway, HttpGateway):
        if not started:
            return GatewayHealth(False, "not started")
        if network_error:
            return GatewayHealth(False, safe_detail(f"last send failed: {network_error}", secrets))
        return GatewayHealth(True, "started")
    return GatewayHealth(True, "no status reported")


class Link(Protocol):
    """A connection whose state health reports (the AMI client, the routing service's ARI link)."""

    @property
    def connected(self) -> bool: ...

    @property
    def last_error(self) -> str: ...


def link_health(link: Link, secrets: Iterable[str] = ()) -> AmiHealth:
    if link.connected:
        return AmiHealth(True)
    return AmiHealth(False, safe_detail(link.last_error or "not connected yet", secrets))
