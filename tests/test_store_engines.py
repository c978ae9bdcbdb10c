"""The two engines give the same answers: one scenario written through every store write (calls, texts, receipts,
replies, opt-outs, links and visits, answers, read marks, desk call backs, recovery marks, sessions, notices, calls
set aside, CEL progress) on SQLite and on PostgreSQL, then every read the service makes, compared whole.

A query that a dialect reads differently (an ordering by the locale, a rounding, a missing row) shows here as a
difference, and a query PostgreSQL refuses fails the test. The migrations of both engines are kept in step here too.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from callbuddy_pbx.asterisk.outbound import OutboundAnswer
from callbuddy_pbx.commands.stats import _recorded_businesses
from callbuddy_pbx.model import CallRecord, LegRecord, Outcome
from callbuddy_pbx.service.alerts import _FAILED_TEXTS
from callbuddy_pbx.service.metrics import store_backlog
from callbuddy_pbx.service.notify import Notice, NotificationLog
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState
from callbuddy_pbx.store import dashboard_queries as dq
from callbuddy_pbx.store import schema, schema_pg
from callbuddy_pbx.store.conversations import (
    ANSWER,
    find_thread,
    list_threads,
    mark_read,
    number_texted,
    queue_answer,
)
from callbuddy_pbx.store.conversations import thread_items as read_thread_items
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.engine import pg_placeholders
from callbuddy_pbx.store.forwards import ForwardResult, ForwardStore, NewForward
from callbuddy_pbx.store.links import LinkStore, NewLink
from callbuddy_pbx.store.messages import MessageStore, NewText, ReplyEffect, SendUpdate, Verdict
from callbuddy_pbx.store.push_bindings import PushBindingStore
from callbuddy_pbx.store.recovery import RecoveryStore
from callbuddy_pbx.store.stats import recovery_stats
from callbuddy_pbx.web.sessions import SessionStore
from tests.pg import Cluster

T0 = 1_770_000_000.0
GLOW, DENTAL = "Glow Salon", "Bright Dental"
# Numbers whose order differs between byte order and a locale's (lower/upper case, punctuation): SQLite compares
# bytes, and PostgreSQL must too.
CALLERS = ("+15550000001", "+15550000002", "+15550000010", "anon-Zed", "anon-abe")


def test_every_sqlite_migration_has_a_postgresql_twin() -> None:
    assert len(schema_pg.PG_MIGRATIONS) == len(schema.MIGRATIONS), (
        f"SQLite has {len(schema.MIGRATIONS)} migrations, PostgreSQL {len(schema_pg.PG_MIGRATIONS)}: "
        "add the PostgreSQL twin of each new migration to store/schema_pg.py"
    )
    assert schema_pg.missing_twins() == []


def test_parameter_marks_become_psycopgs_and_nothing_else_changes() -> None:
    sql = "SELECT ':no', '?', 50 % 3, x::text, \"a:b\" FROM t WHERE a = ? AND b = :name -- :c ?\n AND c = :name"
    assert pg_placeholders(sql) == (
        "SELECT ':no', '?', 50 %% 3, x::text, \"a:b\" FROM t WHERE a = %s AND b = %(name)s -- :c ?\n AND c = %(name)s"
    )
    assert pg_placeholders("SELECT 'it''s ?' WHERE x = ?") == "SELECT 'it''s ?' WHERE x = %s"


def call(n: int, caller: str, business: str, ended: float, outcome: Outcome = Outcome.NO_ANSWER) -> CallRecord:
    answered = outcome is Outcome.ANSWERED
    return CallRecord(
        linkedid=f"17700.{n:03d}",
        business=business,
        did="+15550001000" if business == GLOW else "+15550002000",
        caller=caller,
        caller_raw=caller,
        caller_name=f"Caller {n}" if n % 2 else None,
        outcome=outcome,
        answered_by="PJSIP/101" if answered else None,
        started_at=ended - 30,
        ring_at=ended - 28,
        answered_at=ended - 20 if answered else None,
        ended_at=ended,
        hangup_cause=16,
        legs=tuple(
            LegRecord(f"PJSIP/10{leg}-{n:04d}", f"PJSIP/10{leg}", "NOANSWER", 16, False, ended - 28, ended - 1)
            for leg in range(n % 3)
        ),
        from_cel=n % 4 == 0,
    )


def texted(record: CallRecord, at: float) -> NewText:
    return NewText(
        key=record.linkedid,
        kind="missed_call",
        to=record.caller or "",
        sender=record.did,
        gateway="smsc",
        body=f"Sorry we missed you at {record.business}. Book: https://x/r/{record.linkedid[-3:]}abcdefgh",
        send_at=at,
        business=record.business,
        linkedid=record.linkedid,
    )


def plain(value: Any) -> Any:
    """Dataclasses and mappings as plain data, floats rounded to the microsecond, for a whole comparison."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, float):
        return round(value, 6)
    return value


