"""Delivery receipts reach the text they are about when a gateway reuses message ids.

An SMSC or provider numbers its messages from a counter that restarts or wraps (the demo's SMSC starts at 1000001
each run), so `gateway + message id` alone does not name one text: a receipt goes to the newest text with that id
sent within RECEIPT_WINDOW_S and, when the receipt names the number (SMPP receipts carry it), sent to that number.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState
from callbuddy_pbx.store.messages import RECEIPT_WINDOW_S, MessageStore, NewText, SendUpdate, same_number
from tests.conftest import OpenStore

DAY = 86400.0
T0 = 1_800_000_000.0  # a fixed "now" (2027): every time below is relative to it
ALICE, BOB = "+15557650001", "+15557650002"


@pytest.fixture
async def messages(open_store: OpenStore) -> AsyncIterator[MessageStore]:
    store = await open_store()
    try:
        yield MessageStore(store)
    finally:
        await store.close()


async def sent(messages: MessageStore, key: str, to: str, message_id: str, at: float, gateway: str = "smsc") -> int:
    """Queue, claim and record as sent (with `message_id`) one text at `at`; returns its row id."""
    text = NewText(key, "missed_call", to, "+15550001000", gateway, f"hello {key}", send_at=at, business="Glow Salon")
    await messages.enqueue([text], now=at)
    (row,) = await messages.list_messages(limit=1, linkedid=None, state="queued")
    assert await messages.claim([row.id], at) == [row.id]
    await messages.apply_send_results([SendUpdate(row.id, "sent", 1, at, message_id, None, at)])
    return row.id


async def states(messages: MessageStore) -> dict[str, tuple[str, str | None]]:
    return {row.key: (row.state, row.error) for row in await messages.list_messages(limit=100)}


def receipt(
    message_id: str, at: float, to: str | None, state: DeliveryState = DeliveryState.DELIVERED
) -> DeliveryReport:
    detail = {DeliveryState.DELIVERED: "DELIVRD", DeliveryState.FAILED: "UNDELIV"}.get(state, "")
    return DeliveryReport(message_id, state, at, detail=detail, recipient=to)


async def test_same_id_different_recipients_each_receipt_lands_on_its_own_text(messages: MessageStore) -> None:
    """Two texts share an id (two runs of an SMSC that numbers from 1000001): each number's receipt is its own."""
    await sent(messages, "run1", ALICE, "1000001", T0)
    await sent(messages, "run2", BOB, "1000001", T0 + 60)
    # Alice's receipt comes last and says undelivered; Bob's says delivered.
    assert await messages.apply_report("smsc", receipt("1000001", T0 + 61, BOB)) is True
    assert await messages.apply_report("smsc", receipt("1000001", T0 + 62, ALICE, DeliveryState.FAILED)) is True
    got = await states(messages)
    assert got["run2"][0] == "delivered"
    assert got["run1"][0] == "failed"


async def test_an_older_text_with_the_same_id_does_not_take_the_new_receipt(messages: MessageStore) -> None:
    """Same number, same id, two days apart: the receipt goes to the newest text, the old one stays as it was."""
    await sent(messages, "monday", ALICE, "1000001", T0)
    await sent(messages, "wednesday", ALICE, "1000001", T0 + 2 * DAY)
    assert await messages.apply_report("smsc", receipt("1000001", T0 + 2 * DAY + 5, ALICE)) is True
    got = await states(messages)
    assert got["wednesday"][0] == "delivered"
    assert got["monday"][0] == "sent"


async def test_a_settled_old_text_does_not_swallow_the_receipt_of_a_new_one(messages: MessageStore) -> None:
    """The demo's second run: the first run's text with that id is already delivered; the new one must not stay
    `sent` for ever (the first-row-wins lookup found the old text and dropped the receipt as a duplicate)."""
    await sent(messages, "run1", ALICE, "1000001", T0)
    assert await messages.apply_report("smsc", receipt("1000001", T0 + 2, ALICE)) is True
    old_id = (await messages.list_messages(limit=1))[0].id
    new_id = await sent(messages, "run2", ALICE, "1000001", T0 + 300)
    assert new_id > old_id
    assert await messages.apply_report("smsc", receipt("1000001", T0 + 303, ALICE, DeliveryState.FAILED)) is True
    got = await states(messages)
    assert got["run1"][0] == "delivered"
    assert got["run2"] == ("failed", "UNDELIV")


