"""Threads as the store builds them from what text-back stored: one per (caller, business), in time order, with
unread counts; a caller who wrote to two businesses has two threads that never mix."""

from __future__ import annotations

import time

from callbuddy_pbx.store.conversations import find_thread, list_threads, mark_read, thread_items
from tests.conversations_site import (  # noqa: F401 (fixture)
    BOTH_CALLER,
    DENTAL,
    DENTAL_CALLER,
    DENTAL_DID,
    GLOW,
    GLOW_CALLER,
    GLOW_DID,
    Convo,
    convo_fixture,
    missed,
    two_businesses,
    until,
)


async def test_several_calls_and_replies_from_one_caller_are_one_thread_in_time_order(convo: Convo) -> None:
    await convo.call(missed("1.1", GLOW, GLOW_DID, GLOW_CALLER, name="Ann", ago=1))
    await until(lambda: len(convo.gateway.sent) == 1)
    await convo.reply(GLOW_CALLER, GLOW_DID, "Who is this?")
    await convo.call(missed("1.2", GLOW, GLOW_DID, GLOW_CALLER, ago=0))  # texted once per window: no 2nd text
    await convo.reply(GLOW_CALLER, GLOW_DID, "Can I come at 3?")

    threads = await list_threads(convo.store, None)
    assert [(t.number, t.business) for t in threads] == [(GLOW_CALLER, GLOW)]
    thread = threads[0]
    assert (thread.missed_calls, thread.unread, thread.caller_name) == (2, 2, "Ann")
    assert (thread.last_from, thread.last_words) == ("reply", "Can I come at 3?")
    items = await thread_items(convo.store, thread.number, thread.business)
    assert [(i.kind, i.body or i.ref) for i in items] == [
        ("call", "call-1.1"),
        ("text", items[1].body),
        ("reply", "Who is this?"),
        ("call", "call-1.2"),
        ("reply", "Can I come at 3?"),
    ]
    assert items[1].text_kind == "missed_call" and GLOW in items[1].body
    assert [i.at for i in items] == sorted(i.at for i in items)


async def test_one_caller_texting_two_businesses_has_two_threads_that_never_mix(convo: Convo) -> None:
    await two_businesses(convo)
    glow, dental = await convo.thread(BOTH_CALLER, GLOW), await convo.thread(BOTH_CALLER, DENTAL)
    assert glow.id != dental.id
    glow_words = [i.body for i in await thread_items(convo.store, BOTH_CALLER, GLOW) if i.kind == "reply"]
    dental_words = [i.body for i in await thread_items(convo.store, BOTH_CALLER, DENTAL) if i.kind == "reply"]
    assert glow_words == ["Glow: a haircut please"] and dental_words == ["Dental: a cleaning please"]
    assert {t.business for t in await list_threads(convo.store, [GLOW])} == {GLOW}
    assert await find_thread(convo.store, dental.id, [GLOW]) is None  # another business's thread is no thread
    assert await find_thread(convo.store, dental.id, [DENTAL]) == dental


async def test_a_thread_id_names_its_thread_only_and_shows_no_number(convo: Convo) -> None:
    await two_businesses(convo)
    for thread in await list_threads(convo.store, None):
        assert thread.id[0] in "mr" and thread.id[1:].isdigit() and thread.number[1:] not in thread.id
        assert await find_thread(convo.store, thread.id, None) == thread
    glow = await convo.thread(GLOW_CALLER, GLOW)
    [reply] = [i for i in await thread_items(convo.store, GLOW_CALLER, GLOW) if i.kind == "reply"]
    by_reply = await find_thread(convo.store, "r" + reply.ref.removeprefix("reply-"), None)
    assert by_reply == glow and by_reply.id == glow.id  # any of its rows names it; its address stays the anchor
    assert await find_thread(convo.store, "r" + reply.ref.removeprefix("reply-"), [DENTAL]) is None
    assert await find_thread(convo.store, "x1", None) is None
    assert await find_thread(convo.store, "m1'; DROP TABLE messages; --", None) is None


async def test_a_thread_is_read_up_to_the_newest_reply_its_business_saw(convo: Convo) -> None:
    await two_businesses(convo)
    thread = await convo.thread(GLOW_CALLER, GLOW)
    assert thread.unread == 1
    assert [t.id for t in await list_threads(convo.store, [GLOW], unread_only=True)] == [
        t.id for t in await list_threads(convo.store, [GLOW])
    ]
    reply_at = max(i.at for i in await thread_items(convo.store, GLOW_CALLER, GLOW) if i.kind == "reply")
    await mark_read(convo.store, GLOW_CALLER, GLOW, reply_at, "glow")
    assert (await convo.thread(GLOW_CALLER, GLOW)).unread == 0
    await mark_read(convo.store, GLOW_CALLER, GLOW, reply_at - 100, "glow")  # an old page: the mark stays
    assert (await convo.thread(GLOW_CALLER, GLOW)).unread == 0
    assert thread.id not in {t.id for t in await list_threads(convo.store, [GLOW], unread_only=True)}

    await convo.reply(GLOW_CALLER, GLOW_DID, "Hello?")  # a new reply: unread again
    assert (await convo.thread(GLOW_CALLER, GLOW)).unread == 1
    assert (await convo.thread(BOTH_CALLER, GLOW)).unread == 1  # other threads were never read


async def test_threads_changed_since_a_moment_are_found_by_any_change(convo: Convo) -> None:
    await two_businesses(convo)
    before = time.time()
    assert await list_threads(convo.store, None, changed_since=before + 1) == []
    await convo.reply(DENTAL_CALLER, DENTAL_DID, "Still there?")
    changed = await list_threads(convo.store, None, changed_since=before)
    assert [(t.number, t.business) for t in changed] == [(DENTAL_CALLER, DENTAL)]
