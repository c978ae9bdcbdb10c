"""End to end: a recorded Asterisk trace through the running service makes exactly one text per missed call."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callbuddy_pbx.config import AsteriskConfig, Business, Config, GatewayConfig, StorageConfig, TextBack
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from tests.traces import Trace, all_traces, drop_headers
from tests.waiting import wait_until, wait_until_async

TRACES = all_traces()
TRACE_DIDS = tuple(f"+1555000{n}" for n in ("1000", "1001", "1003", "1004", "1007", "1008", "1009", "1010", "1013"))
SALON = Business(name="Glow Salon", numbers=TRACE_DIDS, timezone="America/New_York", booking_url="https://glow.example")


def salon_config(
    port: int, db: Path, gateway: str = "sim", kind: str = "simulated", text_back: TextBack | None = None
) -> Config:
    salon = dataclasses.replace(SALON, text_back=dataclasses.replace(text_back or TextBack(), gateway=gateway))
    return Config(
        asterisk=AsteriskConfig(port=port, secret="s3cret", reconnect_min_s=0.05, reconnect_max_s=0.2),
        businesses=(salon,),
        gateways=(GatewayConfig(name=gateway, kind=kind, rate_per_s=0),),
        storage=StorageConfig(db),
    )


@dataclass
class Running:
    server: SimulatedAmiServer
    service: CallService
    store: CallStore
    text_back: TextBackService
    calls: list[CallRecord]

    async def wait_for_calls(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.calls) < count:
                await asyncio.sleep(0.01)

    async def settle(self, within: float = 10.0) -> None:
        """Wait until nothing more can come of what Asterisk sent so far; only then is a count of texts final.

        In this order: the AMI client has handed over every event written before a Ping's answer (one TCP stream),
        the tracker holds no open call (none can be judged later), every judged call is stored with its text, and
        the outbox has no text queued (due now or held off) or being sent. A text sent twice, late (a retry after an
        accepted send, a held-off duplicate), is counted instead of slipping past a fixed sleep."""
        await self.service.ami.action("Ping")
        await wait_until(lambda: self.service.tracker.active_calls == 0, within)
        await asyncio.wait_for(self.service.wait_stored(), within)
        await wait_until_async(self.outbox_idle, within)

    async def outbox_idle(self) -> bool:
        """No text queued or `sending` (claimed, or its result not yet recorded): the outbox's own durable state."""
        messages = self.text_back.messages
        if await messages.next_due_at() is not None:
            return False
        return not await messages.list_messages(state="sending", limit=1)


@contextlib.asynccontextmanager
async def text_back_service(
    tmp_path: Path, gateway: SmsGateway, *, kind: str = "simulated", text_back: TextBack | None = None
) -> AsyncIterator[Running]:
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    config = salon_config(server.port, tmp_path / "calls.sqlite3", gateway.name, kind, text_back)
    store = await CallStore.open(config.storage.path)
    text_back = TextBackService(config, store, {gateway.name: gateway})
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append, text_back=text_back)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 5)
        yield Running(server, service, store, text_back, calls)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await store.close()
        await server.stop()


@pytest.mark.parametrize("trace", TRACES, ids=[t.name for t in TRACES])
async def test_each_trace_texts_exactly_its_missed_callers(trace: Trace, tmp_path: Path) -> None:
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway) as run:
        await run.server.replay_raw(trace.raw)
        await run.wait_for_calls(len(trace.expected()))
        missed = [c for c in trace.expected() if c.missed]
        await run.settle()
        assert sorted(sms.to for sms in gateway.sent) == sorted(f"+{c.caller}" for c in missed)
        for sms in gateway.sent:
            assert sms.text.startswith("Hi, this is Glow Salon. Sorry we missed your call!")
            assert "https://glow.example" in sms.text
        rows = await run.text_back.messages.list_messages()
        assert len(rows) == len(missed)


