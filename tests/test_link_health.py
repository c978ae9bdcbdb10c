"""Health tells the truth fast: with the default settings a half-open AMI link is noticed, and /healthz says so,
within 10 s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from callbuddy_pbx.config import AsteriskConfig, Config, StorageConfig
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.healthz import service_health
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.store.db import CallStore
from tests.waiting import wait_until

HEALTH_DEADLINE_S = 10.0  # what an installer is promised


async def test_a_half_open_ami_link_fails_health_within_ten_seconds_by_default(tmp_path: Path) -> None:
    defaults = AsteriskConfig()
    async with SimulatedAmiServer(secret="s3cret") as server:
        config = Config(
            asterisk=AsteriskConfig(port=server.port, secret="s3cret"),  # every timing at its default
            storage=StorageConfig(tmp_path / "calls.sqlite3"),
        )
        async with await CallStore.open(config.storage.path) as store:
            service = CallService(config, store)
            task = asyncio.create_task(service.run())
            try:
                await wait_until(lambda: service_health(service, {}).ok)
                server.ignore_pings = True  # Asterisk gone silent; the TCP connection stays open
                silent_since = time.monotonic()
                await wait_until(lambda: not service_health(service, {}).ok, within=2 * HEALTH_DEADLINE_S)
                noticed = time.monotonic() - silent_since
                body = service_health(service, {}).to_json()
            finally:
                await service.stop()
                await asyncio.wait_for(task, 5)
    assert noticed <= HEALTH_DEADLINE_S, f"half-open link noticed after {noticed:.1f} s"
    assert noticed >= defaults.ping_timeout_s * 0.9  # it was the unanswered ping that noticed, nothing sooner
    assert body["ok"] is False and body["ami"]["connected"] is False
    assert "half-open" in body["ami"]["last_error"]
