"""Conversations in the JSON API with the per-business tokens: list, read, answer (the dashboard's rules: once per
idempotency key, opted-out callers refused); another business's thread is no thread for a limited token."""

from __future__ import annotations

import asyncio

from callbuddy_pbx.store.conversations import ANSWER, ANSWERS_PER_MINUTE
from callbuddy_pbx.store.messages import MessageStore
from tests.conversations_site import (  # noqa: F401 (fixture)
    ALL_TOKEN,
    BOTH_CALLER,
    DENTAL,
    DENTAL_CALLER,
    GLOW,
    GLOW_CALLER,
    GLOW_DID,
    GLOW_TOKEN,
    Convo,
    convo_fixture,
    two_businesses,
    until,
)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_limited_token_lists_and_reads_only_its_business(convo: Convo) -> None:
    await two_businesses(convo)
    listed = await (await convo.client.get("/api/v1/conversations", headers=auth(GLOW_TOKEN))).json()
    assert {(t["number"], t["business"]) for t in listed["conversations"]} == {(GLOW_CALLER, GLOW), (BOTH_CALLER, GLOW)}
    every = await (await convo.client.get("/api/v1/conversations", headers=auth(ALL_TOKEN))).json()
    assert len(every["conversations"]) == 4
    asked = await convo.client.get("/api/v1/conversations", params={"business": DENTAL}, headers=auth(GLOW_TOKEN))
    assert asked.status == 403

    own, other = await convo.thread(GLOW_CALLER, GLOW), await convo.thread(DENTAL_CALLER, DENTAL)
    read = await (await convo.client.get(f"/api/v1/conversations/{own.id}", headers=auth(GLOW_TOKEN))).json()
    assert [item["kind"] for item in read["items"]] == ["call", "text", "reply"]
    assert read["items"][-1]["body"] == "Can I come at 3?" and read["unread"] == 1
    hidden = await convo.client.get(f"/api/v1/conversations/{other.id}", headers=auth(GLOW_TOKEN))
    missing = await convo.client.get("/api/v1/conversations/m999999", headers=auth(GLOW_TOKEN))
    assert hidden.status == missing.status == 404 and await hidden.json() == await missing.json()
    assert (await convo.thread(GLOW_CALLER, GLOW)).unread == 1  # reading through the API marks nothing read

    answer = await convo.client.post(
        f"/api/v1/conversations/{other.id}/answers", json={"text": "hi", "idempotency_key": "k" * 16},
        headers=auth(GLOW_TOKEN),
    )  # fmt: skip
    assert answer.status == 404


async def test_an_answer_through_the_api_is_sent_once_per_idempotency_key(convo: Convo) -> None:
    await two_businesses(convo)
    thread = await convo.thread(GLOW_CALLER, GLOW)
    url = f"/api/v1/conversations/{thread.id}/answers"
    first = await convo.client.post(
        url, json={"text": "See you at 3"}, headers=auth(GLOW_TOKEN) | {"Idempotency-Key": "crm-123456"}
    )
    again = await convo.client.post(
        url, json={"text": "See you at 3", "idempotency_key": "crm-123456"}, headers=auth(GLOW_TOKEN)
    )
    assert (first.status, again.status) == (201, 200)
    assert (await first.json())["text_id"] == (await again.json())["text_id"]
    await until(lambda: any(s.text == "See you at 3" for s in convo.gateway.sent))
    await asyncio.sleep(0.2)
    assert [s.text for s in convo.gateway.sent].count("See you at 3") == 1
    [row] = [r for r in await MessageStore(convo.store).list_messages() if r.kind == ANSWER]
    assert (row.to, row.sender) == (GLOW_CALLER, GLOW_DID)
    read = await (await convo.client.get(f"/api/v1/conversations/{thread.id}", headers=auth(GLOW_TOKEN))).json()
    assert read["items"][-1]["author"] == "api:glow"


async def test_the_api_refuses_an_opted_out_caller_and_bad_requests(convo: Convo) -> None:
    await two_businesses(convo)
    thread = await convo.thread(GLOW_CALLER, GLOW)
    url = f"/api/v1/conversations/{thread.id}/answers"
    assert (await convo.client.post(url, json={"text": "hi"}, headers=auth(GLOW_TOKEN))).status == 400  # no key
    assert (await convo.client.post(url, data=b"{", headers=auth(GLOW_TOKEN))).status in (400, 413)
    too_long = await convo.client.post(
        url, json={"text": "x" * 641, "idempotency_key": "k" * 16}, headers=auth(GLOW_TOKEN)
    )
    assert too_long.status == 400 and (await too_long.json())["reason"] == "too_long"
    await convo.reply(GLOW_CALLER, GLOW_DID, "STOP")
    refused = await convo.client.post(url, json={"text": "hi", "idempotency_key": "k" * 16}, headers=auth(GLOW_TOKEN))
    assert refused.status == 409 and (await refused.json())["reason"] == "opted_out"
    assert [r for r in await MessageStore(convo.store).list_messages() if r.kind == ANSWER] == []


async def test_answers_to_one_caller_are_limited_per_minute(convo: Convo) -> None:
    await two_businesses(convo)
    thread = await convo.thread(GLOW_CALLER, GLOW)
    url = f"/api/v1/conversations/{thread.id}/answers"
    statuses = [
        (
            await convo.client.post(
                url, json={"text": f"n{i}", "idempotency_key": f"key-{i:04d}"}, headers=auth(GLOW_TOKEN)
            )
        ).status
        for i in range(ANSWERS_PER_MINUTE + 1)
    ]
    assert statuses == [201] * ANSWERS_PER_MINUTE + [429]
    other = await convo.thread(BOTH_CALLER, GLOW)  # another caller is not held back
    response = await convo.client.post(
        f"/api/v1/conversations/{other.id}/answers", json={"text": "hi", "idempotency_key": "key-other"},
        headers=auth(GLOW_TOKEN),
    )  # fmt: skip
    assert response.status == 201
