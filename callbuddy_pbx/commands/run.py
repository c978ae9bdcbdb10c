"""`callbuddy-pbx run --config F`: the service, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from callbuddy_pbx.app import CallService
from callbuddy_pbx.config import Config, load_config
from callbuddy_pbx.logs import setup_logging
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.sms.factory import build_gateways, webhook_gateways
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.server import create_app, start_web

log = logging.getLogger("callbuddy_pbx")


async def serve(config: Config) -> None:
    store = await CallStore.open(config.storage.path)
    gateways = build_gateways(config)
    text_back = TextBackService(config, store, gateways) if gateways else None
    service = CallService(config, store, text_back=text_back)
    runner = await start_web(create_app(webhook_gateways=webhook_gateways(gateways)), config.web.host, config.web.port)
    log.info("web server on %s:%d (health, webhooks)", config.web.host, config.web.port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(service.stop()))
    log.info(
        "watching Asterisk at %s:%d as %s; calls go to %s",
        config.asterisk.host,
        config.asterisk.port,
        config.asterisk.username,
        config.storage.path,
    )
    try:
        await service.run()
    finally:
        await runner.cleanup()
        await store.close()


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(config.logging.level, config.logging.format)
    asyncio.run(serve(config))
    return 0
