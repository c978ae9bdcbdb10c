"""The service's HTTP side: a health check and the webhooks gateways call (receipts, inbound texts).

Routes: GET /healthz answers "ok" (unless `extra_routes` adds the real check, web/health.py); GET or POST
/webhooks/{gateway}/status and /webhooks/{gateway}/inbound go to the named gateway's `handle_webhook` (an unknown
gateway is a 404). Request bodies are capped, and the access log never shows query strings: webhook URLs carry
tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from callbuddy_pbx.sms.gateway_webhooks import WEBHOOK_KINDS, WebhookGateway

log = logging.getLogger(__name__)
access_log = logging.getLogger("callbuddy_pbx.web.access")

MAX_BODY_BYTES = 64 * 1024  # gateways' webhooks are a few hundred bytes
GATEWAYS_KEY = web.AppKey("webhook_gateways", Mapping[str, WebhookGateway])


class QuerylessAccessLogger(AbstractAccessLogger):
    """One debug line per request: method, path without its query (tokens), status, duration."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.debug("%s %s %d %.1f ms", request.method, request.path, response.status, time * 1000)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _webhook(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAYS_KEY].get(request.match_info["gateway"])
    if gateway is None:
        return web.Response(status=404, text="unknown gateway")
    return await gateway.handle_webhook(request.match_info["kind"], request)


def create_app(
    *,
    webhook_gateways: Mapping[str, WebhookGateway],
    max_body_bytes: int = MAX_BODY_BYTES,
    extra_routes: Callable[[web.Application], None] | None = None,
) -> web.Application:
    """The web application: /healthz and the webhooks of `webhook_gateways` (by gateway name).

    `extra_routes(app)` adds more routes, /healthz among them (e.g. `health_routes`); without it /healthz is "ok"."""
    app = web.Application(client_max_size=max_body_bytes)
    app[GATEWAYS_KEY] = dict(webhook_gateways)
    if extra_routes is None:
        app.router.add_get("/healthz", _healthz)
    else:
        extra_routes(app)
    path = "/webhooks/{gateway}/{kind:" + "|".join(WEBHOOK_KINDS) + "}"
    app.router.add_get(path, _webhook, allow_head=False)
    app.router.add_post(path, _webhook)
    return app


async def start_web(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve `app` on host:port (port 0: any free port, see `bound_port`); clean up with `await runner.cleanup()`."""
    runner = web.AppRunner(app, access_log=access_log, access_log_class=QuerylessAccessLogger)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("web server listening on %s:%d", host, bound_port(runner))
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the runner listens on (the one chosen when started with port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the web server is not listening")
