"""Who may see and answer which conversation, on every conversation route and stream: a business user only their
business's threads (another's is the 404 of no thread, and can be neither streamed nor answered), an admin all;
a user who sees masked numbers sees no full number; an admin looking does not mark a business's thread read."""

from __future__ import annotations

import asyncio

from callbuddy_pbx.phone import mask
from callbuddy_pbx.store.conversations import ANSWER
from callbuddy_pbx.store.messages import MessageStore
from tests.conversations_site import (  # noqa: F401 (fixture)
    BOTH_CALLER,
    DENTAL,
    DENTAL_CALLER,
    DENTAL_DID,
    GLOW,
    GLOW_CALLER,
    Convo,
    convo_fixture,
    form_values,
    two_businesses,
)
from tests.test_dashboard_live import SseReader


async def test_a_business_user_sees_and_answers_only_their_business(convo: Convo) -> None:
    await two_businesses(convo)
    own = await convo.thread(GLOW_CALLER, GLOW)
    other = await convo.thread(DENTAL_CALLER, DENTAL)
    both_at_dental = await convo.thread(BOTH_CALLER, DENTAL)
    await convo.log_in("glow")

    listing = await (await convo.client.get("/conversations")).text()
    assert own.id in listing and other.id not in listing and both_at_dental.id not in listing
    assert "Can I come at 3?" in listing and "Dental" not in listing.split("<main>")[1]
    asked = await convo.client.get("/conversations", params={"business": DENTAL})
    assert asked.status == 403 and DENTAL_CALLER not in await asked.text()

    unknown = "m999999"
    for thread_id in (other.id, both_at_dental.id):
        page = await convo.client.get(f"/conversations/{thread_id}")
        assert (
            page.status == 404
            and await page.read() == await (await convo.client.get(f"/conversations/{unknown}")).read()
        )
        live = await convo.client.get(f"/conversations/{thread_id}/live")
        assert live.status == 404 and "Dental" not in await live.text()

    form = form_values(await (await convo.client.get(f"/conversations/{own.id}")).text())
    answered = await convo.client.post(f"/conversations/{other.id}/answer", data=form | {"body": "hello"})
    assert answered.status == 404
    await asyncio.sleep(0.1)
    assert [r for r in await MessageStore(convo.store).list_messages() if r.kind == ANSWER] == []
    assert all(sent.to != DENTAL_CALLER or "hello" not in sent.text for sent in convo.gateway.sent)


async def test_the_live_list_of_a_business_user_carries_only_their_threads(convo: Convo) -> None:
    await convo.log_in("glow")
    response = await convo.client.get("/conversations/live", params={"since": "0"})
    assert response.status == 200
    reader = SseReader(response)
    await two_businesses(convo)
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3
    while loop.time() < deadline:
        try:
            event = await reader.next(timeout=0.5)
        except TimeoutError:
            break
        if event.event == "row":
            seen.append(event.data)
    joined = " ".join(seen)
    assert "Can I come at 3?" in joined and "Glow: a haircut please" in joined
    assert "Dental" not in joined and DENTAL_CALLER not in joined
    response.close()


async def test_a_user_with_masked_numbers_sees_no_full_number(convo: Convo) -> None:
    await two_businesses(convo)
    thread = await convo.thread(GLOW_CALLER, GLOW)
    await convo.log_in("glow-desk")
    for path in ("/conversations", f"/conversations/{thread.id}"):
        text = await (await convo.client.get(path)).text()
        assert GLOW_CALLER not in text and mask(GLOW_CALLER) in text, path
        assert GLOW_CALLER[1:] not in text  # not in a link either
    response = await convo.client.get("/conversations/live", params={"since": "0"})
    event = await SseReader(response).next()
    while event.event != "row":
        event = await SseReader(response).next()
    assert GLOW_CALLER not in event.data and mask(GLOW_CALLER) in event.data
    response.close()


async def test_an_admin_sees_every_thread_and_looking_marks_none_read(convo: Convo) -> None:
    await two_businesses(convo)
    await convo.log_in("admin")
    listing = await (await convo.client.get("/conversations")).text()
    for number, business in ((GLOW_CALLER, GLOW), (DENTAL_CALLER, DENTAL), (BOTH_CALLER, GLOW), (BOTH_CALLER, DENTAL)):
        thread = await convo.thread(number, business)
        assert thread.id in listing
        assert (await convo.client.get(f"/conversations/{thread.id}")).status == 200
        assert (await convo.thread(number, business)).unread == 1  # the business has not read it

    await convo.log_in("dental")
    dental = await convo.thread(DENTAL_CALLER, DENTAL)
    assert (await convo.client.get(f"/conversations/{dental.id}")).status == 200
    assert (await convo.thread(DENTAL_CALLER, DENTAL)).unread == 0  # its own business opened it
    assert (await convo.thread(BOTH_CALLER, DENTAL)).unread == 1
