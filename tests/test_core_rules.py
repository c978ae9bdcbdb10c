"""The core texting rules as a caller and a business owner notice them.

Per caller and per business: one caller's STOP, or one caller's text, says nothing about another caller (nor about
another business). Boundaries are exact: the window, the minimum ring time, quiet hours and opening hours. A webhook
or a receipt delivered twice has one effect, counted as texts a gateway received and rows of the messages table, and
idempotency keys are the same for the same event and differ between events.

Everything runs for real: a SQLite file in tmp_path, the store, the text-back service and its outbox loop, and a
gateway that records what it is handed. Only the clock is the test's, so moments can be exact to the second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callbuddy_pbx.config import Business, Config, GatewayConfig, QuietHours, StorageConfig, TextBack, WeeklyHours
from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.recovery.policy import Decision, PolicyFacts, Reason, decide
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.sms.gateway import (
    DeliveryReport,
    DeliveryState,
    InboundHandler,
    InboundSms,
    OutgoingSms,
    ReportHandler,
    SendResult,
    SendStatus,
)
from callbuddy_pbx.store.db import CallStore
from tests.waiting import wait_until

NY = ZoneInfo("America/New_York")
HOUR = 3600.0
WINDOW_S = 2 * HOUR  # `window_hours: 2`: not the default, so the configured value is the one that counts

JANE = "+15557654321"  # fictional NANP numbers: their type is unknown, so they get the benefit of the doubt
JOHN = "+15557654322"
SALON_LINE = "+15550001000"
BARBER_LINE = "+15550002000"
GATEWAY = "rec"

SALON = Business(
    name="Glow Salon",
    numbers=(SALON_LINE,),
    timezone="America/New_York",
    booking_url="https://glow.example/book",
    text_back=TextBack(gateway=GATEWAY, window_s=WINDOW_S),
)
BARBER = Business(
    name="Sharp Cuts",
    numbers=(BARBER_LINE,),
    timezone="America/New_York",
    booking_url="https://sharp.example/book",
    text_back=TextBack(gateway=GATEWAY, window_s=WINDOW_S),
)
LINES = {SALON.name: SALON_LINE, BARBER.name: BARBER_LINE}


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """Unix time of a New York wall-clock time."""
    return datetime(year, month, day, hour, minute, second, tzinfo=NY).timestamp()


MONDAY_2PM = ny(2026, 11, 16, 14, 0)  # a whole second: the reply keys round the time down to one


# -- the pure policy at its boundaries ---------------------------------------------------------------------------------


def missed_call(
    caller: str = JANE,
    *,
    business: Business = SALON,
    ended_at: float = MONDAY_2PM,
    ring_s: float = 20.0,
    outcome: Outcome = Outcome.NO_ANSWER,
    linkedid: str = "1763319600.1",
) -> CallRecord:
    """A call that rang for `ring_s` seconds and ended at `ended_at`, to the business's first number."""
    ring_at = ended_at - ring_s
    return CallRecord(
        linkedid=linkedid,
        business=business.name,
        did=business.numbers[0],
        caller=caller,
        caller_raw=caller.lstrip("+"),
        caller_name=None,
        outcome=outcome,
        answered_by="PJSIP/101" if outcome is Outcome.ANSWERED else None,
        started_at=ring_at - 1.0,
        ring_at=ring_at,
        answered_at=ring_at + 5.0 if outcome is Outcome.ANSWERED else None,
        ended_at=ended_at,
        hangup_cause=16,
    )


def with_text_back(business: Business, **changes: Any) -> Business:
    return dataclasses.replace(business, text_back=dataclasses.replace(business.text_back, **changes))


def decide_at_hang_up(call: CallRecord, business: Business = SALON, facts: PolicyFacts | None = None) -> Decision:
    return decide(call, business, facts or PolicyFacts(), call.ended_at)


@pytest.mark.parametrize(
    ("since_last_text", "texted"),
    [(WINDOW_S - 1.0, False), (WINDOW_S, True), (WINDOW_S + 1.0, True)],
    ids=["one-second-before-the-window-ends", "exactly-at-the-window-end", "one-second-after"],
)
def test_the_window_ends_exactly_window_hours_after_the_last_text(since_last_text: float, texted: bool) -> None:
    call = missed_call()
    decision = decide_at_hang_up(call, facts=PolicyFacts(last_text_at=call.ended_at - since_last_text))
    assert (decision.send, decision.reason) == (
        (True, Reason.SEND) if texted else (False, Reason.ALREADY_TEXTED_IN_WINDOW)
    )


