"""`callbuddy-pbx demo`: the real service against the simulated PBX, end to end, as a user runs it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.cli import main
from callbuddy_pbx.commands.demo import run_demo
from callbuddy_pbx.commands.demo_routing import PHONES, ROUTED_DID, ROUTED_GROUP, routed_calls
from callbuddy_pbx.config import default_config
from callbuddy_pbx.config.asterisk import AriConfig
from callbuddy_pbx.config.pbx import PbxConfig
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from callbuddy_pbx.store.db import CallStore


def test_demo_prints_every_call_and_stores_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--data-dir", str(tmp_path), "--calls", "20", "--speed", "400", "--seed", "7", "--port", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"^dashboard: http://127\.0\.0\.1:\d+/$", out, re.MULTILINE), out
    assert re.search(r"log in as admin / \S{12}", out) and re.search(r"or glow / \S{12}", out), out
    lines = [line for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d  ", line)]
    summary = re.search(r"(\d+) inbound calls, (\d+) missed", out)
    assert summary is not None, out
    assert len(lines) == int(summary.group(1)) > 0
    assert sum("MISSED (" in line for line in lines) == int(summary.group(2))
    texts = re.search(r"(\d+) texts sent to missed callers, (\d+) delivered", out)
    assert texts is not None, out
    sms_lines = [line for line in out.splitlines() if line.strip().startswith("SMS to +1 ")]
    assert 0 < len(sms_lines) == int(texts.group(1)) == int(texts.group(2))  # each text printed once, each delivered
    assert all("Sorry we missed your call!" in line for line in sms_lines)

    async def stored() -> int:
        async with await CallStore.open(tmp_path / "callbuddy.sqlite3") as store:
            return await store.count_calls()

    assert asyncio.run(stored()) == len(lines)


def test_demo_rejects_nonsense_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--calls", "0"]) == 2
    assert "--calls" in capsys.readouterr().err
    assert main(["demo", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


async def test_endless_demo_serves_the_dashboard_until_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = asyncio.create_task(run_demo(tmp_path, None, 50.0, seed=3, port=0))
    printed = ""
    url = None
    deadline = time.monotonic() + 20
    while url is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        printed += capsys.readouterr().out
        found = re.search(r"^dashboard: (http://\S+)$", printed, re.MULTILINE)
        url = found.group(1) if found else None
    assert url is not None, printed
    admin_password = re.search(r"log in as admin / (\S+)", printed)
    assert admin_password is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "login") as login:
            assert login.status == 200
        for _ in range(50):  # the routed line's ARI app connects beside AMI
            async with session.get(url + "healthz") as response:
                health = await response.json()
            if health.get("ari", {}).get("connected"):
                break
            await asyncio.sleep(0.1)
        assert health["ari"] == {"connected": True, "last_error": None}, health
        while "MISSED (" not in printed and time.monotonic() < deadline:  # calls keep coming without --calls
            await asyncio.sleep(0.2)
            printed += capsys.readouterr().out
    assert "MISSED (" in printed
    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: the demo stops cleanly and sums up
    assert await asyncio.wait_for(demo, 15) == 0
    assert re.search(r"\d+ inbound calls, \d+ missed", capsys.readouterr().out)


async def test_the_demo_routed_line_prints_what_the_router_did(tmp_path: Path) -> None:
    said: list[str] = []
    async with SimulatedAriServer(password="demo-ari-secret") as ari:
        group = dataclasses.replace(ROUTED_GROUP, ring_s=1, total_s=2)
        config = dataclasses.replace(
            default_config(tmp_path),
            pbx=PbxConfig(phones=PHONES, ring_groups=(group,)),
            ari=AriConfig(url=ari.url, password="demo-ari-secret", reconnect_min_s=0.05),
        )
        routing = RoutingService(config, DeviceRegistry.from_config(config))
        running = asyncio.create_task(routing.run())
        calls = asyncio.create_task(routed_calls(ari, 0.05, 1, said.append, group))
        try:
            deadline = time.monotonic() + 10
            while len(said) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            calls.cancel()
            await routing.stop()
            await asyncio.gather(calls, running, return_exceptions=True)
    assert len(said) >= 3, said
    assert all(f"routed call to {ROUTED_DID}: rang " in line for line in said)
    assert any("answered on PJSIP/10" in line for line in said) and all("102" not in line for line in said)
