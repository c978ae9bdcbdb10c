"""Several CallBuddy instances on one PostgreSQL (issue 16): each text is sent by whichever outbox is free, exactly
once, and one killed mid-send leaves its texts `unknown` (never re-sent) to the others once its lease ran out.

Each instance here is its own CallStore (its own connection pool and write lock, as a second process has) and its
own MessageStore identity, on one real database (tests/pg.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from callbuddy_pbx.recovery.outbox import Outbox
from callbuddy_pbx.sms.gateway import OutgoingSms, SendResult
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore, NewText, OutboxRow, SendUpdate
from tests.conftest import OpenStore
from tests.waiting import wait_until_async

on_postgresql = pytest.mark.parametrize("engine", ["postgresql"])


def text(key: str, to: str = "+15557654321") -> NewText:
    return NewText(key, "missed_call", to, "+15550001000", "sim", f"hello {key}", send_at=0.0, business="Glow Salon")


class PacedGateway(SimulatedGateway):
    """Takes a moment per text (as a real gateway's round trip does), so one outbox cannot empty the queue alone;
    `hang` makes every send wait for ever (an instance stuck mid-send)."""

    def __init__(self, name: str, delay_s: float = 0.002, *, hang: bool = False) -> None:
        super().__init__(name, receipt_delay_s=-1)
        self.delay_s, self.hang = delay_s, hang

    async def send(self, sms: OutgoingSms) -> SendResult:
        if self.hang:
            self.attempts.append(sms)
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay_s)
        return await super().send(sms)


@contextlib.asynccontextmanager
async def instance(
    open_store: OpenStore, name: str, gateway: SimulatedGateway, **options: float
) -> AsyncIterator[tuple[Outbox, MessageStore, asyncio.Task[None]]]:
    """One CallBuddy's outbox, running until the block ends (or its task is cancelled: the instance killed)."""
    store = await open_store()
    messages = MessageStore(store, instance=name)
    outbox = Outbox(messages, {"sim": gateway}, rates={"sim": 0.0}, **options)  # type: ignore[arg-type]
    task = asyncio.create_task(outbox.run(), name=f"outbox {name}")
    try:
        yield outbox, messages, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()


async def states(messages: MessageStore) -> Counter[str]:
    return Counter(row.state for row in await messages.list_messages(limit=10_000))


async def rows_where(messages: MessageStore, keep: Callable[[OutboxRow], bool]) -> list[OutboxRow]:
    return [row for row in await messages.list_messages(limit=10_000) if keep(row)]


@on_postgresql
async def test_two_instances_send_600_texts_each_exactly_once(open_store: OpenStore) -> None:
    seed = await open_store()
    count = 600
    texts = [text(f"call-{i}", to=f"+1555{i:07d}") for i in range(count)]
    await MessageStore(seed).enqueue(texts, now=time.time())
    gateways = PacedGateway("a"), PacedGateway("b")
    started = time.monotonic()
    async with instance(open_store, "A", gateways[0]) as (_, messages, _), instance(open_store, "B", gateways[1]):
        await wait_until_async(lambda: _all_sent(messages, count), within=60)
        elapsed = time.monotonic() - started
    sent = Counter(sms.key for gateway in gateways for sms in gateway.sent)
    assert len(sent) == count and set(sent.values()) == {1}  # every text once, none twice, none lost
    assert all(gateway.sent for gateway in gateways)  # both instances sent: whichever was free
    print(f"two instances on PostgreSQL: {count} texts in {elapsed:.2f} s = {count / elapsed:.0f} texts/s", end=" ")
    await seed.close()


async def _all_sent(messages: MessageStore, count: int) -> bool:
    return (await states(messages))["sent"] == count


@on_postgresql
async def test_a_claim_passes_over_texts_another_instance_is_claiming(
    open_store: OpenStore, store_urls: Callable[[str], str]
) -> None:
    store = await open_store()
    messages = MessageStore(store, instance="B")
    await messages.enqueue([text(f"call-{i}") for i in range(10)], now=time.time())
    # Another instance is in the middle of its claim: the first three due texts are locked by its transaction.
    async with await psycopg.AsyncConnection.connect(store_urls("db")) as other, other.transaction():
        cur = await other.execute("SELECT id FROM messages ORDER BY send_at, id LIMIT 3 FOR UPDATE")
        locked = {int(row[0]) for row in await cur.fetchall()}
        async with asyncio.timeout(3):  # not blocked behind the other's transaction
            claimed = await messages.claim_due(time.time(), 5, lambda rows: [row.id for row in rows])
    assert len(claimed) == 5 and not locked & set(claimed)  # the next five due, not the three being claimed
    await store.close()


@on_postgresql
async def test_an_instance_killed_mid_send_leaves_its_texts_unknown_to_the_other_after_its_lease(
    open_store: OpenStore,
) -> None:
    seed = await open_store()
    await MessageStore(seed).enqueue([text(f"call-{i}", to=f"+1555{i:07d}") for i in range(20)], now=time.time())
    stuck, free = PacedGateway("a", hang=True), PacedGateway("b")
    lease = 2.0
    async with instance(open_store, "A", stuck, lease_s=lease) as (_, _, a_task):
        await wait_until_async(lambda: _claimed_by(seed, "A", 20), within=10)  # A took them all, then B starts
        async with instance(open_store, "B", free, lease_s=lease) as (b_outbox, b_messages, _):
            await asyncio.sleep(lease * 1.5)  # longer than a lease: A renews its claims while its sends hang
            assert (await states(b_messages))["sending"] == 20
            a_task.cancel()  # A is killed mid-send; its claims are left to run out
            with contextlib.suppress(asyncio.CancelledError):
                await a_task
            killed_at = time.monotonic()
            await asyncio.sleep(lease / 3 * 1.3)  # B has checked the claims since, before A's last lease ends
            assert (await states(b_messages))["sending"] == 20, "settled before the lease ran out"
            await wait_until_async(lambda: _all_in(b_messages, "unknown", 20), within=lease * 3)
            assert time.monotonic() - killed_at >= lease / 3  # not before: A renewed at most lease/3 before it died
    assert [sms.key for sms in free.attempts] == []  # none re-sent by B
    assert sorted(Counter(sms.key for sms in stuck.attempts).values()) == [1] * 20
    assert b_outbox.stats["recovered_unknown"] == 20
    await seed.close()


async def _claimed_by(store: CallStore, name: str, count: int) -> bool:
    async with store.connection.execute(
        "SELECT COUNT(*) FROM messages WHERE state = 'sending' AND claimed_by = ?", (name,)
    ) as cursor:
        row = await cursor.fetchone()
    return bool(row and row[0] == count)


async def _all_in(messages: MessageStore, state: str, count: int) -> bool:
    return (await states(messages))[state] == count


@on_postgresql
async def test_a_start_settles_its_own_and_expired_claims_but_not_a_live_instance_s(open_store: OpenStore) -> None:
    store = await open_store()
    a, b = MessageStore(store, instance="A"), MessageStore(store, instance="B")
    await a.enqueue([text("live"), text("expired"), text("own")], now=100.0)
    ids = {row.key: row.id for row in await a.list_messages()}
    now = time.time()
    assert await a.claim([ids["live"]], now, lease_s=60) == [ids["live"]]
    assert await a.claim([ids["expired"]], now - 120, lease_s=60) == [ids["expired"]]
    assert await b.claim([ids["own"]], now, lease_s=60) == [ids["own"]]  # B's, left by its last run (same name)
    assert await b.recover_after_crash(now) == 2  # B starts again: its own, and A's expired one
    left = {row.key: row.state for row in await a.list_messages()}
    assert left == {"live": "sending", "expired": "unknown", "own": "unknown"}
    await store.close()


@on_postgresql
async def test_a_late_result_is_not_written_over_another_instance_s_claim(open_store: OpenStore) -> None:
    store = await open_store()
    a, b = MessageStore(store, instance="A"), MessageStore(store, instance="B")
    await a.enqueue([text("t")], now=100.0)
    (row,) = await a.list_messages()
    await a.claim([row.id], 200.0, lease_s=1)
    assert await b.settle_expired_claims(300.0) == 1  # A's lease ran out: unknown
    await b.requeue_unknown(400.0, 400.0)  # resend_unknown_after: queued again...
    assert await b.claim([row.id], 400.0) == [row.id]  # ...and B sends it now
    await a.apply_send_results([SendUpdate(row.id, "failed", 1, 0.0, None, "late", 401.0)])  # A's answer, late
    (after,) = await a.list_messages()
    assert after.state == "sending"  # still B's send
    await b.apply_send_results([SendUpdate(row.id, "sent", 1, 0.0, "gw-1", None, 402.0)])
    (after,) = await a.list_messages()
    assert (after.state, after.message_id) == ("sent", "gw-1")
    await store.close()


async def test_one_instance_s_claims_are_renewed_and_settled_on_either_engine(open_store: OpenStore) -> None:
    store = await open_store()
    messages = MessageStore(store, instance="A")
    await messages.enqueue([text("t")], now=100.0)
    (row,) = await messages.list_messages()
    assert await messages.claim([row.id], 200.0, lease_s=10) == [row.id]
    assert await messages.renew_claims([row.id], 500.0) == 1
    assert await MessageStore(store, instance="B").renew_claims([row.id], 900.0) == 0  # not B's to renew
    # On PostgreSQL another instance settles it once the renewed lease ran out, not before; on SQLite one process
    # owns the file and nothing is settled but at start.
    other = MessageStore(store, instance="B")
    assert await other.settle_expired_claims(499.0) == 0
    assert await other.settle_expired_claims(501.0) == (1 if store.dialect == "postgresql" else 0)
    await store.close()


async def test_a_claim_takes_only_texts_still_queued(open_store: OpenStore) -> None:
    store = await open_store()
    a, b = MessageStore(store, instance="A"), MessageStore(store, instance="B")
    await a.enqueue([text("kept", to="+15550000001"), text("stopped", to="+15550000002")], now=100.0)
    ids = {row.key: row.id for row in await a.list_messages()}
    await a.set_opt_out("+15550000002", "Glow Salon", True, 150.0)  # cancels its queued text
    assert await a.claim(sorted(ids.values()), 200.0) == [ids["kept"]]
    assert await b.claim([ids["kept"]], 201.0) == []  # A's already: another instance cannot take it over
    (kept,) = [row for row in await a.list_messages() if row.key == "kept"]
    assert kept.updated_at == 200.0
    await store.close()
