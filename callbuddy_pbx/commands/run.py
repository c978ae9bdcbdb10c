"""`callbuddy-pbx run --config F`: the service, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from callbuddy_pbx.app import CallService
from callbuddy_pbx.config import Config, load_config
from callbuddy_pbx.logs import setup_logging
from callbuddy_pbx.store.db import CallStore

log = logging.getLogger("callbuddy_pbx")


async def serve(config: Config) -> None:
    store = await CallStore.open(config.storage.path)
    service = CallService(config, store)
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
        await store.close()


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    setup_logging(config.logging.level, config.logging.format)
    asyncio.run(serve(config))
    return 0
