"""Once-only across several CallBuddy instances on one PostgreSQL (issue 16): a caller texted once per window
whichever Asterisk server and instance saw the calls, an answer queued once and within its thread's rate, a STOP
that no concurrent answer slips past, a digest or alert sent once.

Each instance is its own CallStore (its own pool and in-process write lock, as a second process has)."""

from __future__ import annotations

import asyncio
import time

import pytest

from callbuddy_pbx.service.notify import Notice, NotificationLog
from callbuddy_pbx.store.conversations import ANSWER, ANSWERS_PER_MINUTE, DUPLICATE, QUEUED, queue_answer
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore, NewText, Verdict
from tests.conftest import OpenStore
from tests.test_store_engines import call, texted

on_postgresql = pytest.mark.parametrize("engine", ["postgresql"])
GLOW = "Glow Salon"
WINDOW_S = 24 * 3600.0


async def two_instances(open_store: OpenStore) -> tuple[CallStore, CallStore]:
    return await open_store(), await open_store()


async def record_missed_calls(messages: MessageStore, first: int, callers: list[str], now: float) -> None:
    """What text-back does with a batch of missed calls: ask the facts (the window), decide, store."""
    records = [call(first + i, caller, GLOW, now - 5) for i, caller in enumerate(callers)]
    texts, verdicts = [], []
    for record in records:
        facts = await messages.facts(record.caller or "", GLOW, now - WINDOW_S)
        send = facts.last_text_at is None
        verdicts.append(Verdict(record.linkedid, send, "send" if send else "already_texted_in_window"))
        if send:
            texts.append(texted(record, now))
    await messages.save_calls_with_texts(records, verdicts, texts, (), now)


@on_postgresql
async def test_a_caller_who_missed_two_servers_at_once_is_texted_once(open_store: OpenStore) -> None:
    a_store, b_store = await two_instances(open_store)
    a, b = MessageStore(a_store, instance="A"), MessageStore(b_store, instance="B")
    callers = [f"+1555300{i:04d}" for i in range(40)]
    now = time.time()
    # The same 40 callers missed a call on each of two Asterisk servers, followed by two instances at once: each
    # instance read "no text in the window" before the other stored its text.
    await asyncio.gather(record_missed_calls(a, 100, callers, now), record_missed_calls(b, 200, callers, now))
    texts = [row for row in await a.list_messages(limit=1000) if row.kind == "missed_call"]
    assert sorted(row.to for row in texts) == callers  # each caller once
    refused = [await a.verdict(f"17700.{n:03d}") for n in [*range(100, 140), *range(200, 240)]]
    assert sum(1 for v in refused if v is not None and v.reason == "already_texted_in_window") == 40
    assert all(v is not None and v.send == (v.reason != "already_texted_in_window") for v in refused)
    await a_store.close()
    await b_store.close()


def answer(key: str, body: str = "See you at 3") -> NewText:
    return NewText(key, ANSWER, "+15557654321", "+15550001000", "sim", body, send_at=0.0, business=GLOW)


@on_postgresql
async def test_an_answer_sent_to_two_instances_at_once_is_queued_once(open_store: OpenStore) -> None:
    a_store, b_store = await two_instances(open_store)
    outcomes = await asyncio.gather(
        *(queue_answer(store, answer("answer:same"), "desk", time.time()) for store in (a_store, b_store) * 3)
    )
    assert sorted(o.status for o in outcomes) == [DUPLICATE] * 5 + [QUEUED]
    assert len({o.text_id for o in outcomes}) == 1  # every duplicate names the one stored
    await a_store.close()
    await b_store.close()


@on_postgresql
async def test_a_thread_s_answer_rate_holds_across_instances(open_store: OpenStore) -> None:
    a_store, b_store = await two_instances(open_store)
    now = time.time()
    outcomes = await asyncio.gather(
        *(
            queue_answer(store, answer(f"answer:{i}-{n}"), "desk", now)
            for n in range(8)
            for i, store in enumerate((a_store, b_store))
        )
    )
    assert sum(o.status == QUEUED for o in outcomes) == ANSWERS_PER_MINUTE
    await a_store.close()
    await b_store.close()


@on_postgresql
async def test_a_stop_on_one_instance_and_an_answer_on_another_never_leave_a_text_queued(open_store: OpenStore) -> None:
    a_store, b_store = await two_instances(open_store)
    a = MessageStore(a_store, instance="A")
    number = "+15557654321"
    for n in range(20):  # opt out and back in, each time racing an answer queued by the other instance
        await asyncio.gather(
            a.set_opt_out(number, GLOW, True, time.time()),
            queue_answer(b_store, answer(f"answer:race-{n}"), "desk", time.time() + 61.0 * n),
        )
        queued = [row for row in await a.list_messages(limit=100, state="queued") if row.kind == ANSWER]
        assert queued == [], f"round {n}: an answer stayed queued to a number that opted out"
        await a.set_opt_out(number, GLOW, False, time.time())
    await a_store.close()
    await b_store.close()


@on_postgresql
async def test_a_digest_two_instances_make_at_once_is_sent_once(open_store: OpenStore) -> None:
    a_store, b_store = await two_instances(open_store)
    notice = Notice("digest:Glow Salon:2026-03-08", "digest", "Yesterday: 3 missed calls", business=GLOW)
    claims = await asyncio.gather(
        *(NotificationLog(store).claim(notice, time.time()) for store in (a_store, b_store) * 4)
    )
    assert sorted(claims) == [False] * 7 + [True]
    await a_store.close()
    await b_store.close()
