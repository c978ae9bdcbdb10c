"""Gateway trouble defers, never drops; a send with no answer is never repeated blindly; a receipt settles it.

The outbox runs on a real SQLite file against a scripted gateway (the peer, not the component under test); every
count is read from what the gateway was handed and from the rows in the database."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from callbuddy_pbx.recovery.outbox import Outbox
from callbuddy_pbx.recovery.pacing import GatewayPace
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState, OutgoingSms, SendResult, SendStatus
from callbuddy_pbx.store.messages import MessageStore, NewText
from tests.conftest import OpenStore
from tests.waiting import wait_until_async

CALLER = "+15557654321"


@dataclass
class ScriptedGateway:
    """Takes texts like a real one would, with faults switched on and off by the test."""

    name: str = "gw"
    in_flight_limit: int = 10
    down: bool = False  # cannot take texts: DEFERRED
    per_second: int | None = None  # more than this in one second: DEFERRED, throttled
    unanswered: set[str] = field(default_factory=set)  # keys whose send leaves and gets no answer: UNKNOWN
    handed: list[OutgoingSms] = field(default_factory=list)  # every send, whatever its answer
    taken: Counter[str] = field(default_factory=Counter)  # what the network really got, by key
    _second: tuple[int, int] = (0, 0)

    async def start(self, on_report: object, on_inbound: object) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, sms: OutgoingSms) -> SendResult:
        self.handed.append(sms)
        if self.down:
            return SendResult(SendStatus.DEFERRED, error="SMPP link down: refused")
        if self.per_second is not None:
            second = int(time.monotonic())
            count = self._second[1] + 1 if self._second[0] == second else 1
            self._second = (second, count)
            if count > self.per_second:
                return SendResult(SendStatus.DEFERRED, error="ESME_RTHROTTLED", retry_after_s=0.2, throttled=True)
        self.taken[sms.key] += 1
        if sms.key in self.unanswered:
            return SendResult(SendStatus.UNKNOWN, error="SMPP link lost before the SMSC answered")
        return SendResult(SendStatus.ACCEPTED, message_id=f"id-{sms.key}")


def text(key: str, to: str = CALLER) -> NewText:
    return NewText(key, "missed_call", to, "+15550001000", "gw", f"Sorry we missed you {key}", send_at=0.0)


@contextlib.asynccontextmanager
async def running(
    open_store: OpenStore, gateway: ScriptedGateway, **options: float | None
) -> AsyncIterator[MessageStore]:
    async with await open_store() as store:
        messages = MessageStore(store)
        outbox = Outbox(messages, {"gw": gateway}, **options)  # type: ignore[arg-type]
        task = asyncio.create_task(outbox.run())
        try:
            yield messages
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def states(messages: MessageStore) -> Counter[str]:
    return Counter(row.state for row in await messages.list_messages(limit=10_000))


async def all_in(messages: MessageStore, state: str, count: int, within: float = 15.0) -> None:
    async def done() -> bool:
        return (await states(messages))[state] == count

    await wait_until_async(done, within=within)


async def test_a_gateway_down_for_a_while_costs_no_text_and_sends_each_once(open_store: OpenStore) -> None:
    gateway = ScriptedGateway(down=True)
    async with running(open_store, gateway) as messages:
        await messages.enqueue([text(f"call-{n}") for n in range(40)], now=time.time())
        await asyncio.sleep(2.0)  # the outage: several hold periods pass
        during = len(gateway.handed)
        gateway.down = False
        back = time.monotonic()
        await all_in(messages, "sent", 40)
        recovered_in = time.monotonic() - back
        rows = await messages.list_messages(limit=100)
    assert set(gateway.taken.values()) == {1} and len(gateway.taken) == 40  # every text once, none twice
    assert all(row.attempts == 1 and row.error is None for row in rows)  # the outage used up no try
    assert during < 40 + 10  # a down gateway is probed once per pause, not once per text per poll
    assert recovered_in < 2.0 + 1.0  # back within a hold (2 s at most), plus slack for a busy machine


async def test_a_throttling_gateway_gets_every_text_once_at_the_pace_it_takes(open_store: OpenStore) -> None:
    gateway = ScriptedGateway(per_second=20)
    async with running(open_store, gateway) as messages:
        await messages.enqueue([text(f"call-{n}") for n in range(100)], now=time.time())
        started = time.monotonic()
        await all_in(messages, "sent", 100, within=30.0)
        took = time.monotonic() - started
    assert len(gateway.taken) == 100 and set(gateway.taken.values()) == {1}
    throttled = len(gateway.handed) - 100
    assert throttled < 100  # the outbox slows down instead of hammering: fewer refusals than texts
    assert took < 3 * 100 / 20  # and speeds up again: near the 5 s the gateway allows, not a crawl


async def test_a_send_with_no_answer_is_unknown_and_never_sent_again(open_store: OpenStore) -> None:
    gateway = ScriptedGateway(unanswered={"call-1"})
    async with running(open_store, gateway) as messages:
        await messages.enqueue([text("call-1"), text("call-2")], now=time.time())
        await all_in(messages, "unknown", 1)
        await all_in(messages, "sent", 1)
        await asyncio.sleep(1.5)  # well past every pause and poll: an unknown text stays as it is
        (row,) = [row for row in await messages.list_messages() if row.key == "call-1"]
    assert gateway.taken["call-1"] == 1
    assert row.state == "unknown" and "not sent again" in (row.error or "")


async def test_a_receipt_settles_a_text_whose_send_got_no_answer(open_store: OpenStore) -> None:
    """The SMSC took it and the link dropped before its answer: the receipt names no id we know, but the number
    and the start of the text."""
    gateway = ScriptedGateway(unanswered={"call-1"})
    async with running(open_store, gateway) as messages:
        await messages.enqueue([text("call-1"), text("call-2", to="+15550009999")], now=time.time())
        await all_in(messages, "unknown", 1)
        other_number = DeliveryReport("smsc-77", DeliveryState.DELIVERED, time.time(), recipient="+15550000000")
        wrong_text = DeliveryReport("smsc-78", DeliveryState.DELIVERED, time.time(), recipient=CALLER, text_start="Hi")
        right = DeliveryReport(
            "smsc-79", DeliveryState.DELIVERED, time.time(), recipient=CALLER[1:], text_start="Sorry we missed yo"
        )
        for report in (other_number, wrong_text, right):
            await messages.apply_report("gw", report)
        (row,) = [row for row in await messages.list_messages() if row.key == "call-1"]
    assert (row.state, row.message_id) == ("delivered", "smsc-79")
    assert gateway.taken["call-1"] == 1


async def test_a_text_the_gateway_never_takes_expires_with_the_reason(open_store: OpenStore) -> None:
    gateway = ScriptedGateway(down=True)
    async with running(open_store, gateway, max_age_s=1.0) as messages:
        await messages.enqueue([text("call-1")], now=time.time())
        await all_in(messages, "expired", 1, within=10.0)
        (row,) = await messages.list_messages()
    assert row.attempts == 0 and row.error == "not sent within 0.000277778 h: SMPP link down: refused"
    assert gateway.taken == Counter()


async def test_an_unknown_text_is_sent_again_only_when_configured_and_only_after_the_wait(
    open_store: OpenStore,
) -> None:
    gateway = ScriptedGateway(unanswered={"call-1"})
    async with running(open_store, gateway, resend_unknown_after_s=1.0) as messages:
        await messages.enqueue([text("call-1")], now=time.time())
        await all_in(messages, "unknown", 1)
        first = time.monotonic()
        gateway.unanswered.clear()
        await all_in(messages, "sent", 1, within=10.0)
        waited = time.monotonic() - first
    assert gateway.taken["call-1"] == 2 and waited >= 0.9


def test_pacing_halves_on_throttling_and_grows_back() -> None:
    pace = GatewayPace()
    for tick in range(30):
        assert pace.take(100.0 + tick / 100)
        pace.accepted(100.0 + tick / 100)
    pace.throttled(100.3)
    assert pace.rate == 15.0  # half of the 30 it took in the last second
    assert not pace.take(100.3)  # the next slot is 1/15 s away
    assert pace.take(100.3 + 1 / 15)
    for _ in range(200):
        pace.accepted(200.0)
    assert pace.rate is None  # grown past any limit: lifted


def test_a_burst_of_throttled_answers_halves_the_rate_once() -> None:
    pace = GatewayPace()
    for _ in range(20):
        pace.accepted(50.0)
    for _ in range(80):  # the rest of the burst, refused together
        pace.throttled(50.01)
    assert pace.rate == 10.0
    pace.throttled(51.02)  # a second later, still too fast: halved again
    assert pace.rate == 5.0


def test_a_down_gateway_is_probed_by_one_text_per_pause() -> None:
    pace = GatewayPace()
    held_until = pace.unavailable(10.0)
    assert held_until == 10.25 and not pace.take(10.1)
    assert pace.take(10.3)  # the probe
    assert not pace.take(10.3) and not pace.take(20.0)  # nothing else until the probe's answer
    assert pace.unavailable(10.4) == 10.9  # still down: a longer pause
    for _ in range(5):
        pace.unavailable(11.0)
    assert pace.held_until == 13.0  # capped at 2 s
    pace.answered()
    assert pace.take(13.0) and pace.take(13.0)  # back: no limit