@pytest.mark.parametrize(
    ("ring_s", "texted"),
    [(4.0, False), (5.0, True), (6.0, True)],
    ids=["one-second-short", "exactly-min-ring-seconds", "one-second-more"],
)
def test_a_caller_who_hung_up_after_exactly_min_ring_seconds_is_texted(ring_s: float, texted: bool) -> None:
    call = missed_call(outcome=Outcome.ABANDONED, ring_s=ring_s)
    decision = decide_at_hang_up(call, with_text_back(SALON, min_ring_s=5.0))
    assert (decision.send, decision.reason) == ((True, Reason.SEND) if texted else (False, Reason.RANG_TOO_BRIEFLY))


NIGHT = QuietHours(time_of_day(21), time_of_day(8))  # crosses midnight
LUNCH = QuietHours(time_of_day(12), time_of_day(13))  # does not


@pytest.mark.parametrize(
    ("quiet", "hang_up", "send_at"),
    [
        (NIGHT, (2026, 11, 16, 20, 59, 59), (2026, 11, 16, 20, 59, 59)),
        (NIGHT, (2026, 11, 16, 21, 0, 0), (2026, 11, 17, 8, 0, 0)),
        (NIGHT, (2026, 11, 17, 7, 59, 59), (2026, 11, 17, 8, 0, 0)),
        (NIGHT, (2026, 11, 17, 8, 0, 0), (2026, 11, 17, 8, 0, 0)),
        (LUNCH, (2026, 11, 16, 11, 59, 59), (2026, 11, 16, 11, 59, 59)),
        (LUNCH, (2026, 11, 16, 12, 0, 0), (2026, 11, 16, 13, 0, 0)),
        (LUNCH, (2026, 11, 16, 12, 59, 59), (2026, 11, 16, 13, 0, 0)),
        (LUNCH, (2026, 11, 16, 13, 0, 0), (2026, 11, 16, 13, 0, 0)),
    ],
    ids=[
        "night-a-second-before-it-starts",
        "night-as-it-starts",
        "night-a-second-before-it-ends",
        "night-as-it-ends",
        "lunch-a-second-before-it-starts",
        "lunch-as-it-starts",
        "lunch-a-second-before-it-ends",
        "lunch-as-it-ends",
    ],
)
def test_quiet_hours_start_at_their_start_and_are_over_at_their_end(
    quiet: QuietHours, hang_up: tuple[int, ...], send_at: tuple[int, ...]
) -> None:
    decision = decide_at_hang_up(missed_call(ended_at=ny(*hang_up)), with_text_back(SALON, quiet_hours=quiet))
    deferred = send_at != hang_up
    assert decision.send
    assert decision.reason is (Reason.DEFERRED_QUIET_HOURS if deferred else Reason.SEND)
    assert decision.send_at == ny(*send_at)


def test_a_hold_off_that_ends_exactly_as_quiet_hours_start_waits_for_the_morning() -> None:
    business = with_text_back(SALON, quiet_hours=NIGHT, hold_off_s=300.0)
    just_in_time = decide_at_hang_up(missed_call(ended_at=ny(2026, 11, 16, 20, 54, 59)), business)
    assert (just_in_time.reason, just_in_time.send_at) == (Reason.SEND, ny(2026, 11, 16, 20, 59, 59))
    too_late = decide_at_hang_up(missed_call(ended_at=ny(2026, 11, 16, 20, 55, 0)), business)
    assert (too_late.reason, too_late.send_at) == (Reason.DEFERRED_QUIET_HOURS, ny(2026, 11, 17, 8, 0))


@pytest.mark.parametrize(
    ("started", "open_"),
    [
        ((8, 59, 59), False),
        ((9, 0, 0), True),
        ((16, 59, 59), True),
        ((17, 0, 0), False),
    ],
    ids=["a-second-before-opening", "at-opening", "a-second-before-closing", "at-closing"],
)
def test_opening_hours_include_the_opening_time_and_exclude_the_closing_time(
    started: tuple[int, int, int], open_: bool
) -> None:
    nine_to_five = WeeklyHours(tuple(((time_of_day(9), time_of_day(17)),) for _ in range(7)))
    business = dataclasses.replace(
        with_text_back(SALON, template="open: {business}", after_hours_template="closed: {business}"),
        hours=nine_to_five,
    )
    start = ny(2026, 11, 16, *started)
    call = dataclasses.replace(missed_call(ended_at=start + 30), started_at=start, ring_at=start)
    assert decide_at_hang_up(call, business).text == ("open: Glow Salon" if open_ else "closed: Glow Salon")


