"""The live feed (GET /calls/live, Server-Sent Events): new calls and changed texts arrive as rendered rows, only
within the viewer's scope and the filters; heartbeats, the cap on streams, reconnects and a client that leaves.

These run on the real clock: the store stamps what it records with the time of day.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.phone import mask
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore, NewText
from callbuddy_pbx.web import live
from tests.test_dashboard_helpers import (  # noqa: F401 (fixtures)
    BOLT,
    GLOW,
    XSS_NAME,
    Scenario,
    as_user,
    filled_fixture,
    make_app,
    make_context,
    make_record,
    read_html,
)

WAIT_S = 3.0


@dataclass
class Event:
    event: str | None
    data: str
    id: str | None
    comments: list[str]


class SseReader:
    def __init__(self, response: ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = WAIT_S) -> Event:
        """The next event or comment block (up to its blank line)."""
        fields: dict[str, list[str]] = {}
        comments: list[str] = []
        while True:
            line = (await asyncio.wait_for(self.response.content.readline(), timeout)).decode()
            if not line:
                raise EOFError("the stream ended")
            line = line.rstrip("\n")
            if not line:
                if fields or comments:
                    return Event(fields.get("event", [None])[0], "\n".join(fields.get("data", [])),
                                 fields.get("id", [None])[0], comments)  # fmt: skip
                continue
            if line.startswith(":"):
                comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))

    async def rows(self, until_id: str, timeout: float = WAIT_S) -> list[Event]:
        """Row events up to and including the one for `until_id`."""
        seen: list[Event] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no row for {until_id} (got {[row_id(e) for e in seen]})")
            event = await self.next(left)
            if event.event == "row":
                seen.append(event)
                if row_id(event) == until_id:
                    return seen

    async def quiet_rows(self, seconds: float) -> list[Event]:
        """The row events that arrive in the next `seconds`."""
        seen = []
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                event = await self.next(left)
            except TimeoutError:
                break
            if event.event == "row":
                seen.append(event)
        return seen


def row_id(event: Event) -> str:
    ids = read_html(event.data).row_ids
    assert len(ids) == 1, event.data
    return ids[0]


@dataclass
class Live:
    client: TestClient  # type: ignore[type-arg]
    store: CallStore
    scenario: Scenario

    async def open(self, user: str, headers: dict[str, str] | None = None, **params: str) -> SseReader:
        response = await self.client.get("/calls/live", params=params, headers=as_user(user) | (headers or {}))
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-store"
        reader = SseReader(response)
        first = await reader.next()
        assert first.comments == ["live"]
        return reader


@pytest.fixture(name="live_site")
async def live_site_fixture(filled: tuple[CallStore, Scenario]) -> AsyncIterator[Live]:
    store, scenario = filled
    async with TestClient(TestServer(make_app(make_context(store, clock=time.time)))) as client:
        yield Live(client, store, scenario)


counter = iter(range(900, 10_000))


def new_call(business: str | None, outcome: Outcome = Outcome.NO_ANSWER, name: str | None = None) -> CallRecord:
    """A call that ended a second ago (a fresh linkedid each time)."""
    return make_record(next(counter), business, outcome, time.time() - 1, name)


async def test_a_new_call_arrives_and_another_business_never_does(live_site: Live) -> None:
    glow_reader = await live_site.open("glow")
    admin_reader = await live_site.open("admin")
    mine, theirs = new_call(GLOW, name=XSS_NAME), new_call(BOLT, name="Bolt caller")
    started = time.monotonic()
    await live_site.store.save_calls([theirs, mine])

    (event,) = await glow_reader.rows(mine.linkedid)
    assert time.monotonic() - started < 2.0
    assert "\n" not in event.data  # one data line
    assert event.data.startswith(f'<tr id="call-{mine.linkedid}"')
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;" in event.data and "<script>" not in event.data
    caller = mine.caller or ""
    assert mask(caller) in event.data and caller not in event.data  # a masked viewer
    assert float(event.id or "") >= started - 60

    admin_rows = await admin_reader.rows(mine.linkedid)
    assert {row_id(e) for e in admin_rows} | {row_id(e) for e in await admin_reader.quiet_rows(0.3)} == {
        mine.linkedid, theirs.linkedid}  # fmt: skip
    assert caller in "".join(e.data for e in admin_rows if row_id(e) == mine.linkedid)  # full number for an admin
    assert await glow_reader.quiet_rows(0.5) == []  # many polls: Bolt's call never comes


async def test_a_text_update_sends_the_row_again(live_site: Live) -> None:
    reader = await live_site.open("both")
    call = new_call(GLOW)
    await live_site.store.save_calls([call])
    (first,) = await reader.rows(call.linkedid)
    assert "No text" not in first.data and "Queued" not in first.data
    messages = MessageStore(live_site.store)
    text = NewText(call.linkedid, "missed_call", "+15551112222", "+15550001000", "sim", "Sorry", time.time(),
                   business=GLOW, linkedid=call.linkedid)  # fmt: skip
    await messages.enqueue([text], time.time())
    (second,) = await reader.rows(call.linkedid)
    assert "Queued" in second.data and row_id(second) == call.linkedid
    assert await reader.quiet_rows(0.3) == []  # sent once, though later polls look back over it


async def test_the_filters_apply(live_site: Live) -> None:
    busy_only = await live_site.open("admin", outcome="busy")
    glow_only = await live_site.open("both", business=GLOW, all="1")
    busy, answered = new_call(BOLT, Outcome.BUSY), new_call(GLOW, Outcome.ANSWERED)
    await live_site.store.save_calls([busy, answered])
    assert [row_id(e) for e in await busy_only.rows(busy.linkedid)] == [busy.linkedid]
    assert [row_id(e) for e in await glow_only.rows(answered.linkedid)] == [answered.linkedid]
    assert await busy_only.quiet_rows(0.3) == [] and await glow_only.quiet_rows(0.1) == []


async def test_heartbeat(live_site: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "HEARTBEAT_S", 0.1)
    reader = await live_site.open("glow")
    event = await reader.next(timeout=2.0)
    assert event.comments == ["keepalive"] and event.event is None


async def test_streams_are_capped_and_freed_when_the_client_leaves(
    live_site: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MAX_STREAMS", 2)
    first = await live_site.open("glow")
    await live_site.open("admin")
    refused = await live_site.client.get("/calls/live", headers=as_user("bolt"))
    assert refused.status == 503 and "Too many live feeds" in await refused.text()
    first.response.close()  # the browser leaves: its stream ends at the next poll
    for _ in range(40):
        await asyncio.sleep(0.05)
        again = await live_site.client.get("/calls/live", headers=as_user("bolt"))
        if again.status == 200:
            again.close()
            return
    raise AssertionError("the stream of a client that left was never freed")


async def test_reconnect_resumes_from_the_last_event_id(live_site: Live) -> None:
    reader = await live_site.open("admin")
    one = new_call(GLOW)
    await live_site.store.save_calls([one])
    (event,) = await reader.rows(one.linkedid)
    reader.response.close()
    two = new_call(GLOW)
    await live_site.store.save_calls([two])
    # The browser reconnects to the same URL (whose `since` is long past) with the last id it saw.
    resumed = await live_site.open("admin", headers={"Last-Event-ID": event.id or ""}, since="0")
    assert two.linkedid in [row_id(e) for e in await resumed.rows(two.linkedid)]


def test_start_cursor_is_bounded() -> None:
    class Request:
        def __init__(self, since: str, last: str | None = None) -> None:
            self.query = {"since": since}
            self.headers = {"Last-Event-ID": last} if last else {}

    now = 1_000_000.0
    cursor = live.start_cursor
    assert cursor(Request(""), now) == now  # type: ignore[arg-type]
    assert cursor(Request("999990.5"), now) == 999990.5  # type: ignore[arg-type]
    assert cursor(Request("0"), now) == now - live.MAX_CATCH_UP_S  # type: ignore[arg-type]
    assert cursor(Request("2e9"), now) == now  # type: ignore[arg-type]
    assert cursor(Request("nan"), now) == now and cursor(Request("inf"), now) == now  # type: ignore[arg-type]
    assert cursor(Request("x", "999999"), now) == 999999  # type: ignore[arg-type]


def test_sse_event_lines() -> None:
    assert (
        live.sse_event("row", "<tr>\n<td>a</td></tr>", "5.0")
        == b"event: row\nid: 5.0\ndata: <tr>\ndata: <td>a</td></tr>\n\n"
    )
    assert live.sse_event("row", "") == b"event: row\ndata: \n\n"


async def test_no_viewer_no_stream(live_site: Live) -> None:
    response = await live_site.client.get("/calls/live")
    assert response.status == 403 and "text/html" in response.headers["Content-Type"]


async def test_a_burst_larger_than_a_batch_arrives_whole_and_once(
    live_site: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "BATCH", 2)
    monkeypatch.setattr(live, "MAX_BATCHES", 2)  # 4 rows a poll: seven calls take two polls
    reader = await live_site.open("admin")
    burst = [new_call(GLOW) for _ in range(7)]
    await live_site.store.save_calls(burst)  # one transaction: one recorded_at for all seven
    arrived = [row_id(e) for e in await reader.rows(max(c.linkedid for c in burst))]
    arrived += [row_id(e) for e in await reader.quiet_rows(0.4)]
    assert sorted(arrived) == sorted(c.linkedid for c in burst)


async def test_a_row_stamped_behind_the_position_still_arrives(live_site: Live) -> None:
    reader = await live_site.open("admin")
    first = new_call(GLOW)
    await live_site.store.save_calls([first])
    await reader.rows(first.linkedid)
    # A writer that stamped its row before `first` but committed after the stream read past it.
    late = new_call(BOLT)
    await live_site.store.save_calls([late])
    async with live_site.store.transaction() as conn:
        await conn.execute(
            "UPDATE calls SET recorded_at = (SELECT recorded_at - 2 FROM calls WHERE linkedid = ?) WHERE linkedid = ?",
            (first.linkedid, late.linkedid),
        )
    arrived = [row_id(e) for e in await reader.quiet_rows(0.5)]
    assert arrived == [late.linkedid]  # once, though every poll looks back over it
