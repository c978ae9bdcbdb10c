"""End to end through real peers: recorded traces through the running service to an SMSC (smpp34) and to Kannel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from callbuddy_pbx.config import GatewayConfig
from callbuddy_pbx.sim.smsc import SimulatedSmsc
from callbuddy_pbx.sms.http_kannel import KannelGateway
from callbuddy_pbx.sms.smpp import SmppGateway
from callbuddy_pbx.web.server import create_app, start_web
from tests.kannel import KannelHarness, kannel_fixture  # noqa: F401 (provides the `kannel` fixture)
from tests.test_textback_e2e import Running, text_back_service
from tests.traces import all_traces

TRACES = {t.name[:2]: t for t in all_traces()}
MISSED = ["01", "07", "31"]  # no answer, voicemail, caller gave up under ARI
ANSWERED = ["03", "20"]  # ring group, queue with Local members
CALLER = "+15557654321"


async def wait_until(predicate: Callable[[], bool], timeout: float = 8.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def replay(run: Running, number: str) -> None:
    trace = TRACES[number]
    await run.server.replay_raw(trace.raw)
    await run.wait_for_calls(len(trace.expected()))


async def final_state(run: Running) -> str:
    async with asyncio.timeout(8):
        while True:
            (row,) = await run.text_back.messages.list_messages()
            if row.state in ("delivered", "failed"):
                return row.state
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("number", MISSED + ANSWERED)
async def test_smsc_gets_one_submit_per_missed_call_and_none_for_answered(number: str, tmp_path: Path) -> None:
    smsc = SimulatedSmsc(system_id="callbuddy", password="smpppass")
    await smsc.start()
    config = GatewayConfig(name="smsc", kind="smpp", port=smsc.port, system_id="callbuddy", password="smpppass")
    gateway = SmppGateway(config)
    try:
        async with text_back_service(tmp_path, gateway, kind="smpp") as run:
            await replay(run, number)
            if number in MISSED:
                await wait_until(lambda: len(smsc.submits) >= 1)
                assert await final_state(run) == "delivered"  # the SMSC's receipt came back over the bind
                (submit,) = smsc.submits
                assert submit.destination == CALLER
                assert submit.text.startswith("Hi, this is Glow Salon.")
            else:
                await asyncio.sleep(0.5)
                assert smsc.submits == []
    finally:
        await smsc.stop()


@pytest.mark.parametrize("number", ["01", "03"])
async def test_kannel_sends_one_text_per_missed_call_and_its_dlr_marks_it_delivered(
    number: str, kannel: KannelHarness, tmp_path: Path
) -> None:
    gateway = KannelGateway(kannel.gateway_config(), kannel.web, timeout_s=5.0)
    runner = await start_web(create_app(webhook_gateways={gateway.name: gateway}), "127.0.0.1", kannel.web_port)
    before = len(kannel.mt_messages())
    try:
        async with text_back_service(tmp_path, gateway, kind="kannel") as run:
            await replay(run, number)
            if number == "01":
                await wait_until(lambda: len(kannel.mt_messages()) > before)
                assert await final_state(run) == "delivered"  # dlr-url callback from Kannel
                new = kannel.mt_messages()[before:]
                assert [receiver for _, receiver, _, _ in new] in (["15557654321"], [CALLER])
            else:
                await asyncio.sleep(1.0)
                assert kannel.mt_messages()[before:] == []
    finally:
        await runner.cleanup()