# -- the running service: store, text-back, outbox, a recording gateway ---------------------------------------------


@dataclass
class Clock:
    now: float = MONDAY_2PM

    def __call__(self) -> float:
        return self.now


class RecordingGateway:
    """Accepts every text and keeps it; the test plays the network's side (receipts, replies) by hand."""

    def __init__(self, name: str = GATEWAY) -> None:
        self.name = name
        self.in_flight_limit = 10
        self.sent: list[OutgoingSms] = []
        self._on_report: ReportHandler | None = None
        self._on_inbound: InboundHandler | None = None

    async def start(self, on_report: ReportHandler, on_inbound: InboundHandler) -> None:
        self._on_report, self._on_inbound = on_report, on_inbound

    async def send(self, sms: OutgoingSms) -> SendResult:
        self.sent.append(sms)
        return SendResult(SendStatus.ACCEPTED, message_id=f"rec-{len(self.sent)}")

    async def close(self) -> None:
        return None

    async def reply(self, sender: str, to: str, text: str) -> None:
        """A phone texts one of our numbers (the gateway's inbound webhook)."""
        assert self._on_inbound is not None, "start() first"
        await self._on_inbound(InboundSms(sender, to, text, 0.0))

    async def receipt(self, message_id: str, state: DeliveryState, at: float) -> None:
        """The network reports on a text (the gateway's status webhook)."""
        assert self._on_report is not None, "start() first"
        await self._on_report(DeliveryReport(message_id, state, at, detail=state.value.upper()))


@dataclass(frozen=True)
class Text:
    """One row of the messages table, read from the file (not through the code under test)."""

    key: str
    kind: str
    business: str | None
    to: str
    sender: str
    state: str
    message_id: str | None
    done_at: float | None
    error: str | None


@dataclass
class Desk:
    """The text-back service running on a SQLite file, with the test's clock and gateway."""

    service: TextBackService
    gateway: RecordingGateway
    clock: Clock
    db: Path
    _calls: int = field(default=0)

    def texts(self) -> list[Text]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT key, kind, business, to_number, sender, state, message_id, done_at, error"
                " FROM messages ORDER BY id"
            ).fetchall()
        return [Text(*row) for row in rows]

    def idle(self) -> bool:
        """Nothing is being sent, and nothing that is due waits to be."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            (busy,) = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE state = 'sending' OR (state = 'queued' AND send_at <= ?)",
                (self.clock.now,),
            ).fetchone()
        return bool(busy == 0)

    async def settled(self) -> list[Text]:
        """Once the outbox has sent everything due (and is sending nothing), the messages table."""
        self.service.outbox.wake()
        await wait_until(self.idle)
        return self.texts()

    async def call(self, caller: str, business: Business = SALON, *, outcome: Outcome = Outcome.NO_ANSWER) -> str:
        """A call from `caller` that just ended; returns the stored verdict's reason."""
        self._calls += 1
        record = missed_call(
            caller,
            business=business,
            ended_at=self.clock.now - 1.0,
            outcome=outcome,
            linkedid=f"{self.clock.now:.0f}.{self._calls}",
        )
        await self.service.record_calls([record])
        verdict = await self.service.messages.verdict(record.linkedid)
        assert verdict is not None
        return verdict.reason

    def sent(self) -> list[tuple[str, str]]:
        """What the gateway was handed, in order: (to, text)."""
        return [(sms.to, sms.text) for sms in self.gateway.sent]


@contextlib.asynccontextmanager
async def desk(tmp_path: Path, *businesses: Business) -> AsyncIterator[Desk]:
    db = tmp_path / "calls.sqlite3"
    config = Config(
        businesses=businesses or (SALON, BARBER),
        gateways=(GatewayConfig(name=GATEWAY, kind="simulated", rate_per_s=0),),
        storage=StorageConfig(db),
    )
    store = await CallStore.open(db)
    gateway = RecordingGateway()
    clock = Clock()
    service = TextBackService(config, store, {GATEWAY: gateway}, clock=clock)
    await service.start()
    outbox = asyncio.create_task(service.outbox.run())
    try:
        yield Desk(service, gateway, clock, db)
    finally:
        outbox.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await outbox
        await service.close()
        await store.close()


