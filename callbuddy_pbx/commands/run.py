"""`callbuddy-pbx run --config F`: the service, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from callbuddy_pbx.commands.options import version
from callbuddy_pbx.commands.storage import open_configured
from callbuddy_pbx.config import Config, load_config
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.service.alerts import AlertMonitor
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.digest import DigestScheduler
from callbuddy_pbx.service.healthz import service_health
from callbuddy_pbx.service.leadership import SharedLinks, election
from callbuddy_pbx.service.logs import setup_logging
from callbuddy_pbx.service.metrics import Metrics, store_backlog
from callbuddy_pbx.service.node_link import attach_routing
from callbuddy_pbx.service.notify import Notifier, alert_route
from callbuddy_pbx.service.site import service_site
from callbuddy_pbx.sms.factory import build_gateways
from callbuddy_pbx.store.db import folder_unwritable
from callbuddy_pbx.store.schema import StoreError
from callbuddy_pbx.store.spool import CallSpool
from callbuddy_pbx.web.health import config_secrets
from callbuddy_pbx.web.server import start_web

log = logging.getLogger("callbuddy_pbx")
PROG = "callbuddy-pbx run"
ROUTING_STOP_S = 5.0  # on stop, how long handing calls back to the dialplan may take


async def serve(config: Config) -> None:
    stopped_by: list[str] = []  # the signal that asked the service to stop, for the last line logged
    stopping: list[asyncio.Future[None]] = []  # held: the loop keeps only weak references to tasks
    store = await open_configured(config.storage)
    gateways = build_gateways(config)
    metrics = Metrics()
    metrics.watch_backlog(store_backlog(store))
    text_back = TextBackService(config, store, gateways, metrics=metrics) if gateways else None
    spool_path = config.storage.spool_path
    spool = CallSpool(spool_path) if spool_path is not None else None  # PostgreSQL: calls survive its outages
    service = CallService(config, store, text_back=text_back, metrics=metrics, spool=spool)
    secrets = config_secrets(config)
    # Routing is optional and fails open: if it cannot connect, the dialplan rings the groups itself.
    routing = RoutingService(config, service.devices) if RoutingService.wanted(config) else None
    notifier = Notifier(gateways, secrets=secrets)
    monitor = AlertMonitor(
        config.alerts,
        lambda: service_health(service, gateways, secrets=secrets, ari=routing),
        store,
        notifier,
        route=alert_route(config),
        secrets=secrets,
        push_refused=routing.push_refused if routing is not None else None,
    )
    helpers = ["alerts", "digests"]
    # Alerts come from the instance that follows Asterisk: a standby sees no AMI link, and two would alert twice.
    service.owned.append(("alerts", monitor.run))
    service.first.hold_through.add("alerts")  # they say when the database is away
    service.supervisor.start("digests", DigestScheduler(config, store, notifier).run)
    if routing is not None:  # like the AMI link, only while this instance owns the Asterisk links
        service.owned.append(("routing", routing.run))
        helpers.append("routing")
    other_routing = attach_routing(config, service.nodes)  # servers after the first, with an `ari:` of their own
    helpers += [node.task("routing") for node in service.nodes if node.routing is not None]
    shared = SharedLinks()  # instances started together share the servers' links
    for node in service.nodes:  # on PostgreSQL, one of the instances sharing it owns each server's link
        node.leadership = election(config, node.node, shared)
    app = service_site(config, store, service, gateways, metrics, routing=routing)
    runner: web.AppRunner | None = None
    try:
        runner = await start_web(app, config.web.host, config.web.port)
        log.info("dashboard on http://%s:%d/ (and health, metrics, webhooks, links)", config.web.host, config.web.port)
    except OSError as exc:
        # Calls are still followed and texted; only what needs the web server (receipts by webhook, /healthz,
        # the dashboard, tracked links) is missing, and this says so loudly rather than missing every call.
        log.error("web server could not listen on %s:%d (%s); running without it", config.web.host, config.web.port,
                  exc.strerror)  # fmt: skip
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if not stopped_by:
            log.info("%s received: stopping, calls in progress are judged and stored first", sig.name)
        stopped_by.append(sig.name)
        stopping.append(asyncio.ensure_future(service.stop()))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    for server in config.asterisk_nodes:
        log.info("watching %s at %s:%d as %s", server.shown, server.ami.host, server.ami.port, server.ami.username)
    log.info("calls go to %s", config.storage.shown)
    try:
        await service.run()
    finally:
        for each in [routing, *other_routing]:
            if each is None:
                continue
            try:  # unanswered calls go back to the dialplan while ARI still answers
                await asyncio.wait_for(each.stop(), ROUTING_STOP_S)
            except TimeoutError:
                log.warning("routing did not stop within %g s; calls left in Stasis are Asterisk's now", ROUTING_STOP_S)
        await service.supervisor.stop(*helpers)
        await notifier.close()
        if runner is not None:
            await runner.cleanup()
        await store.close()
        why = f"on {stopped_by[0]}" if stopped_by else "without being asked to (see above)"
        log.info("stopped %s: calls drained to %s, database closed", why, config.storage.shown)


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    problem = storage_problem(config.storage.path) if config.storage.url is None else None
    if problem is not None:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 1
    setup_logging(config.logging.level, config.logging.format, config.logging.library_level)
    log.info(
        "callbuddy-pbx %s starting with %s: %s, database %s",
        version(),
        Path(args.config).absolute(),
        ", ".join(f"{node.shown} AMI at {node.ami.host}:{node.ami.port}" for node in config.asterisk_nodes),
        config.storage.shown,
    )
    # What is loaded by now (modules, the config) lives as long as the process: out of the collector's sight, a full
    # collection no longer walks it (15-25 ms that would otherwise land on calls being routed; bench/routing.py).
    gc.freeze()
    try:
        asyncio.run(serve(config))
    except StoreError as exc:  # the database cannot be opened (PostgreSQL down, a newer schema): one line, exit 1
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0


def storage_problem(database: Path) -> str | None:
    """Why the service could not keep its database at `database` (None: the folder exists, or was made, and a file
    can be written in it): said before starting, rather than a traceback (and a restart loop under systemd)."""
    folder = database.parent
    if folder.exists() and not folder.is_dir():
        return f"cannot write the database folder {folder}: it is a file, not a folder"
    exc = folder_unwritable(folder)
    if exc is not None:
        return f"cannot write the database folder {folder}: {(exc.strerror or str(exc)).lower()}"
    return None
