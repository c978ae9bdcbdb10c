"""End to end through real peers: recorded traces through the running service to an SMSC (smpp34) and to Kannel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callbuddy_pbx.config import GatewayConfig
from callbuddy_pbx.sim.smsc import SimulatedSmsc
from callbuddy_pbx.sms.http_kannel import KannelGateway
from callbuddy_pbx.sms.smpp import SmppGateway
from callbuddy_pbx.web.server import create_app, start_web
from tests.kannel import KannelHarness, kannel_fixture  # noqa: F401 (provides the `kannel` fixture)
from tests.test_textback_e2e import Running, text_back_service
from tests.traces import Trace, all_traces
from tests.waiting import wait_until

TRACES = all_traces()
IDS = [t.name for t in TRACES]


async def replay(run: Running, trace: Trace) -> list[str]:
    """Replay a trace; return the numbers that must get a text (its missed callers), as E.164."""
    await run.server.replay_raw(trace.raw)
    await run.wait_for_calls(len(trace.expected()))
    return sorted(f"+{call.caller}" for call in trace.expected() if call.missed)


async def final_states(run: Running, count: int) -> list[str]:
    async with asyncio.timeout(8):
        while True:
            rows = await run.text_back.messages.list_messages()
            if len(rows) == count and all(row.state in ("delivered", "failed") for row in rows):
                return [row.state for row in rows]
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("trace", TRACES, ids=IDS)
async def test_smsc_gets_one_submit_per_missed_call_and_none_for_answered(trace: Trace, tmp_path: Path) -> None:
    smsc = SimulatedSmsc(system_id="callbuddy", password="smpppass")
    await smsc.start()
    config = GatewayConfig(name="smsc", kind="smpp", port=smsc.port, system_id="callbuddy", password="smpppass")
    gateway = SmppGateway(config)
    try:
        async with text_back_service(tmp_path, gateway, kind="smpp") as run:
            texted = await replay(run, trace)
            await run.settle()  # each accepted send waited for the SMSC's submit_sm_resp: it has them all
            assert sorted(submit.destination for submit in smsc.submits) == texted
            assert all(submit.text.startswith("Hi, this is Glow Salon.") for submit in smsc.submits)
            if texted:  # the SMSC's receipts came back over the bind
                assert await final_states(run, len(texted)) == ["delivered"] * len(texted)
    finally:
        await smsc.stop()


@pytest.mark.parametrize("trace", TRACES, ids=IDS)
async def test_kannel_sends_one_text_per_missed_call_and_none_for_answered(
    trace: Trace, kannel: KannelHarness, tmp_path: Path
) -> None:
    gateway = KannelGateway(kannel.gateway_config(), kannel.web, timeout_s=5.0)
    runner = await start_web(create_app(webhook_gateways={gateway.name: gateway}), "127.0.0.1", kannel.web_port)
    before = len(kannel.mt_messages())
    try:
        async with text_back_service(tmp_path, gateway, kind="kannel") as run:
            texted = await replay(run, trace)
            await run.settle()
            # Kannel answers sendsms before its SMSC link passes the text on: wait until fakesmsc has every text
            # Kannel accepted from us (each accepted send counts, a text sent twice twice).
            handed_over = run.text_back.outbox.stats["sent"]
            await wait_until(lambda: len(kannel.mt_messages()) - before >= handed_over, within=8.0)
            receivers = sorted("+" + receiver.lstrip("+") for _, receiver, _, _ in kannel.mt_messages()[before:])
            assert receivers == texted
            if texted:  # dlr-url callbacks from Kannel
                assert await final_states(run, len(texted)) == ["delivered"] * len(texted)
    finally:
        await runner.cleanup()
