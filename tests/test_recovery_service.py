"""Recovery through the running service: real Asterisk recordings in, recovery marks and figures out.

The caller of 01 (missed) calls again in 03 and desk 101 answers, recorded half a minute later on the same PBX: the
"later answered call from the same caller". 16 is desk 100 calling an outside number; with that number made the
missed caller's (same length: the stream's framing is unchanged) it is the business calling the caller back.
"""

from __future__ import annotations

from pathlib import Path

from callbuddy_pbx.config import TextBack
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore
from callbuddy_pbx.store.stats import recovery_stats
from tests.test_textback_e2e import Running, text_back_service
from tests.traces import all_traces, drop_headers
from tests.waiting import wait_until_async

TRACES = {t.name[:2]: t for t in all_traces()}
MISSED, AGAIN, DESK_CALL = TRACES["01"].raw, TRACES["03"].raw, TRACES["16"].raw
CALL_BACK = DESK_CALL.replace(b"15552223333", b"15557654321")  # desk 100 calls Jane Caller, who answers
DESK_ANSWERED_AT = 1795256291.751  # the desk's DialEnd (ANSWER) in 16
LINKEDID_16 = "1795256289.59"


async def marks(store: CallStore) -> dict[str, tuple[str, float, str]]:
    async with store.connection.execute("SELECT linkedid, how, recovered_at, source FROM recoveries") as cursor:
        return {str(r[0]): (str(r[1]), float(r[2]), str(r[3])) for r in await cursor.fetchall()}


async def count(store: CallStore, table: str) -> int:
    async with store.connection.execute(f"SELECT COUNT(*) FROM {table}") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def replay(run: Running, *streams: bytes, calls: int) -> None:
    for raw in streams:
        await run.server.replay_raw(raw)
    await run.wait_for_calls(calls)
    await run.settle()
    await run.service.ami.action("Ping")  # every event read: desk calls are queued for the marker
    await run.service.recovery.wait_idle()


async def test_the_caller_calling_again_and_answered_is_got_back(tmp_path: Path) -> None:
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway) as run:
        await replay(run, MISSED, calls=1)  # texted at once (no hold-off)
        await replay(run, AGAIN, calls=2)
        missed, again = sorted(run.calls, key=lambda c: c.started_at)
        assert missed.missed and not again.missed and again.answered_at is not None
        assert await marks(run.store) == {missed.linkedid: ("called_again", again.answered_at, again.linkedid)}
        stats = await recovery_stats(run.store, since=missed.started_at, until=again.ended_at + 1)
        assert (stats.recovered, stats.recovered_by["called_again"]) == (1, 1)
        assert stats.recovery_median_s == again.answered_at - missed.ended_at
        assert len(gateway.sent) == 1  # texted before it was got back: recovery cancels nothing already sent


async def test_a_desk_calling_the_caller_back_is_got_back(tmp_path: Path) -> None:
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway) as run:
        await replay(run, MISSED, CALL_BACK, calls=1)
        (missed,) = run.calls
        assert await marks(run.store) == {missed.linkedid: ("called_back", DESK_ANSWERED_AT, LINKEDID_16)}
        stats = await recovery_stats(run.store, since=missed.started_at, until=DESK_ANSWERED_AT)
        assert (stats.called_back, stats.recovered, stats.recovered_by["called_back"]) == (1, 1, 1)


async def test_a_desk_call_back_during_the_hold_off_cancels_the_waiting_text(tmp_path: Path) -> None:
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway, text_back=TextBack(hold_off_s=1.0)) as run:
        now = [drop_headers(raw, "Timestamp") for raw in (MISSED, CALL_BACK)]  # both happen now, in this order
        await replay(run, *now, calls=1)
        await run.settle()  # a text the call back did not cancel would be sent at the end of the hold-off
        assert gateway.sent == []
        (row,) = await run.text_back.messages.list_messages()
        assert (row.state, row.error) == ("cancelled", "called back from a desk")
        assert [how for how, _, _ in (await marks(run.store)).values()] == ["called_back"]


async def test_a_desk_calling_someone_else_recovers_nothing(tmp_path: Path) -> None:
    async with text_back_service(tmp_path, SimulatedGateway("sim")) as run:
        await replay(run, MISSED, DESK_CALL, calls=1)
        assert await count(run.store, "outbound_calls") == 1
        assert await marks(run.store) == {}


async def test_marks_survive_a_restart_and_replays_add_nothing(tmp_path: Path) -> None:
    gateway = SimulatedGateway("sim")
    async with text_back_service(tmp_path, gateway) as run:
        await replay(run, MISSED, calls=1)  # texted at once (no hold-off)
        await replay(run, CALL_BACK, calls=1)
        before = await marks(run.store)
    assert len(before) == 1
    async with text_back_service(tmp_path, gateway) as run:  # the same database, a new process
        await replay(run, MISSED, CALL_BACK, calls=1)  # Asterisk's stream delivered again
        assert await marks(run.store) == before
        assert (await count(run.store, "outbound_calls"), await count(run.store, "calls")) == (1, 1)
        await replay(run, AGAIN, calls=2)  # 03 was recorded before 16: an earlier sign, found late
        (missed, again) = sorted(run.calls, key=lambda c: c.started_at)[-2:]
        assert await marks(run.store) == {missed.linkedid: ("called_again", again.answered_at, again.linkedid)}
        stats = await recovery_stats(run.store, since=0, until=DESK_ANSWERED_AT + 10**6)
        assert (stats.missed, stats.recovered, stats.called_back, stats.recovered_by["called_again"]) == (1, 1, 1, 1)
    assert len(gateway.sent) == 1


async def test_a_reply_stored_while_the_service_was_down_is_marked_when_it_starts(tmp_path: Path) -> None:
    async with text_back_service(tmp_path, SimulatedGateway("sim")) as run:
        await replay(run, drop_headers(MISSED, "Timestamp"), calls=1)  # ends now: inside the sweep's week
        (missed,) = run.calls
    async with await CallStore.open(tmp_path / "calls.sqlite3") as store:  # e.g. written just before a crash
        await MessageStore(store).record_inbound("sim", "+15557654321", "+15550001000", "Glow Salon", "ok?", "other",
                                                 missed.ended_at + 60)  # fmt: skip
        assert await marks(store) == {}
    async with text_back_service(tmp_path, SimulatedGateway("sim")) as run:

        async def marked() -> bool:
            return bool(await marks(run.store))

        await wait_until_async(marked, 5.0)
        assert [how for how, _, _ in (await marks(run.store)).values()] == ["replied"]
