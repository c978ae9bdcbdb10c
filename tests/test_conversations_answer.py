"""A business answers from a thread on the dashboard: through the same outbox as text-backs (stored once however
often the form is sent, sent once, its receipt shown in the owner's words), refused for a caller who opted out
(the page says so before anything is typed), held until quiet hours end, bounded, CSRF-protected."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import markupsafe
import pytest
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.config import WebUser
from callbuddy_pbx.passwords import hash_password
from callbuddy_pbx.recovery.answers import Answers
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.site import service_site
from callbuddy_pbx.store.conversations import ANSWER, list_threads
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore, NewText, OutboxRow
from tests.conversations_site import (  # noqa: F401 (fixture)
    GLOW,
    GLOW_CALLER,
    GLOW_DID,
    PASSWORD,
    Convo,
    convo_fixture,
    form_values,
    log_in,
    missed,
    open_site,
    until,
)
from tests.test_dashboard_e2e import site_config


async def answers(site: Convo) -> list[OutboxRow]:
    return [row for row in await MessageStore(site.store).list_messages() if row.kind == ANSWER]


async def started_thread(site: Convo) -> str:
    """Glow's caller was texted after a missed call and replied; Glow's owner is logged in. The thread's path."""
    await site.call(missed("1.1", GLOW, GLOW_DID, GLOW_CALLER))
    await until(lambda: len(site.gateway.sent) == 1)
    await site.reply(GLOW_CALLER, GLOW_DID, "Can I come at 3?")
    await site.log_in("glow")
    return f"/conversations/{(await site.thread(GLOW_CALLER, GLOW)).id}"


async def test_an_answer_goes_out_once_however_often_the_form_is_sent_and_its_receipt_shows(convo: Convo) -> None:
    path = await started_thread(convo)
    page = await (await convo.client.get(path)).text()
    assert "Can I come at 3?" in page and 'action="' + path + '/answer"' in page
    form = form_values(page) | {"body": "Yes, 3pm is free. See you!"}

    first = await convo.client.post(path + "/answer", data=form, allow_redirects=False)
    assert first.status == 303 and first.headers["Location"].startswith(path + "#text-")
    again = await convo.client.post(path + "/answer", data=form, allow_redirects=False)  # a double click, a resend
    assert again.status == 303 and again.headers["Location"] == first.headers["Location"]

    await until(lambda: len(convo.gateway.sent) == 2)
    await until(lambda: _delivered(convo))
    await asyncio.sleep(0.2)  # time for a second send, were there one
    stored = await answers(convo)
    assert len(stored) == 1 and len(convo.gateway.sent) == 2
    sent = convo.gateway.sent[-1]
    assert (sent.to, sent.sender, sent.text) == (
        GLOW_CALLER,
        GLOW_DID,
        "Yes, 3pm is free. See you!",
    )  # the number texted
    assert stored[0].business == GLOW and stored[0].key.startswith("answer:")

    shown = await (await convo.client.get(path)).text()
    assert "Yes, 3pm is free. See you!" in shown and "Answered by glow" in shown
    entry = shown[shown.index(f'id="text-{stored[0].id}"') :]
    assert "Delivered" in entry[: entry.index("</li>")]


async def _delivered(site: Convo) -> bool:
    rows = await answers(site)
    return bool(rows) and rows[0].state == "delivered"


async def test_a_second_answer_from_a_fresh_page_is_a_second_text(convo: Convo) -> None:
    path = await started_thread(convo)
    for words in ("First answer", "Second answer"):
        form = form_values(await (await convo.client.get(path)).text()) | {"body": words}
        assert (await convo.client.post(path + "/answer", data=form, allow_redirects=False)).status == 303
    assert sorted(row.body for row in await answers(convo)) == ["First answer", "Second answer"]


