"""GET /healthz (is the service able to do its job?) and GET /metrics (Prometheus), from the running service's
live objects. /healthz answers 200 only when every part is up, else 503; the JSON body says which part is down."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from aiohttp import web

from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.cel_reconcile import CelReconciler
from callbuddy_pbx.service.metrics import CONTENT_TYPE, Metrics
from callbuddy_pbx.service.node_link import NodeLink
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.web.health import (
    CelHealth,
    HealthStatus,
    Link,
    NodeHealth,
    gateway_health,
    link_health,
    safe_detail,
)


def service_health(
    service: CallService,
    gateways: Mapping[str, SmsGateway],
    *,
    secrets: Iterable[str] = (),
    ari: Link | None = None,
) -> HealthStatus:
    """A snapshot of the live objects (cheap, synchronous: call it per request). `ari`: the routing service, when
    the service routes calls (its link being down fails /healthz: calls still ring, but through the fail-open
    dialplan, and the installer should know)."""
    secrets = tuple(secrets)
    text_back = service.text_back
    started = text_back.gateways_started if text_back is not None else set()
    network_errors = text_back.network_errors if text_back is not None else {}
    cel = service.cel
    leadership = service.leadership
    nodes = {node.name: node_health(node, secrets) for node in service.nodes} if service.first.name else {}
    return HealthStatus(
        link_health(service.ami, secrets),
        {
            name: gateway_health(
                gateway, started=name in started, network_error=network_errors.get(name), secrets=secrets
            )
            for name, gateway in gateways.items()
        },
        outbox_backlog=service.metrics.backlog if service.metrics is not None else None,
        ari=None if ari is None else link_health(ari, secrets),
        tasks_down={name: safe_detail(why, secrets) for name, why in service.supervisor.down().items()},
        cel=None if cel is None else cel_health(cel, secrets),
        call_back_problem=service.call_backs.problem,
        role=leadership.role.value if leadership.elected else None,
        owner_since=leadership.owner_since if leadership.elected else None,
        leadership_problem=None if leadership.problem is None else safe_detail(leadership.problem, secrets),
        nodes=nodes,
    )


def node_health(node: NodeLink, secrets: tuple[str, ...]) -> NodeHealth:
    leadership = node.leadership
    return NodeHealth(
        link_health(node.ami, secrets),
        cel=None if node.cel is None else cel_health(node.cel, secrets),
        role=leadership.role.value if leadership.elected else None,
        owner_since=leadership.owner_since if leadership.elected else None,
        leadership_problem=None if leadership.problem is None else safe_detail(leadership.problem, secrets),
        problem=None if node.problem is None else safe_detail(node.problem, secrets),
        ari=None if node.routing is None else link_health(node.routing, secrets),
    )


def cel_health(cel: CelReconciler, secrets: tuple[str, ...]) -> CelHealth:
    return CelHealth(
        readable=cel.last_error is None,
        last_error=None if cel.last_error is None else safe_detail(cel.last_error, secrets),
        found=cel.found,
        held=cel.held,
    )


def health_routes(app: web.Application, status: Callable[[], HealthStatus], metrics: Metrics | None) -> None:
    """Add GET /healthz (and GET /metrics when `metrics` is given) to `app`."""

    async def refresh(current: HealthStatus) -> int | None:
        if metrics is None:
            return current.outbox_backlog
        metrics.set_gateways_up({name: gateway.up for name, gateway in current.gateways.items()})
        return await metrics.refresh()

    async def healthz(request: web.Request) -> web.Response:
        current = status()
        backlog = await refresh(current)
        return web.json_response(current.to_json(backlog), status=200 if current.ok else 503)

    async def scrape(request: web.Request) -> web.Response:
        await refresh(status())
        assert metrics is not None
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/healthz", healthz)
    if metrics is not None:
        app.router.add_get("/metrics", scrape)