# What the salon's callers receive (the default templates).
MISSED = (
    "Hi, this is Glow Salon. Sorry we missed your call! Book online: https://glow.example/book Reply STOP to opt out."
)
HELP = "Glow Salon: missed-call texts. Book online: https://glow.example/book Reply STOP to opt out."
STOPPED = "Glow Salon: you will get no more texts from us. Reply START to undo."


# -- per caller, per business ------------------------------------------------------------------------------------


async def test_a_second_caller_is_texted_while_the_first_is_inside_the_window(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        assert await d.call(JANE) == Reason.SEND
        await d.settled()
        d.clock.now += 60
        assert await d.call(JOHN) == Reason.SEND  # Jane's text says nothing about John
        assert await d.call(JANE) == Reason.ALREADY_TEXTED_IN_WINDOW
        texts = await d.settled()
        assert d.sent() == [(JANE, MISSED), (JOHN, MISSED)]
        assert [(t.to, t.kind, t.state) for t in texts] == [
            (JANE, "missed_call", "sent"),
            (JOHN, "missed_call", "sent"),
        ]


async def test_a_caller_texted_by_one_business_is_still_texted_by_another(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        assert await d.call(JANE, SALON) == Reason.SEND
        await d.settled()
        d.clock.now += 60
        assert await d.call(JANE, BARBER) == Reason.SEND
        texts = await d.settled()
        assert [(t.to, t.business) for t in texts] == [(JANE, SALON.name), (JANE, BARBER.name)]
        assert len(d.gateway.sent) == 2


async def test_two_callers_missed_in_one_batch_are_both_texted_and_a_repeat_caller_once(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        calls = [
            missed_call(JANE, linkedid="b.1"),
            missed_call(JOHN, linkedid="b.2"),
            missed_call(JANE, linkedid="b.3"),
        ]
        calls = [dataclasses.replace(c, ended_at=d.clock.now - 1) for c in calls]
        assert await d.service.record_calls(calls) == 3
        reasons = [(await d.service.messages.verdict(c.linkedid)) for c in calls]
        assert [v.reason if v else None for v in reasons] == [
            Reason.SEND,
            Reason.SEND,
            Reason.ALREADY_TEXTED_IN_WINDOW,
        ]
        await d.settled()
        assert sorted(to for to, _ in d.sent()) == [JANE, JOHN]


async def test_one_callers_stop_does_not_silence_the_business_for_other_callers(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.gateway.reply(JANE, SALON_LINE, "STOP")
        d.clock.now += 60
        assert await d.call(JANE) == Reason.OPTED_OUT
        assert await d.call(JOHN) == Reason.SEND  # John never said STOP
        assert await d.call(JANE, BARBER) == Reason.SEND  # Jane stopped the salon's texts, not the barber's
        texts = await d.settled()
        assert [(t.to, t.kind, t.business) for t in texts] == [
            (JANE, "opt_out_confirmation", SALON.name),
            (JOHN, "missed_call", SALON.name),
            (JANE, "missed_call", BARBER.name),
        ]
        assert len(d.gateway.sent) == 3


async def test_start_after_stop_lets_that_caller_be_texted_again(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.gateway.reply(JANE, SALON_LINE, "STOP")
        await d.gateway.reply(JOHN, SALON_LINE, "STOP")
        await d.gateway.reply(JANE, SALON_LINE, "START")
        assert await d.call(JANE) == Reason.SEND
        assert await d.call(JOHN) == Reason.OPTED_OUT  # Jane's START says nothing about John
        await d.settled()
        assert sorted(d.sent()) == sorted([(JANE, MISSED), (JANE, STOPPED), (JOHN, STOPPED)])


async def test_a_stop_cancels_only_that_callers_waiting_text(tmp_path: Path) -> None:
    async with desk(tmp_path, with_text_back(SALON, hold_off_s=300.0)) as d:
        assert await d.call(JANE) == Reason.SEND
        assert await d.call(JOHN) == Reason.SEND
        await d.gateway.reply(JANE, SALON_LINE, "stop")
        await d.settled()
        assert d.sent() == [(JANE, STOPPED)]  # both missed-call texts wait for the hold-off
        d.clock.now += 300
        texts = await d.settled()
        assert [(t.to, t.kind, t.state, t.error) for t in texts] == [
            (JANE, "missed_call", "cancelled", "opted out"),
            (JOHN, "missed_call", "sent", None),
            (JANE, "opt_out_confirmation", "sent", None),
        ]
        assert d.sent() == [(JANE, STOPPED), (JOHN, MISSED)]


async def test_an_answered_call_cancels_only_that_callers_waiting_text(tmp_path: Path) -> None:
    async with desk(tmp_path, with_text_back(SALON, hold_off_s=300.0)) as d:
        assert await d.call(JANE) == Reason.SEND
        assert await d.call(JOHN) == Reason.SEND
        d.clock.now += 60
        assert await d.call(JOHN, outcome=Outcome.ANSWERED) == Reason.ANSWERED  # John called back; he was answered
        d.clock.now += 300
        texts = await d.settled()
        assert [(t.to, t.state) for t in texts] == [(JANE, "sent"), (JOHN, "cancelled")]
        assert d.sent() == [(JANE, MISSED)]


# -- the window, through the store ----------------------------------------------------------------------------------


async def test_a_caller_is_texted_again_exactly_window_hours_after_the_last_text(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        first = d.clock.now
        assert await d.call(JANE) == Reason.SEND
        await d.settled()
        d.clock.now = first + WINDOW_S - 1
        assert await d.call(JANE) == Reason.ALREADY_TEXTED_IN_WINDOW
        d.clock.now = first + WINDOW_S
        assert await d.call(JANE) == Reason.SEND
        d.clock.now = first + WINDOW_S + 1
        assert await d.call(JANE) == Reason.ALREADY_TEXTED_IN_WINDOW  # the window starts again from the new text
        texts = await d.settled()
        assert [(t.to, t.kind, t.state) for t in texts] == [(JANE, "missed_call", "sent")] * 2
        assert d.sent() == [(JANE, MISSED)] * 2


async def test_a_text_that_failed_does_not_hold_the_caller_back(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        assert await d.call(JANE) == Reason.SEND
        (text,) = await d.settled()
        assert text.message_id is not None
        await d.gateway.receipt(text.message_id, DeliveryState.FAILED, d.clock.now)
        d.clock.now += 60
        assert await d.call(JANE) == Reason.SEND  # the first text never reached her
        await d.settled()
        assert d.sent() == [(JANE, MISSED)] * 2


# -- webhooks and receipts delivered twice: one effect ----------------------------------------------------------------


async def test_a_help_webhook_delivered_twice_after_its_answer_went_out_sends_one_answer(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        await d.gateway.reply(JANE, SALON_LINE, "HELP")
        await wait_until(lambda: len(d.gateway.sent) == 1)
        await d.settled()
        await d.gateway.reply(JANE, SALON_LINE, "HELP")  # the gateway retried its webhook: the very same event
        texts = await d.settled()
        assert [(t.to, t.kind, t.state) for t in texts] == [(JANE, "help", "sent")]
        assert d.sent() == [(JANE, HELP)]
        assert d.gateway.sent[0].sender == SALON_LINE


async def test_a_help_repeated_within_one_second_gets_one_answer(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        d.clock.now = MONDAY_2PM + 0.2
        await d.gateway.reply(JANE, SALON_LINE, "HELP")
        await d.settled()
        d.clock.now = MONDAY_2PM + 0.7  # the duplicate arrives half a second later, in the same second
        await d.gateway.reply(JANE, SALON_LINE, "help")
        texts = await d.settled()
        assert [(t.to, t.kind) for t in texts] == [(JANE, "help")]
        assert d.sent() == [(JANE, HELP)]


async def test_a_stop_repeated_within_one_second_opts_out_and_confirms_once(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        d.clock.now = MONDAY_2PM + 0.2
        await d.gateway.reply(JANE, SALON_LINE, "STOP")
        d.clock.now = MONDAY_2PM + 0.7
        await d.gateway.reply(JANE, SALON_LINE, "STOP")
        texts = await d.settled()
        assert [(t.to, t.kind) for t in texts] == [(JANE, "opt_out_confirmation")]
        assert len(d.gateway.sent) == 1


async def test_a_free_text_reply_delivered_twice_sends_nothing_and_changes_nothing(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        for _ in range(2):
            await d.gateway.reply(JANE, SALON_LINE, "Can I book for 3pm?")
        assert await d.settled() == []
        assert await d.call(JANE) == Reason.SEND  # a reply is no opt-out, and no text counts against the window
        await d.settled()
        assert d.sent() == [(JANE, MISSED)]


@pytest.mark.parametrize("state", [DeliveryState.DELIVERED, DeliveryState.FAILED])
async def test_a_receipt_delivered_twice_has_one_effect(tmp_path: Path, state: DeliveryState) -> None:
    async with desk(tmp_path) as d:
        assert await d.call(JANE) == Reason.SEND
        (text,) = await d.settled()
        assert text.message_id is not None
        first_at = d.clock.now + 5
        await d.gateway.receipt(text.message_id, state, first_at)
        await d.gateway.receipt(text.message_id, state, first_at + 30)  # the same receipt, delivered again
        (text,) = await d.settled()
        assert (text.state, text.done_at) == (state.value, first_at)  # the first receipt's time, kept
        assert len(d.gateway.sent) == 1  # a failed text is not sent again either


# -- idempotency keys ------------------------------------------------------------------------------------------------


async def test_a_missed_calls_text_is_keyed_by_its_call(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        call = missed_call(JANE, linkedid="1763319600.7", ended_at=d.clock.now - 1)
        other_caller = missed_call(JOHN, linkedid="1763319600.8", ended_at=d.clock.now - 1)
        other_business = missed_call(JANE, business=BARBER, linkedid="1763319600.9", ended_at=d.clock.now - 1)
        assert await d.service.record_calls([call, other_caller, other_business]) == 3
        await d.settled()
        d.clock.now += WINDOW_S + 1  # outside the window, so only the key can stop a second text
        assert await d.service.record_calls([call]) == 0  # the same call again (AMI replay after a reconnect)
        texts = await d.settled()
        assert len(texts) == 3 and len({t.key for t in texts}) == 3
        assert len(d.gateway.sent) == 3
        assert sorted(sms.key for sms in d.gateway.sent) == sorted(t.key for t in texts)  # handed to the gateway


async def test_a_missed_calls_key_depends_on_the_call_alone_not_on_when_or_where_it_was_handled(
    tmp_path: Path,
) -> None:
    """Gateways are handed the key (the generic HTTP gateway sends it, Kannel puts it in its receipt URL): the same
    call handled again elsewhere or later (a restored database, a replay) must be the same text to them."""
    keys: list[list[str]] = []
    for place, delay in (("first", 0.0), ("second", 3 * HOUR + 0.5)):
        async with desk(tmp_path / place) as d:
            d.clock.now += delay
            calls = [missed_call(JANE, linkedid="1763319600.7"), missed_call(JOHN, linkedid="1763319600.8")]
            await d.service.record_calls([dataclasses.replace(c, ended_at=d.clock.now - 1) for c in calls])
            await d.settled()
            keys.append([sms.key for sms in sorted(d.gateway.sent, key=lambda sms: sms.to)])
    assert keys[0] == keys[1]  # the same calls: the same keys
    assert len(set(keys[0])) == 2  # two calls: two keys


async def test_reply_keys_tell_apart_caller_business_kind_and_moment_but_not_a_repeat(tmp_path: Path) -> None:
    async with desk(tmp_path) as d:
        for sender, line, text in [
            (JANE, SALON_LINE, "HELP"),
            (JOHN, SALON_LINE, "HELP"),  # another caller
            (JANE, BARBER_LINE, "HELP"),  # another business
            (JANE, SALON_LINE, "STOP"),  # another kind of answer
            (JANE, SALON_LINE, "HELP"),  # the first one again
        ]:
            await d.gateway.reply(sender, line, text)
        await d.settled()
        d.clock.now += 60
        await d.gateway.reply(JOHN, SALON_LINE, "HELP")  # John asks again a minute later: a new message
        texts = await d.settled()
        assert [(t.to, t.business, t.kind) for t in texts] == [
            (JANE, SALON.name, "help"),
            (JOHN, SALON.name, "help"),
            (JANE, BARBER.name, "help"),
            (JANE, SALON.name, "opt_out_confirmation"),
            (JOHN, SALON.name, "help"),
        ]
        assert len({t.key for t in texts}) == 5
        assert len(d.gateway.sent) == 5
        assert [sms.sender for sms in d.gateway.sent] == [SALON_LINE, SALON_LINE, BARBER_LINE, SALON_LINE, SALON_LINE]