async def scenario(store: CallStore) -> dict[str, Any]:
    """Write the scenario through the stores' own calls, then read it back every way the service does."""
    messages, links, recovery = MessageStore(store), LinkStore(store), RecoveryStore(store)
    out: dict[str, Any] = {}
    records = [
        call(n, CALLERS[n % len(CALLERS)], GLOW if n % 3 else DENTAL, T0 + 600 * n + 0.25, Outcome.NO_ANSWER)
        for n in range(1, 16)
    ] + [call(n, CALLERS[n % len(CALLERS)], GLOW, T0 + 600 * n + 0.5, Outcome.ANSWERED) for n in range(16, 20)]
    # Two calls that ended together, keyed so that byte order ("ABD" < "abc") and a locale's ("abc" < "ABD") differ:
    # the feed's keyset pages order them by linkedid.
    twins = [dataclasses.replace(records[0], linkedid=key, ended_at=T0 + 5000.0) for key in ("node.abc", "node.ABD")]
    records += twins
    texts = [texted(r, r.ended_at + 5) for r in records if r.missed and r.caller and r.caller.startswith("+")]
    new_links = [
        NewLink(t.key, f"tok{t.key[-3:]}abcdefg"[:11], "https://book.example/glow", t.linkedid, t.business)
        for t in texts
    ]
    verdicts = [Verdict(r.linkedid, r.missed, "missed" if r.missed else "answered") for r in records]
    new = await messages.save_calls_with_texts(
        records, verdicts, texts, cancel_for=[(CALLERS[1], GLOW, T0 + 600 * 18)], now=T0 + 9000, links=new_links
    )
    out["new_calls"] = [r.linkedid for r in new]
    out["saved_again"] = await store.save_calls(records[:3])
    out["known"] = await store.known_calls([r.linkedid for r in records[:5]] + ["nope"])
    await store.set_aside("bad.1", "{}", "a NULL in a NOT NULL column", T0 + 1)
    await store.set_cel_progress("master.db", 41, T0 + 2)
    await store.set_cel_progress("master.db", 42, T0 + 3)
    out["cel"] = (await store.cel_progress("master.db"), await store.cel_progress("other"))

    # The outbox: due, claimed, sent (some with ids reused), a receipt early, an unknown settled by its words.
    help_text = NewText("help:1", "help", CALLERS[0], "+15550001000", "smsc", "Reply STOP to end", T0 + 9001, GLOW)
    out["enqueued"] = await messages.enqueue([help_text], T0 + 9001)
    due = await messages.due(T0 + 20_000, 100)
    out["due"] = [row.key for row in due]
    out["next_due"] = await messages.next_due_at()
    claimed = await messages.claim([row.id for row in due], T0 + 20_001)
    out["claimed"] = len(claimed)
    early = DeliveryReport("m-early", DeliveryState.DELIVERED, T0 + 20_002, detail="DELIVRD")
    out["early_kept"] = await messages.apply_report("smsc", early)
    updates = []
    for index, row in enumerate(due):
        if index == 0:
            updates.append(SendUpdate(row.id, "sent", 1, row.send_at, "m-early", None, T0 + 20_003))
        elif index == 1:
            updates.append(SendUpdate(row.id, "queued", 1, T0 + 30_000, None, "throttled", T0 + 20_003))
        elif index == 2:
            updates.append(SendUpdate(row.id, "failed", 1, row.send_at, None, "rejected", T0 + 20_003))
        else:
            updates.append(SendUpdate(row.id, "sent", 1, row.send_at, f"m-{index % 3}", None, T0 + 20_003 + index))
    await messages.apply_send_results(updates)
    for index in range(3, 6):
        report = DeliveryReport(f"m-{index % 3}", DeliveryState.DELIVERED, T0 + 21_000 + index, detail="DELIVRD")
        out[f"report_{index}"] = await messages.apply_report("smsc", report)
    out["crash"] = await messages.recover_after_crash(T0 + 22_000)
    out["requeued"] = await messages.requeue_unknown(T0 + 22_000, T0 + 22_001)

    # Replies, opt-outs and a reply stored once however often it comes. (PostgreSQL's identity spends a number on
    # a refused insert, SQLite's does not: the repeats come after the rows that follow, so both number them alike.)
    for repeat in (False, True):
        for n, (sender, body, keyword) in enumerate(
            [
                (CALLERS[0], "Can I come at 3?", "other"),
                (CALLERS[1], "STOP", "opt_out"),
                (CALLERS[2], "thanks", "other"),
            ]
        ):
            effect = ReplyEffect(GLOW, opted_out=True if keyword == "opt_out" else None)
            forwards = [
                NewForward(f"f{n}:sms", GLOW, "sms", "+15559990000"),
                NewForward(f"f{n}:mail", GLOW, "email", "owner@example.com"),
            ]
            out[f"reply_{n}_{repeat}"] = await messages.record_inbound(
                "smsc",
                sender,
                "+15550001000",
                GLOW,
                body,
                keyword,
                T0 + 23_000 + n,
                key=f"k{n}",
                effects=[effect],
                forwards=forwards,
            )
    # Replies forwarded to the owner (store/forwards.py): due, claimed, settled three ways, resumed after a crash.
    forward_store = ForwardStore(store)
    due_forwards = await forward_store.due(T0 + 23_050, 100)
    out["forwards_due"] = due_forwards
    out["forwards_next"] = await forward_store.next_due_at()
    claimed_forwards = await forward_store.claim([row.id for row in due_forwards], T0 + 23_060)
    fates = [("sent", None), ("pending", "SMTP 451"), ("failed", "HTTP 410")]
    for i, fid in enumerate(claimed_forwards[:-1]):  # one at a time: "the newest error" has one answer
        state, error = fates[i % 3]
        await forward_store.finish([ForwardResult(fid, state, 1, T0 + 23_500, error)], T0 + 23_070 + i)
    out["forwards_resumed"] = await forward_store.resume_after_crash(T0 + 23_080)  # the last one was `sending`
    out["forwards_counts"] = await forward_store.counts()
    out["forwards_trouble"] = await forward_store.trouble(T0 + 23_100, T0)
    out["forwards_of_reply"] = await forward_store.for_reply(due_forwards[0].inbound_id)
    bindings = PushBindingStore(store)
    await bindings.save({"PJSIP/103": '{"provider": "apns"}', "PJSIP/104": '{"provider": "fcm"}'}, T0 + 23_090)
    await bindings.save({"PJSIP/104": None, "PJSIP/103": '{"provider": "apns", "n": 2}'}, T0 + 23_091)
    out["push_bindings"] = await bindings.load()
    out["opt_in"] = await messages.set_opt_out(CALLERS[3], DENTAL, False, T0 + 23_100)
    out["opt_out"] = await messages.set_opt_out(CALLERS[3], DENTAL, True, T0 + 23_101)
    out["facts"] = await messages.facts(CALLERS[0], GLOW, T0)
    out["facts_out"] = await messages.facts(CALLERS[1], GLOW, T0)

    # Links, visits, answers, read marks, desk call backs and recovery.
    for token in [link.token for link in new_links][:3]:
        await links.record_click(token, T0 + 24_000, "Mozilla/5.0 " + "x" * 300)
    await links.record_click(new_links[0].token, T0 + 24_001, None)
    out["lookup"] = await links.lookup(new_links[0].token)
    out["lookup_none"] = await links.lookup("nope")
    out["tokens"] = await links.tokens_for_call(new_links[0].linkedid or "")
    out["clicks_call"] = await links.clicks_for_call(new_links[0].linkedid or "")
    out["clicks_business"] = (await links.clicks_for_business(GLOW), await links.clicks_for_business(GLOW, T0 + 9e9))
    out["clicks_by"] = await links.clicks_by_business()
    answer = NewText("answer:1", ANSWER, CALLERS[0], "+15550001000", "smsc", "Yes, 3 pm is free", T0 + 25_000, GLOW)
    out["answer"] = await queue_answer(store, answer, "ann", T0 + 25_000)
    out["answer_again"] = await queue_answer(store, answer, "ann", T0 + 25_001)
    refused = dataclasses.replace(answer, key="answer:2", to=CALLERS[1])
    out["answer_refused"] = await queue_answer(store, refused, "ann", T0 + 25_002)
    out["enqueued_again"] = await messages.enqueue([help_text], T0 + 25_003)
    await mark_read(store, CALLERS[0], GLOW, T0 + 25_500, "ann")
    await mark_read(store, CALLERS[0], GLOW, T0 + 25_400, "bob")  # older: the mark stays
    out["number_texted"] = await number_texted(store, CALLERS[0], GLOW)
    desk = [OutboundAnswer("out.1", GLOW, "PJSIP/100", CALLERS[2], T0 + 26_000)]
    out["outbound_new"] = (await recovery.record_outbound(desk, T0 + 26_001), await recovery.record_outbound(desk, 0))
    await recovery.mark_calls(records, T0 + 26_002)
    await recovery.sweep(T0 + 27_000)
    async with store.connection.execute(
        "SELECT linkedid, how, recovered_at, source FROM recoveries ORDER BY linkedid"
    ) as cursor:
        out["recoveries"] = [tuple(row) for row in await cursor.fetchall()]

    # Reading: calls, texts, verdicts, threads, the feed, figures.
    out["calls"] = await store.list_calls(limit=50)
    out["calls_missed_since"] = await store.list_calls(missed_only=True, since=T0 + 3000, businesses=[GLOW])
    out["call_one"] = await store.list_calls(linkedid=records[4].linkedid)
    out["counts"] = (await store.count_calls(), await store.count_calls(missed_only=True))
    out["messages"] = await messages.list_messages(limit=100)
    out["messages_scoped"] = await messages.list_messages(state="delivered", since=T0, businesses=[GLOW, DENTAL])
    out["messages_call"] = await messages.list_messages(linkedid=records[0].linkedid)
    out["verdict"] = (await messages.verdict(records[0].linkedid), await messages.verdict("nope"))
    threads = await list_threads(store, None)
    out["threads"] = threads
    out["threads_glow_unread"] = await list_threads(store, [GLOW], unread_only=True)
    out["threads_changed"] = await list_threads(store, None, changed_since=T0 + 23_001)
    out["thread_found"] = [await find_thread(store, t.id, None) for t in threads]
    out["thread_hidden"] = [await find_thread(store, t.id, [DENTAL]) for t in threads]
    out["thread_items"] = [await read_thread_items(store, t.number, t.business) for t in threads]
    every = dq.FeedFilter(missed_only=False)
    page = await dq.feed_page(store, every, None, limit=7)
    out["feed"] = page
    out["feed_next"] = await dq.feed_page(store, every, None, before=page[-1].cursor, limit=50)
    out["feed_filtered"] = await dq.feed_page(
        store,
        dq.FeedFilter(business=GLOW, outcome="no_answer", digits="0000", since=T0, until=T0 + 9e9),
        [GLOW],
        limit=50,
    )
    out["feed_no_text"] = await dq.feed_page(store, dq.FeedFilter(missed_only=False, text="none"), [GLOW, DENTAL])
    out["feed_delivered"] = await dq.feed_page(store, dq.FeedFilter(text="delivered", outcome="no_answer"), None)
    changed = await dq.changed_since(store, every, None, after=(0.0, ""), limit=5)
    out["changed"] = changed
    out["changed_rest"] = await dq.changed_since(store, every, None, after=changed[-1].change_key, up_to=None)
    out["changed_window"] = await dq.changed_since(store, every, [GLOW], after=(0.0, ""), up_to=changed[2].change_key)
    out["clicks"] = await dq.call_clicks(store, new_links[0].linkedid or "")
    out["system"] = await dq.system_counts(store, since=T0)
    for name, scope in {"all": {}, "glow": {"business": GLOW}, "both": {"businesses": [GLOW, DENTAL]}}.items():
        figures = await recovery_stats(store, since=T0, until=T0 + 86_400, timezone="America/New_York", **scope)
        out[f"stats_{name}"] = figures.to_dict()

    # The queries of web/, service/ and commands/.
    sessions = SessionStore(store, lifetime_s=60)
    cookie, _ = await sessions.create("ann", T0)
    out["session"] = (await sessions.lookup(cookie, T0 + 1)).user_name  # type: ignore[union-attr]
    out["session_expired"] = await sessions.lookup(cookie, T0 + 61)
    await sessions.create("bob", T0)
    out["sessions_purged"] = (await sessions.delete_user("bob"), await sessions.purge(T0 + 100))
    log = NotificationLog(store)
    notice = Notice(key="alert:ami_down:1", kind="alert", text="AMI down", business=None)
    out["notice"] = (await log.claim(notice, T0), await log.claim(notice, T0 + 1), await log.exists(notice.key))
    await log.finish(notice.key, T0 + 2, ["sms: refused"])
    out["notices"] = await log.since(["alert", "digest"], T0 - 1)
    out["backlog"] = await store_backlog(store)()
    async with store.connection.execute(_FAILED_TEXTS, {"since": T0}) as cursor:
        out["failed_texts"] = tuple(await cursor.fetchone())
    out["businesses"] = await _recorded_businesses(store)
    return {key: plain(value) for key, value in out.items()}


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store stamps calls with time.time(): the same stamp on both engines."""

    class Clock:
        @staticmethod
        def time() -> float:
            return T0 + 50_000.0

    monkeypatch.setattr("callbuddy_pbx.store.db.time", Clock)


async def test_both_engines_answer_every_read_alike(tmp_path: Path, pg_cluster: Cluster, fixed_clock: None) -> None:
    results: dict[str, dict[str, Any]] = {}
    for engine, url in (
        ("sqlite", f"sqlite:///{tmp_path / 'db.sqlite3'}"),
        ("postgresql", pg_cluster.fresh_url()),
    ):
        async with await CallStore.open_url(url) as store:
            assert store.dialect == engine
            results[engine] = await scenario(store)
    sqlite, pg = results["sqlite"], results["postgresql"]
    assert sqlite.keys() == pg.keys()
    differing = {key: (sqlite[key], pg[key]) for key in sqlite if sqlite[key] != pg[key]}
    assert not differing, json.dumps(differing, indent=1, default=str)[:6000]
    # The scenario is not empty: every figure it reads was written.
    assert sqlite["counts"] == [21, 17] and sqlite["claimed"] >= 6 and sqlite["recoveries"]
    assert sqlite["stats_all"]["delivered"] >= 1 and sqlite["stats_all"]["recovered"] >= 1
    assert sqlite["threads"] and sqlite["answer"]["status"] == "queued"
    assert sqlite["answer_refused"]["reason"] == "opted_out" and (sqlite["reply_1_False"], sqlite["reply_1_True"]) == (
        0,
        None,
    )
    assert len(sqlite["forwards_due"]) == 6 and sqlite["forwards_resumed"] == 1 and sqlite["push_bindings"]
    assert sqlite["changed_window"] and sqlite["feed_filtered"] and sqlite["feed_no_text"] and sqlite["clicks"]