async def test_a_text_sent_longer_ago_than_its_validity_never_takes_a_receipt(messages: MessageStore) -> None:
    """The only text with the id was sent five days ago: the receipt is not its (kept for a text yet to be recorded)."""
    await sent(messages, "old", ALICE, "1000001", T0)
    late = T0 + RECEIPT_WINDOW_S + 60
    text = NewText("new", "missed_call", ALICE, "+15550001000", "smsc", "hi new", send_at=late, business="Glow Salon")
    await messages.enqueue([text], now=late - 2)
    (new,) = await messages.list_messages(limit=1, state="queued")
    await messages.claim([new.id], late - 2)
    assert await messages.apply_report("smsc", receipt("1000001", late, ALICE)) is False
    assert (await states(messages))["old"][0] == "sent"
    # ... and the text it was for, whose send is recorded afterwards, gets it.
    await messages.apply_send_results([SendUpdate(new.id, "sent", 1, late, "1000001", None, late + 1)])
    got = await states(messages)
    assert (got["old"][0], got["new"][0]) == ("sent", "delivered")


async def test_within_the_window_a_receipt_without_a_number_goes_to_the_newest_text(messages: MessageStore) -> None:
    """HTTP gateways' receipts name no number: the newest text with the id (within the window) is the one."""
    await sent(messages, "a", ALICE, "abc", T0, gateway="http")
    await sent(messages, "b", BOB, "abc", T0 + DAY, gateway="http")
    assert await messages.apply_report("http", receipt("abc", T0 + DAY + 3, None)) is True
    got = await states(messages)
    assert (got["a"][0], got["b"][0]) == ("sent", "delivered")


async def test_a_receipt_for_another_number_is_kept_not_given_to_the_text_with_its_id(messages: MessageStore) -> None:
    """Bob's receipt overtakes the recording of Bob's send; Alice's text has the same id: it must not take it."""
    await sent(messages, "alice", ALICE, "1000001", T0)
    text = NewText("bob", "missed_call", BOB, "+15550001000", "smsc", "hello bob", send_at=T0, business="Glow Salon")
    await messages.enqueue([text], now=T0 + 10)
    (bob,) = await messages.list_messages(limit=1, state="queued")
    await messages.claim([bob.id], T0 + 10)
    assert await messages.apply_report("smsc", receipt("1000001", T0 + 11, BOB)) is False  # kept
    assert (await states(messages))["alice"][0] == "sent"
    await messages.apply_send_results([SendUpdate(bob.id, "sent", 1, T0 + 10, "1000001", None, T0 + 12)])
    got = await states(messages)
    assert (got["alice"][0], got["bob"][0]) == ("sent", "delivered")


async def test_an_early_receipt_for_a_reused_id_waits_for_its_own_text(messages: MessageStore) -> None:
    """Same number: the old text with the id is settled and a new text to that number is being sent; a receipt
    for the id is kept for the new text, not dropped as the old one's duplicate."""
    await sent(messages, "old", ALICE, "1000001", T0)
    assert await messages.apply_report("smsc", receipt("1000001", T0 + 1, ALICE)) is True
    text = NewText("new", "missed_call", ALICE, "+15550001000", "smsc", "hi new", send_at=T0, business="Glow Salon")
    await messages.enqueue([text], now=T0 + 600)
    (new,) = await messages.list_messages(limit=1, state="queued")
    await messages.claim([new.id], T0 + 600)
    failed = receipt("1000001", T0 + 601, ALICE, DeliveryState.FAILED)
    assert await messages.apply_report("smsc", failed) is False
    await messages.apply_send_results([SendUpdate(new.id, "sent", 1, T0 + 600, "1000001", None, T0 + 602)])
    got = await states(messages)
    assert (got["old"][0], got["new"][0]) == ("delivered", "failed")


def test_numbers_are_compared_by_their_digits() -> None:
    assert same_number("+15557650001", "15557650001")
    assert same_number("+15557650001", "5557650001")  # a national form
    assert not same_number("+15557650001", "+15557650002")
    assert not same_number("", "")
    assert not same_number("+15557650001", "0001")  # too short to be a national form
