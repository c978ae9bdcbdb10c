"""Recovery marks (store/recovery.py): which sign recovers a missed call, when, and that marking is idempotent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from callbuddy_pbx.asterisk.outbound import OutboundAnswer
from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.links import LinkStore, NewLink, insert_links
from callbuddy_pbx.store.messages import MessageStore, NewText
from callbuddy_pbx.store.recovery import RECOVERY_WINDOW_S, RecoveryStore
from tests.conftest import OpenStore

GLOW, BOLT = "Glow Salon", "Bolt Garage"
JANE, BOB = "+15557654321", "+15553334444"
T = 1_800_000_000.0  # the missed call ends here


def call(linkedid: str, outcome: Outcome, started_at: float, caller: str = JANE, business: str = GLOW) -> CallRecord:
    answered = outcome is Outcome.ANSWERED
    return CallRecord(
        linkedid=linkedid,
        business=business,
        did="+15550001000",
        caller=caller,
        caller_raw=caller,
        caller_name=None,
        outcome=outcome,
        answered_by="PJSIP/101" if answered else None,
        started_at=started_at,
        ring_at=started_at + 1,
        answered_at=started_at + 5 if answered else None,
        ended_at=started_at + 30,
        hangup_cause=16,
    )


MISSED = call("miss.1", Outcome.NO_ANSWER, T - 30)  # ends at T


def desk(linkedid: str, at: float, number: str = JANE, business: str | None = GLOW) -> OutboundAnswer:
    return OutboundAnswer(linkedid, business, "PJSIP/100", number, at)


@pytest.fixture
async def store(open_store: OpenStore) -> AsyncIterator[CallStore]:
    async with await open_store() as opened:
        await opened.save_calls([MISSED])
        yield opened


async def marks(store: CallStore) -> dict[str, tuple[str, float, str]]:
    async with store.connection.execute("SELECT linkedid, how, recovered_at, source FROM recoveries") as cursor:
        return {str(r[0]): (str(r[1]), float(r[2]), str(r[3])) for r in await cursor.fetchall()}


async def test_a_desk_call_back_answered_recovers_the_missed_call(store: CallStore) -> None:
    recovery = RecoveryStore(store)
    assert await recovery.record_outbound([desk("out.1", T + 600)], T + 601) == 1
    assert await marks(store) == {"miss.1": ("called_back", T + 600, "out.1")}


async def test_the_caller_calling_again_and_answered_recovers_it(store: CallStore) -> None:
    later = call("again.1", Outcome.ANSWERED, T + 100)
    await store.save_calls([later])
    await RecoveryStore(store).mark_calls([later], T + 200)
    assert await marks(store) == {"miss.1": ("called_again", T + 105, "again.1")}  # when a person answered


async def test_what_is_no_sign(store: CallStore) -> None:
    """Another number, another business, a desk call not answered before the miss, a call again missed too, a
    keyword reply, a reply before the miss, and signs after the window: none recovers the call."""
    recovery, messages = RecoveryStore(store), MessageStore(store)
    others = [
        call("bob.1", Outcome.ANSWERED, T + 10, caller=BOB),
        call("bolt.1", Outcome.ANSWERED, T + 10, business=BOLT),
        call("again.missed", Outcome.BUSY, T + 10),
        call("late.1", Outcome.ANSWERED, T + RECOVERY_WINDOW_S + 100),
        call("before.1", Outcome.ANSWERED, T - 200),
    ]
    await store.save_calls(others)
    await recovery.mark_calls(others, T + 20)
    await recovery.record_outbound(
        [desk("o.bob", T + 5, number=BOB), desk("o.bolt", T + 5, business=BOLT), desk("o.before", T - 1),
         desk("o.late", T + RECOVERY_WINDOW_S + 100), desk("o.nobody", T + 5, business=None)],
        T + 20,
    )  # fmt: skip
    await messages.record_inbound("sim", JANE, "+15550001000", GLOW, "STOP", "opt_out", T + 30, key="k1")
    await messages.record_inbound("sim", JANE, "+15550001000", GLOW, "hi", "other", T - 1, key="k2")
    await messages.record_inbound("sim", JANE, "+15550001000", BOLT, "hi", "other", T + 30, key="k3")
    await recovery.sweep(T + 40)
    assert await marks(store) == {}


async def test_a_reply_in_words_recovers_it(store: CallStore) -> None:
    await MessageStore(store).record_inbound("sim", JANE, "+15550001000", GLOW, "Can I come at 3?", "other", T + 50)
    await RecoveryStore(store).sweep(T + 60)
    ((linkedid, (how, at, source)),) = (await marks(store)).items()
    assert (linkedid, how, at, source[0]) == ("miss.1", "replied", T + 50, "r")


async def test_opening_the_booking_link_recovers_it_as_booked(store: CallStore) -> None:
    async with store.transaction() as conn:
        await insert_links(conn, [NewLink("miss.1", "tok", "https://book.example", "miss.1", GLOW)], {"miss.1"}, T)
    await LinkStore(store).record_click("tok", T + 70, "Mozilla/5.0")
    await RecoveryStore(store).sweep(T + 80)
    ((how, at, source),) = (await marks(store)).values()
    assert (how, at, source[0]) == ("booked", T + 70, "k")


async def test_the_earliest_sign_wins_whatever_order_they_are_stored_in(store: CallStore) -> None:
    recovery = RecoveryStore(store)
    await recovery.record_outbound([desk("out.late", T + 900)], T + 901)
    assert (await marks(store))["miss.1"][0] == "called_back"
    earlier = call("again.1", Outcome.ANSWERED, T + 100)  # found late (e.g. in CEL): answered before the call back
    await store.save_calls([earlier])
    await recovery.mark_calls([earlier], T + 1000)
    assert await marks(store) == {"miss.1": ("called_again", T + 105, "again.1")}
    await recovery.record_outbound([desk("out.later", T + 2000)], T + 2001)  # a later sign never moves it
    await recovery.sweep(T + 2002)
    assert await marks(store) == {"miss.1": ("called_again", T + 105, "again.1")}


async def test_a_missed_call_stored_after_its_sign_is_marked(open_store: OpenStore) -> None:
    async with await open_store("late") as store:
        recovery = RecoveryStore(store)
        await recovery.record_outbound([desk("out.1", T + 600)], T + 601)
        await store.save_calls([MISSED])  # judged late from CEL
        await recovery.mark_calls([MISSED], T + 700)
        assert await marks(store) == {"miss.1": ("called_back", T + 600, "out.1")}


async def test_marking_again_changes_nothing(store: CallStore) -> None:
    """Replayed desk calls, re-judged calls and sweeps: one row, the same values, the first marked_at kept."""
    recovery = RecoveryStore(store)
    await recovery.record_outbound([desk("out.1", T + 600)], T + 601)
    async with store.connection.execute("SELECT * FROM recoveries") as cursor:
        first = await cursor.fetchall()
    assert await recovery.record_outbound([desk("out.1", T + 600)], T + 700) == 0
    await store.save_calls([MISSED])
    await recovery.mark_calls([MISSED, replace(MISSED, linkedid="miss.1")], T + 800)
    await recovery.sweep(T + 900)
    async with store.connection.execute("SELECT * FROM recoveries") as cursor:
        assert [tuple(r) for r in await cursor.fetchall()] == [tuple(r) for r in first]
    async with store.connection.execute("SELECT COUNT(*) FROM outbound_calls") as cursor:
        assert tuple(await cursor.fetchone() or ()) == (1,)


async def test_every_missed_call_of_the_caller_before_the_sign_is_recovered(store: CallStore) -> None:
    second = call("miss.2", Outcome.ABANDONED, T + 300)
    await store.save_calls([second])
    await RecoveryStore(store).record_outbound([desk("out.1", T + 600)], T + 601)
    assert set(await marks(store)) == {"miss.1", "miss.2"}


async def test_the_sweep_looks_back_one_window(store: CallStore) -> None:
    await MessageStore(store).record_inbound("sim", JANE, "+15550001000", GLOW, "hello", "other", T + 50)
    await RecoveryStore(store).sweep(T + RECOVERY_WINDOW_S + 1)  # the missed call ended before the last week
    assert await marks(store) == {}
    await RecoveryStore(store).sweep(T + RECOVERY_WINDOW_S - 1)
    assert set(await marks(store)) == {"miss.1"}


async def text_state(store: CallStore) -> tuple[str, str | None]:
    (row,) = await MessageStore(store).list_messages()
    return row.state, row.error


async def queue_text(store: CallStore) -> None:
    text = NewText("miss.1", "missed_call", JANE, "+15550001000", "sim", "Sorry", T + 3600, GLOW, "miss.1")
    await MessageStore(store).enqueue([text], T)


async def test_a_call_back_cancels_the_text_still_held_off(store: CallStore) -> None:
    await queue_text(store)
    await RecoveryStore(store).record_outbound([desk("out.1", T + 60)], T + 61)
    assert await text_state(store) == ("cancelled", "called back from a desk")


async def test_a_call_back_stored_before_the_missed_call_cancels_its_text(open_store: OpenStore) -> None:
    async with await open_store("race") as store:
        recovery = RecoveryStore(store)
        await recovery.record_outbound([desk("out.1", T + 60)], T + 61)  # the marker won the race with the writer
        await store.save_calls([MISSED])
        await queue_text(store)
        await recovery.mark_calls([MISSED], T + 62)
        assert await text_state(store) == ("cancelled", "called back from a desk")


async def test_a_call_out_before_the_miss_or_to_another_number_cancels_nothing(store: CallStore) -> None:
    await queue_text(store)
    recovery = RecoveryStore(store)
    await recovery.record_outbound([desk("out.0", T - 1), desk("out.bob", T + 60, number=BOB)], T + 61)
    await recovery.mark_calls([MISSED], T + 62)
    assert await text_state(store) == ("queued", None)


@pytest.mark.parametrize(("days", "got_back"), [(6.9, True), (7.1, False)])
async def test_a_sign_counts_within_a_week_of_the_miss(store: CallStore, days: float, got_back: bool) -> None:
    await RecoveryStore(store).record_outbound([desk("out.1", T + days * 86400)], T)
    assert bool(await marks(store)) is got_back