async def test_an_opted_out_caller_cannot_be_answered_and_the_page_says_why_before_typing(convo: Convo) -> None:
    path = await started_thread(convo)
    form = form_values(await (await convo.client.get(path)).text())
    await convo.reply(GLOW_CALLER, GLOW_DID, "STOP")

    page = await (await convo.client.get(path)).text()
    assert "This caller asked not to get texts." in page and 'name="body"' not in page  # no composer
    refused = await convo.client.post(path + "/answer", data=form | {"body": "Please come back"})
    body = await refused.text()
    assert refused.status == 409 and "This caller asked not to get texts." in body
    assert await answers(convo) == []


async def test_a_stop_cancels_an_answer_still_waiting(tmp_path: Path) -> None:
    async for site in open_site(tmp_path, quiet_glow=True):
        path = await _quiet_thread(site)
        form = form_values(await (await site.client.get(path)).text()) | {"body": "Tomorrow at 9?"}
        assert (await site.client.post(path + "/answer", data=form, allow_redirects=False)).status == 303
        await site.reply(GLOW_CALLER, GLOW_DID, "STOP")
        [row] = await answers(site)
        assert (row.state, row.error) == ("cancelled", "opted out")
        assert "Not sent: this caller asked not to get texts." in await (await site.client.get(path)).text()


async def _quiet_thread(site: Convo) -> str:
    """During Glow's quiet hours: the caller's reply (the missed-call text itself waits too)."""
    await site.call(missed("1.1", GLOW, GLOW_DID, GLOW_CALLER))
    await site.reply(GLOW_CALLER, GLOW_DID, "Are you open?")
    await site.log_in("glow")
    return f"/conversations/{(await site.thread(GLOW_CALLER, GLOW)).id}"


async def test_in_quiet_hours_an_answer_waits_for_their_end(tmp_path: Path) -> None:
    async for site in open_site(tmp_path, quiet_glow=True):
        path = await _quiet_thread(site)
        before = await (await site.client.get(path)).text()
        # The composer says so before anything is typed, with the time the answer will go.
        said = re.search(r"It is quiet hours: an answer sent now goes out at (\d\d:\d\d)\.", before)
        assert said is not None
        form = form_values(before) | {"body": "We open at 9."}
        response = await site.client.post(path + "/answer", data=form, allow_redirects=False)
        assert response.status == 303  # deferred, not refused
        [row] = await answers(site)
        assert row.state == "queued" and row.send_at > row.created_at + 3600
        await asyncio.sleep(0.3)
        assert site.gateway.sent == []
        assert f"Waiting for quiet hours to end ({said.group(1)})" in await (await site.client.get(path)).text()


async def test_outside_quiet_hours_the_composer_says_nothing_of_them(convo: Convo, thread_path: str) -> None:
    page = await (await convo.client.get(thread_path)).text()
    assert 'name="body"' in page and "data-quiet" not in page


@pytest.fixture(name="thread_path")
async def thread_path_fixture(convo: Convo) -> AsyncIterator[str]:
    yield await started_thread(convo)


async def test_an_answer_is_bounded_and_kept_when_refused(convo: Convo, thread_path: str) -> None:
    form = form_values(await (await convo.client.get(thread_path)).text())
    long = "x" * 641
    refused = await convo.client.post(thread_path + "/answer", data=form | {"body": long})
    assert refused.status == 400 and "at most 640 characters" in await refused.text()
    empty = await convo.client.post(thread_path + "/answer", data=form | {"body": "   "})
    assert empty.status == 400 and "Type an answer first." in await empty.text()
    stale = await convo.client.post(thread_path + "/answer", data=form | {"body": "hi", "token": "x"})
    assert stale.status == 400
    assert await answers(convo) == []


async def test_an_answer_without_the_session_csrf_token_is_refused(convo: Convo, thread_path: str) -> None:
    form = form_values(await (await convo.client.get(thread_path)).text()) | {"body": "hi"}
    forged = await convo.client.post(thread_path + "/answer", data=form | {"csrf_token": "forged"})
    assert forged.status == 403
    cross = await convo.client.post(thread_path + "/answer", data=form, headers={"Origin": "https://evil.example"})
    assert cross.status == 403
    assert await answers(convo) == []


