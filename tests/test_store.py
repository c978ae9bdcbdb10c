"""CallStore on a real SQLite file: schema migrations, idempotent saves, filtered listing with legs."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.store import SCHEMA_VERSION, CallStore, StoreError, schema

T0 = 1_700_000_000.0


def make_call(
    linkedid: str,
    ended_at: float,
    outcome: Outcome = Outcome.NO_ANSWER,
    *,
    caller: str | None = "+15557654321",
    caller_name: str | None = "Jane Doe",
    legs: int = 2,
) -> CallRecord:
    answered = outcome is Outcome.ANSWERED
    return CallRecord(
        linkedid=linkedid,
        business="Glow Salon",
        did="+15550001000",
        caller=caller,
        caller_raw=caller or "anonymous",
        caller_name=caller_name,
        outcome=outcome,
        answered_by="PJSIP/101" if answered else None,
        started_at=ended_at - 30,
        ring_at=ended_at - 28,
        answered_at=ended_at - 20 if answered else None,
        ended_at=ended_at,
        hangup_cause=16,
        legs=tuple(
            LegRecord(
                channel=f"PJSIP/10{n}-0000000{n}",
                endpoint=f"PJSIP/10{n}",
                dial_status="ANSWER" if answered and n == 1 else "NOANSWER",
                hangup_cause=16,
                answered=answered and n == 1,
                started_at=ended_at - 28,
                ended_at=ended_at - 1,
            )
            for n in range(1, legs + 1)
        ),
    )


def db_info(path: Path) -> tuple[int, dict[str, str]]:
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        objects = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall())
    conn.close()
    return version, objects


async def test_open_creates_schema_in_new_directory(tmp_path):
    path = tmp_path / "nested" / "dir" / "calls.sqlite3"
    store = await CallStore.open(path)
    await store.close()

    version, objects = db_info(path)
    assert version == SCHEMA_VERSION >= 1
    assert {"calls", "call_legs", "calls_ended_at", "calls_missed_ended_at"} <= set(objects)
    with sqlite3.connect(path) as conn:
        call_columns = [row[1] for row in conn.execute("PRAGMA table_info(calls)")]
        leg_columns = [row[1] for row in conn.execute("PRAGMA table_info(call_legs)")]
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert call_columns == [
        "linkedid", "business", "did", "caller", "caller_raw", "caller_name", "outcome", "missed", "answered_by",
        "started_at", "ring_at", "answered_at", "ended_at", "hangup_cause", "observed_from_start", "recorded_at",
        "from_cel", "node",
    ]  # fmt: skip
    assert leg_columns == [
        "linkedid", "seq", "channel", "endpoint", "dial_status", "hangup_cause", "answered", "started_at", "ended_at",
    ]  # fmt: skip
    assert journal_mode == "wal"


async def test_reopening_changes_nothing(tmp_path):
    path = tmp_path / "calls.sqlite3"
    async with await CallStore.open(path) as store:
        await store.save_calls([make_call("1.1", T0)])
    before = db_info(path)
    async with await CallStore.open(path) as store:
        assert await store.count_calls() == 1
    assert db_info(path) == before


async def test_database_newer_than_code_is_refused(tmp_path):
    path = tmp_path / "calls.sqlite3"
    await (await CallStore.open(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 5}.*upgrade"):
        await CallStore.open(path)


async def test_failed_migration_is_rolled_back(tmp_path, monkeypatch):
    path = tmp_path / "calls.sqlite3"
    await (await CallStore.open(path)).close()
    broken = "CREATE TABLE half_done (a INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="no_such_table"):
        await CallStore.open(path)
    version, objects = db_info(path)
    assert version == SCHEMA_VERSION
    assert "half_done" not in objects


async def test_open_without_create_refuses_missing_file(tmp_path):
    path = tmp_path / "missing.sqlite3"
    with pytest.raises(StoreError, match="no such database"):
        await CallStore.open(path, create=False)
    assert not path.exists()


async def test_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "notes.sqlite3"
    path.write_text("these are not the calls you are looking for\n" * 100)
    with pytest.raises(StoreError, match="not a usable CallBuddy database"):
        await CallStore.open(path, create=False)


async def test_save_returns_new_count_and_round_trips(open_store):
    call = make_call("1700000000.1", T0, Outcome.ANSWERED)
    async with await open_store() as store:
        assert await store.save_calls([call]) == 1
        assert await store.list_calls() == [call]


async def test_save_is_idempotent_across_reopen(open_store):
    first, second = make_call("a", T0), make_call("b", T0 + 60)
    async with await open_store() as store:
        assert await store.save_calls([first, second]) == 2
    changed = dataclasses.replace(first, outcome=Outcome.ANSWERED, caller_name="Someone Else", legs=first.legs[:1])
    async with await open_store() as store:
        assert await store.save_calls([changed, make_call("c", T0 + 120), first]) == 1
        assert await store.count_calls() == 3
        [stored_first] = [call for call in await store.list_calls() if call.linkedid == "a"]
    assert stored_first == first  # not changed, legs not duplicated


async def test_same_call_twice_in_one_batch(open_store):
    async with await open_store() as store:
        assert await store.save_calls([make_call("a", T0), make_call("a", T0)]) == 1
        [call] = await store.list_calls()
    assert len(call.legs) == 2


async def test_batch_is_one_transaction(open_store):
    broken = dataclasses.replace(make_call("bad", T0 + 1), did=None)  # violates NOT NULL
    async with await open_store() as store:
        with pytest.raises(Exception) as refused:
            await store.save_calls([make_call("good", T0), broken])
        assert type(refused.value).__name__ in ("IntegrityError", "NotNullViolation")
        assert not CallStore.is_outage(refused.value)  # refused data, not an outage: set aside, not retried
        assert await store.count_calls() == 0
        assert await store.save_calls([make_call("good", T0)]) == 1  # the store is usable afterwards


async def test_list_newest_first_with_filters(open_store):
    calls = [
        make_call("old-missed", T0, Outcome.NO_ANSWER),
        make_call("mid-answered", T0 + 100, Outcome.ANSWERED),
        make_call("new-missed", T0 + 200, Outcome.ABANDONED, legs=0),
        make_call("newest-busy", T0 + 300, Outcome.BUSY),
    ]
    async with await open_store() as store:
        await store.save_calls(calls)
        ids = [call.linkedid for call in await store.list_calls()]
        missed = [call.linkedid for call in await store.list_calls(missed_only=True)]
        recent = [call.linkedid for call in await store.list_calls(since=T0 + 100)]
        limited = [call.linkedid for call in await store.list_calls(limit=2)]
        missed_limited = [call.linkedid for call in await store.list_calls(missed_only=True, since=T0 + 1, limit=1)]
        counts = (await store.count_calls(), await store.count_calls(missed_only=True))
    assert ids == ["newest-busy", "new-missed", "mid-answered", "old-missed"]
    assert missed == ["newest-busy", "new-missed", "old-missed"]
    assert recent == ["newest-busy", "new-missed", "mid-answered"]
    assert limited == ["newest-busy", "new-missed"]
    assert missed_limited == ["newest-busy"]
    assert counts == (4, 3)


async def test_list_returns_each_calls_legs_in_order(open_store):
    async with await open_store() as store:
        await store.save_calls([make_call("three", T0, legs=3), make_call("none", T0 + 5, legs=0)])
        by_id = {call.linkedid: call for call in await store.list_calls()}
    assert [leg.endpoint for leg in by_id["three"].legs] == ["PJSIP/101", "PJSIP/102", "PJSIP/103"]
    assert by_id["none"].legs == ()


async def test_hostile_caller_name_is_stored_verbatim(open_store):
    hostile = 'Robert\'); DROP TABLE calls;-- <script>alert("x")</script> \x1b[31m\u202e%s?'
    call = make_call("h", T0, caller=None, caller_name=hostile)
    async with await open_store() as store:
        await store.save_calls([call])
    async with await open_store() as store:
        [stored] = await store.list_calls()
        assert await store.count_calls() == 1
    assert stored.caller_name == hostile
    assert stored.caller is None


async def test_negative_limit_is_refused(open_store):
    async with await open_store() as store:
        with pytest.raises(ValueError, match="limit"):
            await store.list_calls(limit=-1)
