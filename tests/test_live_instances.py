"""The live feed with several CallBuddy instances on one PostgreSQL (issue 16): a call recorded, and its text
updated, by instance A reach a browser whose live feed instance B serves.

Each stream reads the changes from the shared database (web/live.py), so B needs no word from A: these tests hold
that true, with A and B each their own CallStore (their own pool, as two processes have)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.model import Outcome
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore, NewText
from tests.conftest import OpenStore
from tests.test_dashboard_helpers import GLOW, make_app, make_context
from tests.test_dashboard_live import Live, Scenario, new_call

pytestmark = pytest.mark.parametrize("engine", ["postgresql"])


@pytest.fixture(name="instances")
async def instances_fixture(open_store: OpenStore) -> AsyncIterator[tuple[CallStore, Live]]:
    """Instance A's store, and instance B's site (its own store on the same database)."""
    a_store, b_store = await open_store(), await open_store()
    async with TestClient(TestServer(make_app(make_context(b_store, clock=time.time)))) as client:
        yield a_store, Live(client, b_store, Scenario())
    await a_store.close()
    await b_store.close()


async def test_a_call_instance_a_records_reaches_instance_b_s_live_feed(instances: tuple[CallStore, Live]) -> None:
    a_store, b_site = instances
    reader = await b_site.open("both")
    call = new_call(GLOW, Outcome.NO_ANSWER)
    started = time.monotonic()
    assert await a_store.save_calls([call]) == 1  # instance A followed this call
    (event,) = await reader.rows(call.linkedid)
    assert time.monotonic() - started < 2.0
    assert event.data.startswith(f'<tr id="call-{call.linkedid}"')
    # A's outbox queues its text: B's viewer sees the row again, with the text's state.
    text = NewText(call.linkedid, "missed_call", call.caller or "", "+15550001000", "sim", "Sorry", time.time(),
                   business=GLOW, linkedid=call.linkedid)  # fmt: skip
    await MessageStore(a_store, instance="A").enqueue([text], time.time())
    (again,) = await reader.rows(call.linkedid)
    assert "Queued" in again.data
