"""Conversations live: a reply appears in the open thread and at the top of the list without a reload, an answer's
receipt changes its entry in place, and a business user who has the thread open has read what arrived."""

from __future__ import annotations

from callbuddy_pbx.store.conversations import ANSWER
from callbuddy_pbx.store.messages import MessageStore
from tests.conversations_site import (  # noqa: F401 (fixture)
    GLOW,
    GLOW_CALLER,
    GLOW_DID,
    Convo,
    convo_fixture,
    form_values,
    missed,
    until,
)
from tests.test_dashboard_live import Event, SseReader


async def next_event(reader: SseReader, name: str, containing: str) -> Event:
    while True:
        event = await reader.next()
        if event.event == name and containing in event.data:
            return event


async def test_a_reply_and_a_receipt_arrive_live_in_the_open_thread(convo: Convo) -> None:
    await convo.call(missed("1.1", GLOW, GLOW_DID, GLOW_CALLER))
    await until(lambda: len(convo.gateway.sent) == 1)
    await convo.log_in("glow")
    thread = await convo.thread(GLOW_CALLER, GLOW)
    page = await (await convo.client.get(f"/conversations/{thread.id}")).text()
    live_url = page.split('data-live-url="')[1].split('"')[0].replace("&amp;", "&")
    stream = await convo.client.get(live_url)
    assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    reader = SseReader(stream)

    await convo.reply(GLOW_CALLER, GLOW_DID, "Can I come at 3?")
    event = await next_event(reader, "item", "Can I come at 3?")
    assert event.data.startswith('<li id="reply-') and "\n" not in event.data
    await until(lambda: _unread(convo, 0))  # the owner has the thread open: the reply is read

    form = form_values(page) | {"body": "Yes, see you at 3"}
    assert (
        await convo.client.post(f"/conversations/{thread.id}/answer", data=form, allow_redirects=False)
    ).status == 303
    [row] = [r for r in await MessageStore(convo.store).list_messages() if r.kind == ANSWER]
    delivered = await next_event(reader, "item", "Delivered")
    assert delivered.data.startswith(f'<li id="text-{row.id}"') and "Yes, see you at 3" in delivered.data
    stream.close()


async def _unread(site: Convo, count: int) -> bool:
    return (await site.thread(GLOW_CALLER, GLOW)).unread == count


async def test_a_new_reply_puts_its_thread_row_on_the_live_list(convo: Convo) -> None:
    await convo.call(missed("1.1", GLOW, GLOW_DID, GLOW_CALLER))
    await convo.log_in("glow")
    page = await (await convo.client.get("/conversations")).text()
    live_url = page.split('data-live-url="')[1].split('"')[0].replace("&amp;", "&")
    reader = SseReader(await convo.client.get(live_url))
    await convo.reply(GLOW_CALLER, GLOW_DID, "Running late, sorry")
    thread = await convo.thread(GLOW_CALLER, GLOW)
    event = await next_event(reader, "row", "Running late, sorry")
    assert (
        event.data.startswith(f'<tr id="thread-{thread.id}" class="thread unread"') and 'data-unread="1"' in event.data
    )
    reader.response.close()
