"""The service's HTTP side: a health check and the webhooks gateways call (receipts, inbound texts).

Routes: GET /healthz answers "ok" (unless `extra_routes` adds the real check, service/healthz.py); GET or POST
/webhooks/{gateway}/status and /webhooks/{gateway}/inbound go to the named gateway's `handle_webhook` (an unknown
gateway is a 404). Request bodies are capped before and after decompression (413), and the access log never shows
query strings: webhook URLs carry tokens. A request aiohttp cannot parse is answered 400 by aiohttp and logged as one
WARNING line without traceback (`BadRequestRecords`).
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable, Mapping

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from callbuddy_pbx.sms.gateway_webhooks import WEBHOOK_KINDS, WebhookGateway
from callbuddy_pbx.untrusted import printable

log = logging.getLogger(__name__)
access_log = logging.getLogger("callbuddy_pbx.web.access")

MAX_BODY_BYTES = 64 * 1024  # gateways' webhooks are a few hundred bytes
GATEWAYS_KEY = web.AppKey("webhook_gateways", Mapping[str, WebhookGateway])
BODY_LIMIT_KEY = web.AppKey("webhook_body_limit", int)
AIOHTTP_SERVER_LOGGERS = ("aiohttp.server", "aiohttp.web_protocol")  # where aiohttp logs requests it cannot parse
MAX_PROBLEM_CHARS = 240
_QUOTED = re.compile(r"""\s*(?:bytearray\(|b?['"])""")  # where aiohttp starts quoting what the client sent


class BadRequestRecords(logging.Filter):
    """aiohttp logs a request it cannot parse (a request line over 8190 bytes, a Content-Encoding it has no codec
    for, a deflate body that ends early, a bad header) at ERROR with a traceback, though it only answers 400: anyone
    could fill the log with tracebacks. On aiohttp's server loggers, a record whose exception is aiohttp's
    `HttpProcessingError` (the client's fault) becomes one escaped WARNING line (or stays at its lower level)
    without traceback, quoting none of the request (its first line can carry a webhook token). Any other record (a
    500: our bug) keeps its level and traceback. Set on the loggers themselves, not a handler, so it holds for
    every handler: the service's and a test's."""

    def filter(self, record: logging.LogRecord) -> bool:
        problem = record.exc_info[1] if record.exc_info else None
        if not isinstance(problem, HttpProcessingError):
            return True
        said = _QUOTED.split(problem.message, maxsplit=1)[0].rstrip(" :.") if problem.message else ""
        summary = f"{record.getMessage()}: {problem.code} {type(problem).__name__}" + (f": {said}" if said else "")
        record.msg, record.args = printable(" ".join(summary.split()), MAX_PROBLEM_CHARS), None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def quiet_bad_requests() -> None:
    """Put `BadRequestRecords` on aiohttp's server loggers (once, however often it is called)."""
    for name in AIOHTTP_SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, BadRequestRecords) for existing in logger.filters):
            logger.addFilter(BadRequestRecords())


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
    refused = await _read_bounded_body(request)
    if refused is not None:
        return refused
    return await gateway.handle_webhook(request.match_info["kind"], request)


async def _read_bounded_body(request: web.Request) -> web.Response | None:
    """Read the whole body before any gateway sees it, bounded on the wire (Content-Length) and after decompression
    (aiohttp stops reading past client_max_size): too large is 413, undecodable is 400, and nothing is logged of it.
    The body is kept on the request, so the gateway's own parsing reads it from memory."""
    limit = request.app[BODY_LIMIT_KEY]
    if request.content_length is not None and request.content_length > limit:
        return web.Response(status=413, text=f"body over {limit} bytes")
    try:
        await request.read()
    except web.HTTPRequestEntityTooLarge:
        return web.Response(status=413, text=f"body over {limit} bytes")
    except (RequestPayloadError, ContentEncodingError, zlib.error):
        return web.Response(status=400, text="body could not be decoded")
    return None


def create_app(
    *,
    webhook_gateways: Mapping[str, WebhookGateway],
    max_body_bytes: int = MAX_BODY_BYTES,
    extra_routes: Callable[[web.Application], None] | None = None,
) -> web.Application:
    """The web application: /healthz and the webhooks of `webhook_gateways` (by gateway name).

    `extra_routes(app)` adds more routes, /healthz among them (e.g. `health_routes`); without it /healthz is "ok"."""
    quiet_bad_requests()
    app = web.Application(client_max_size=max_body_bytes)
    app[GATEWAYS_KEY] = dict(webhook_gateways)
    app[BODY_LIMIT_KEY] = max_body_bytes
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