async def test_replaying_the_same_stream_again_sends_nothing_more(tmp_path: Path) -> None:
    trace = next(t for t in TRACES if t.name.startswith("01-"))
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway) as run:
        await run.server.replay_raw(trace.raw)
        await run.wait_for_calls(1)
        await run.settle()
        assert len(gateway.sent) == 1
        run.server.drop_clients()  # a reconnect, then Asterisk's stream is delivered again (same linkedid)
        await wait_until(lambda: run.service.ami.connects == 2 and run.server.clients == 1)
        await run.server.replay_raw(trace.raw)
        await run.wait_for_calls(2)
        await run.settle()
        assert len(gateway.sent) == 1


async def test_a_second_missed_call_inside_the_window_gets_no_second_text(tmp_path: Path) -> None:
    first = next(t for t in TRACES if t.name.startswith("01-"))
    second = next(t for t in TRACES if t.name.startswith("02-"))  # same caller, another call
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway) as run:
        await run.server.replay_raw(first.raw)
        await run.server.replay_raw(second.raw)
        await run.wait_for_calls(2)
        await run.settle()
        assert len(gateway.sent) == 1
        verdict = await run.text_back.messages.verdict(run.calls[1].linkedid)
        assert verdict is not None and (verdict.send, verdict.reason) == (False, "already_texted_in_window")


async def test_stop_opts_out_confirms_once_and_later_missed_calls_get_no_text(tmp_path: Path) -> None:
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway) as run:
        await gateway.receive("+15557654321", "+15550001000", "Stop.")
        await gateway.receive("+15557654321", "+15550001000", "STOP")  # a second STOP: no second confirmation
        await run.settle()
        (confirmation,) = gateway.sent
        assert confirmation.to == "+15557654321" and "no more texts" in confirmation.text
        await run.server.replay_raw(next(t for t in TRACES if t.name.startswith("01-")).raw)
        await run.wait_for_calls(1)
        await run.settle()
        assert len(gateway.sent) == 1
        verdict = await run.text_back.messages.verdict(run.calls[0].linkedid)
        assert verdict is not None and verdict.reason == "opted_out"


async def test_an_answered_call_during_the_hold_off_cancels_the_waiting_text(tmp_path: Path) -> None:
    missed, answered = (next(t for t in TRACES if t.name.startswith(n)) for n in ("01-", "03-"))
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway, text_back=TextBack(hold_off_s=1.0)) as run:
        await run.server.replay_raw(drop_headers(missed.raw, "Timestamp"))  # ends now: the hold-off runs from here
        await run.wait_for_calls(1)
        await run.server.replay_raw(drop_headers(answered.raw, "Timestamp"))  # Jane calls again; desk 101 answers
        await run.wait_for_calls(2)
        await run.settle()  # a text the answer did not cancel would be sent at the end of the hold-off
        assert gateway.sent == []
        (row,) = await run.text_back.messages.list_messages()
        assert (row.state, row.error) == ("cancelled", "answered on a later call")


async def test_an_earlier_answered_call_stored_late_does_not_cancel_the_text(tmp_path: Path) -> None:
    """A call answered before the missed one (found late, e.g. in Asterisk's records) is no call back."""
    missed, answered = (next(t for t in TRACES if t.name.startswith(n)) for n in ("01-", "03-"))
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway, text_back=TextBack(hold_off_s=1.0)) as run:
        await run.server.replay_raw(drop_headers(missed.raw, "Timestamp"))  # ends now
        await run.wait_for_calls(1)
        await run.server.replay_raw(answered.raw)  # recorded times: answered hours before the missed call
        await run.wait_for_calls(2)
        await run.settle()
        assert len(gateway.sent) == 1


async def test_without_a_later_answer_the_held_off_text_goes_out_after_the_hold_off(tmp_path: Path) -> None:
    missed = next(t for t in TRACES if t.name.startswith("01-"))
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway, text_back=TextBack(hold_off_s=0.5)) as run:
        await run.server.replay_raw(drop_headers(missed.raw, "Timestamp"))
        await run.wait_for_calls(1)
        (queued,) = await run.text_back.messages.list_messages()
        assert queued.send_at >= run.calls[0].ended_at + 0.5  # held off: scheduled for after the hold-off
        await run.settle()
        assert len(gateway.sent) == 1
        (row,) = await run.text_back.messages.list_messages()
        assert row.sent_at is not None and row.sent_at - run.calls[0].ended_at >= 0.5
