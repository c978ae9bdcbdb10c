"""The running service's whole web side in one place: health, metrics, tracked links, webhooks, the JSON API, and
the dashboard behind its login. `run` and `demo` both serve exactly this."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata

from aiohttp import web

from callbuddy_pbx.config import Config, WebUser
from callbuddy_pbx.config.web import LiveUsers
from callbuddy_pbx.recovery.answers import Answers
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.healthz import health_routes, service_health
from callbuddy_pbx.service.metrics import Metrics
from callbuddy_pbx.service.node_link import CallBacksBySite
from callbuddy_pbx.sms.factory import webhook_gateways
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.links import LinkStore
from callbuddy_pbx.web.api import api_routes
from callbuddy_pbx.web.auth import auth_setup
from callbuddy_pbx.web.callback import CALL_BACKS_KEY
from callbuddy_pbx.web.dashboard import dashboard_routes
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.health import HealthStatus, Link, config_secrets
from callbuddy_pbx.web.links import link_routes
from callbuddy_pbx.web.server import create_app


def version() -> str:
    try:
        return metadata.version("callbuddy-pbx")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def service_site(
    config: Config,
    store: CallStore,
    service: CallService,
    gateways: dict[str, SmsGateway],
    metrics: Metrics | None,
    *,
    users: Callable[[], Sequence[WebUser]] | None = None,
    live_poll_s: float = 1.0,
    routing: Link | None = None,
) -> web.Application:
    """The web application of one running service. `users` defaults to the config's (and its users file's);
    `routing`: the routing service's ARI link, when the service routes calls (health reports it)."""
    secrets = config_secrets(config)

    def health() -> HealthStatus:
        return service_health(service, gateways, secrets=secrets, ari=routing)

    context = DashboardContext(
        store=store,
        businesses=config.businesses,
        phones=config.pbx.phones,
        health=health,
        devices=service.devices.snapshot,
        devices_by_site=(lambda: [(node.name, node.devices.snapshot()) for node in service.nodes])
        if len(service.nodes) > 1
        else None,
        ami_last_event_at=lambda: service.last_event_at,
        version=version(),
        live_poll_s=live_poll_s,
    )

    # Answers from a conversation go through the service's own outbox (none without text-back: they are refused).
    text_back = service.text_back
    answers = Answers(config, store, text_back.outbox.wake) if text_back is not None else None

    def routes(app: web.Application) -> None:
        # "Call back" on the dashboard and in the API (web/callback.py), through the business's own server.
        app[CALL_BACKS_KEY] = (
            CallBacksBySite(service.nodes, config.businesses) if len(service.nodes) > 1 else service.call_backs
        )
        health_routes(app, health, metrics)
        link_routes(app, LinkStore(store))
        if config.web.api_tokens:
            api_routes(
                app, store, config.web.api_tokens, devices=service.devices.snapshot, health=health, answers=answers
            )
        auth_setup(
            app,
            store=store,
            users=users or LiveUsers(config.web, [business.name for business in config.businesses]),
            public_url=config.web.public_url,
            secure_cookies=config.web.secure_cookies,
            session_hours=config.web.session_hours,
            trusted_proxies=config.web.trusted_proxies,
        )
        dashboard_routes(app, context, answers)

    return create_app(webhook_gateways=webhook_gateways(gateways), extra_routes=routes)
