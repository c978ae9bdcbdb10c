"""The durable outbox on a real SQLite file: exactly-once sends, retries, rate limits, receipts, crash recovery."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from callbuddy_pbx.recovery.outbox import Outbox
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState, SendResult, SendStatus
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.messages import MessageStore, NewText, OutboxRow
from tests.conftest import OpenStore
from tests.waiting import wait_until


def text(key: str, to: str = "+15557654321", sender: str = "+15550001000", at: float = 0.0) -> NewText:
    return NewText(key, "missed_call", to, sender, "sim", f"hello {key}", send_at=at, business="Glow Salon")


@contextlib.asynccontextmanager
async def outbox_running(
    open_store: OpenStore, gateway: SimulatedGateway, **options: float
) -> AsyncIterator[tuple[Outbox, MessageStore]]:
    store = await open_store()
    messages = MessageStore(store)
    rates = {"sim": float(options.pop("rate", 0.0))}
    outbox = Outbox(messages, {"sim": gateway}, rates=rates, **options)  # type: ignore[arg-type]

    async def report(r: DeliveryReport) -> None:
        await messages.apply_report("sim", r)

    async def ignore(_: object) -> None:
        return None

    await gateway.start(report, ignore)
    task = asyncio.create_task(outbox.run())
    try:
        yield outbox, messages
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await gateway.close()
        await store.close()


async def looked_again(outbox: Outbox, times: int = 2) -> None:
    """Until the outbox has looked at the due texts `times` more times: whatever it would send, it has sent."""
    start = outbox.passes
    outbox.wake()
    await wait_until(lambda: outbox.passes >= start + times)


async def wait_state(messages: MessageStore, key: str, state: str, timeout: float = 5.0) -> OutboxRow:
    async with asyncio.timeout(timeout):
        while True:
            rows = [r for r in await messages.list_messages() if r.key == key]
            if rows and rows[0].state == state:
                return rows[0]
            await asyncio.sleep(0.01)


async def test_a_queued_text_is_sent_once_and_its_receipt_marks_it_delivered(open_store: OpenStore) -> None:
    gateway = SimulatedGateway("sim")
    async with outbox_running(open_store, gateway) as (outbox, messages):
        assert await messages.enqueue([text("call-1"), text("call-1")], now=time.time()) == 1  # same key: one row
        outbox.wake()
        row = await wait_state(messages, "call-1", "delivered")
        assert (row.attempts, row.message_id, row.error) == (1, "sim-1", None)
        assert row.sent_at is not None and row.done_at is not None
        await looked_again(outbox)
        assert [s.key for s in gateway.attempts] == ["call-1"]


async def test_transient_failures_are_retried_with_backoff_then_sent(open_store: OpenStore) -> None:
    gateway = SimulatedGateway("sim")
    gateway.script([SendResult(SendStatus.RETRY, error="ESME_RTHROTTLED")] * 2)
    async with outbox_running(open_store, gateway, backoff_s=0.05) as (outbox, messages):
        await messages.enqueue([text("call-2")], now=time.time())
        outbox.wake()
        row = await wait_state(messages, "call-2", "delivered")
        assert row.attempts == 3
        assert outbox.stats["retried"] == 2


async def test_after_three_retries_the_text_fails_with_the_last_error_logged(
    open_store: OpenStore, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = SimulatedGateway("sim")
    gateway.script([SendResult(SendStatus.RETRY, error=f"HTTP 503 (try {n})") for n in range(1, 10)])
    async with outbox_running(open_store, gateway, backoff_s=0.01) as (outbox, messages):
        await messages.enqueue([text("call-3")], now=time.time())
        outbox.wake()
        row = await wait_state(messages, "call-3", "failed")
        assert (row.attempts, row.error) == (4, "HTTP 503 (try 4)")
        assert outbox.stats["failed"] == 1
        assert len(gateway.attempts) == 4
    assert any(r.levelname == "ERROR" and "call-3" in r.getMessage() for r in caplog.records)
    assert "+15557654321" not in caplog.text  # numbers are masked in logs


async def test_a_permanent_rejection_is_not_retried(open_store: OpenStore) -> None:
    gateway = SimulatedGateway("sim")
    gateway.script([SendResult(SendStatus.REJECTED, error="ESME_RINVDSTADR")])
    async with outbox_running(open_store, gateway) as (outbox, messages):
        await messages.enqueue([text("call-4")], now=time.time())
        outbox.wake()
        row = await wait_state(messages, "call-4", "failed")
        assert (row.attempts, row.error) == (1, "ESME_RINVDSTADR")


async def test_one_sender_is_held_to_its_rate_while_another_sender_is_not(open_store: OpenStore) -> None:
    gateway = SimulatedGateway("sim", receipt_delay_s=-1)
    async with outbox_running(open_store, gateway, rate=10.0) as (outbox, messages):
        now = time.time()
        await messages.enqueue([text(f"a{i}", to=f"+1555765430{i}") for i in range(4)], now=now)
        await messages.enqueue([text("b0", sender="+15550009999")], now=now)
        outbox.wake()
        for key in ("a3", "b0"):
            await wait_state(messages, key, "sent")
        rows = {r.key: r for r in await messages.list_messages()}
        a_times = sorted(rows[f"a{i}"].sent_at or 0 for i in range(4))
        gaps = [later - earlier for earlier, later in itertools.pairwise(a_times)]
        assert all(gap >= 0.08 for gap in gaps), gaps  # 10 per second per sender
        assert (rows["b0"].sent_at or 0) < a_times[-1]  # the other sender did not wait behind them


async def test_a_text_the_service_was_sending_when_it_died_is_marked_unknown_not_resent(open_store: OpenStore) -> None:
    store = await open_store()
    messages = MessageStore(store)
    await messages.enqueue([text("call-5")], now=time.time())
    (row,) = await messages.list_messages()
    assert await messages.claim([row.id], time.time()) == [row.id]  # then the process was killed
    await store.close()

    gateway = SimulatedGateway("sim")
    async with outbox_running(open_store, gateway) as (outbox, messages):
        row = await wait_state(messages, "call-5", "unknown")
        assert "stopped" in (row.error or "")
        await looked_again(outbox)
        assert gateway.attempts == []
        assert outbox.stats["recovered_unknown"] == 1


async def test_a_receipt_that_arrives_before_the_send_is_recorded_still_applies(open_store: OpenStore) -> None:
    store = await open_store()
    messages = MessageStore(store)
    await messages.enqueue([text("call-6")], now=time.time())
    (row,) = await messages.list_messages()
    await messages.claim([row.id], time.time())
    early = DeliveryReport("smsc-77", DeliveryState.DELIVERED, time.time(), detail="DELIVRD")
    assert await messages.apply_report("sim", early) is False  # no text has that id yet
    from callbuddy_pbx.store.messages import SendUpdate

    await messages.apply_send_results([SendUpdate(row.id, "sent", 1, row.send_at, "smsc-77", None, time.time())])
    (row,) = await messages.list_messages()
    assert (row.state, row.message_id) == ("delivered", "smsc-77")
    late_failure = DeliveryReport("smsc-77", DeliveryState.FAILED, time.time(), detail="UNDELIV")
    assert await messages.apply_report("sim", late_failure) is True
    (row,) = await messages.list_messages()
    assert row.state == "delivered"  # final states only move forward
    await store.close()


async def test_texts_due_later_wait_for_their_time(open_store: OpenStore) -> None:
    gateway = SimulatedGateway("sim")
    async with outbox_running(open_store, gateway) as (outbox, messages):
        due = time.time() + 0.3
        await messages.enqueue([text("later", at=due)], now=time.time())
        outbox.wake()
        await looked_again(outbox)
        assert gateway.attempts == [] or time.time() >= due  # looked at it, and left it until its time
        row = await wait_state(messages, "later", "delivered")
        assert row.sent_at is not None and row.sent_at >= due