async def test_replies_and_answers_are_shown_as_text(convo: Convo) -> None:
    path = await started_thread(convo)
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await convo.reply(GLOW_CALLER, GLOW_DID, attack)
    form = form_values(await (await convo.client.get(path)).text()) | {"body": attack}
    assert (await convo.client.post(path + "/answer", data=form, allow_redirects=False)).status == 303
    for page in (path, "/conversations"):
        text = await (await convo.client.get(page)).text()
        assert "<script>alert" not in text and "<img src=x" not in text
        assert str(markupsafe.escape(attack)) in text, page


async def test_an_answer_goes_out_from_the_number_the_caller_texted(convo: Convo) -> None:
    second_line = "+15550001001"
    config = dataclasses.replace(
        convo.config,
        businesses=tuple(
            dataclasses.replace(b, numbers=(*b.numbers, second_line)) if b.name == GLOW else b
            for b in convo.config.businesses
        ),
    )
    await MessageStore(convo.store).record_inbound("sms", GLOW_CALLER, second_line, GLOW, "Hi, price?", "other", 1.0)
    woken: list[bool] = []
    outcome = await Answers(config, convo.store, lambda: woken.append(True)).answer(
        GLOW, GLOW_CALLER, "From 40 dollars", "token-0001", "glow"
    )
    [row] = await answers(convo)
    assert outcome.status == "queued" and woken == [True]
    assert (row.sender, row.to, row.gateway) == (second_line, GLOW_CALLER, "sms")


async def test_without_texting_set_up_the_composer_says_so_and_nothing_is_stored(tmp_path: Path) -> None:
    config = site_config(tmp_path, 1)
    store = await CallStore.open(config.storage.path)
    messages = MessageStore(store)
    await messages.enqueue(
        [NewText("k1", "missed_call", GLOW_CALLER, GLOW_DID, "sms", "Sorry we missed you", 1.0, GLOW)], 1.0
    )
    await messages.record_inbound("sms", GLOW_CALLER, GLOW_DID, GLOW, "Hello?", "other", 2.0)
    users = (WebUser("glow", hash_password(PASSWORD), role="business", businesses=(GLOW,)),)
    app = service_site(config, store, CallService(config, store), {}, None, users=lambda: users)  # no text-back
    try:
        async with TestClient(TestServer(app)) as client:
            await log_in(client, "glow")
            [thread] = await list_threads(store, None)
            page = await (await client.get(f"/conversations/{thread.id}")).text()
            assert "Texting is not set up for this business" in page and 'name="body"' not in page
            form = {"csrf_token": form_values(page)["csrf_token"], "body": "hi", "token": "token-0001"}
            refused = await client.post(f"/conversations/{thread.id}/answer", data=form)
            assert refused.status == 409
            assert [row.kind for row in await messages.list_messages()] == ["missed_call"]
    finally:
        await store.close()


async def test_a_caller_who_wrote_first_is_answered_and_the_thread_keeps_its_address(convo: Convo) -> None:
    await convo.reply(GLOW_CALLER, GLOW_DID, "Do you do nails?")  # no call, no text before: the thread is r<id>
    await convo.log_in("glow")
    first = (await convo.thread(GLOW_CALLER, GLOW)).id
    assert first.startswith("r")
    form = form_values(await (await convo.client.get(f"/conversations/{first}")).text()) | {"body": "We do!"}
    response = await convo.client.post(f"/conversations/{first}/answer", data=form)  # follows the redirect
    assert response.status == 200 and "We do!" in await response.text()
    assert (await convo.client.get(f"/conversations/{first}")).status == 200
    await until(lambda: any(sent.text == "We do!" and sent.sender == GLOW_DID for sent in convo.gateway.sent))
