"""PostgreSQL as the store, from the installer's side: `storage.url` in the configuration (the password never in
the file nor in a message), `callbuddy-pbx migrate` and the copy from SQLite, and a lost connection taken as an
outage (work deferred, never dropped) rather than as data refused."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import psycopg
import pytest

from callbuddy_pbx import cli
from callbuddy_pbx.commands.check import database_check
from callbuddy_pbx.config import load_config
from callbuddy_pbx.db_url import masked
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store import SCHEMA_VERSION, CallStore, StoreError, schema_pg
from callbuddy_pbx.store.messages import MessageStore, NewText
from tests.config_files import problems_of
from tests.pg import Cluster
from tests.test_store_engines import scenario
from tests.test_textback_e2e import TRACES, Running, salon_config
from tests.waiting import wait_until


def test_a_postgresql_url_is_read_and_the_sqlite_path_stays_the_default(write, tmp_path) -> None:
    config = load_config(write("storage:\n  url: postgresql://callbuddy@db.example:5433/calls\n"))
    assert (config.storage.engine, config.storage.url) == ("postgresql", "postgresql://callbuddy@db.example:5433/calls")
    assert (
        load_config(write("storage:\n  url: sqlite:///db/calls.sqlite3\n")).storage.path
        == tmp_path / "db/calls.sqlite3"
    )
    default = load_config(write("storage:\n  path: db/x.sqlite3\n")).storage
    assert (default.engine, default.url, default.path) == ("sqlite", None, tmp_path / "db/x.sqlite3")


def test_storage_url_problems_name_the_line_and_never_show_a_password(write) -> None:
    path = write("storage:\n  path: a.db\n  url: postgresql://u:hunter2@h/db\n")
    problems = problems_of(path)
    assert f"{path}:3: storage.url: give storage.path or storage.url, not both" in problems
    assert any(p.startswith(f"{path}:3: storage.url:") and "environment" in p for p in problems)
    assert not any("hunter2" in p for p in problems)
    assert problems_of(write("storage:\n  url: mysql://h/db\n")) == [
        f"{path}:2: storage.url: 'mysql://h/db' is not a database URL "
        "(postgresql://user@host:port/database or sqlite:///path)"
    ]
    assert "name the database" in problems_of(write("storage:\n  url: postgresql://u@h:5432/\n"))[0]


def test_a_url_is_shown_masked() -> None:
    assert masked("postgresql://u:secret@h:5432/db?password=x&sslmode=require") == (
        "postgresql://u:***@h:5432/db?password=***&sslmode=require"
    )
    assert masked("postgresql://u@h/db") == "postgresql://u@h/db"


def _config(write, url: str) -> Path:
    return write(f"storage:\n  url: {url}\n", name="pg.yaml")


def test_migrate_brings_a_new_database_up_to_date_and_says_so(write, pg_cluster: Cluster, capsys) -> None:
    config = _config(write, pg_cluster.fresh_url())
    assert cli.main(["migrate", "--config", str(config)]) == 0
    first = capsys.readouterr().out
    assert cli.main(["migrate", "--config", str(config)]) == 0
    again = capsys.readouterr().out
    assert first.endswith(f"schema version {SCHEMA_VERSION} (migrated from 0)\n")
    assert again.endswith(f"schema version {SCHEMA_VERSION} (already up to date)\n")


def test_migrate_says_in_one_line_when_the_database_is_not_there(write, capsys, monkeypatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CALLBUDDY_DB_PASSWORD", "s3cret-pw")
    assert cli.main(["migrate", "--config", str(_config(write, f"postgresql://cb@127.0.0.1:{port}/calls"))]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"callbuddy-pbx migrate: postgresql://cb@127.0.0.1:{port}/calls: cannot connect (")
    assert err.count("\n") == 1 and "Traceback" not in err and "s3cret-pw" not in err


def test_a_store_without_the_postgresql_twin_of_a_migration_is_refused(pg_cluster: Cluster, monkeypatch) -> None:
    monkeypatch.setattr(schema_pg, "PG_MIGRATIONS", schema_pg.PG_MIGRATIONS[:-1])
    monkeypatch.setattr(schema_pg, "PG_SCHEMA_VERSION", SCHEMA_VERSION - 1)
    with pytest.raises(StoreError, match=f"no PostgreSQL version of schema migration.s. {SCHEMA_VERSION} yet"):
        asyncio.run(CallStore.open_url(pg_cluster.fresh_url()))


def test_the_copy_from_sqlite_moves_every_row_once(write, tmp_path, pg_cluster: Cluster, capsys) -> None:
    source = tmp_path / "old.sqlite3"

    async def fill() -> dict[str, object]:
        async with await CallStore.open(source) as store:
            return await scenario(store)

    written = asyncio.run(fill())
    url = pg_cluster.fresh_url()
    config = _config(write, url)
    assert cli.main(["migrate", "--config", str(config), "--from-sqlite", str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    counts = dict(line.split(": ") for line in lines[:-1])
    assert counts["calls"] == "21 rows" and counts["messages"] == "13 rows" and counts["inbound_messages"] == "3 rows"
    order = [line.split(":")[0] for line in lines[:-1]]
    assert order.index("calls") < order.index("call_legs") and order.index("messages") < order.index("message_authors")
    assert lines[-1].startswith(f"copied {sum(int(c.split()[0]) for c in counts.values())} rows in {len(counts)}")

    async def read_back() -> tuple[object, object, int]:
        async with await CallStore.open(source) as old, await CallStore.open_url(url) as new:
            same = [await s.list_calls(limit=100) for s in (old, new)]
            texts = [await MessageStore(s).list_messages(limit=100) for s in (old, new)]
            fresh = NewText("after-copy", "help", "+15550000001", "+15550001000", "smsc", "hi", 0.0, "Glow Salon")
            await MessageStore(new).enqueue([fresh], 9e9)
            row = (await MessageStore(new).list_messages(limit=1, state="queued"))[0]  # newest
            return (same[0] == same[1], texts[0] == texts[1], row.id if row.key == "after-copy" else -1)

    same_calls, same_texts, new_id = asyncio.run(read_back())
    assert same_calls and same_texts and written["counts"] == [21, 17]
    assert new_id > 13  # the identity counter was moved past the copied ids

    assert cli.main(["migrate", "--config", str(config), "--from-sqlite", str(source)]) == 1
    err = capsys.readouterr().err
    assert "already holds rows" in err and "--replace" in err and err.count("\n") == 1
    assert cli.main(["migrate", "--config", str(config), "--from-sqlite", str(source), "--replace"]) == 0
    assert "calls: 21 rows" in capsys.readouterr().out
    # The read commands take the URL as --db, or from --config.
    assert cli.main(["calls", "--db", url, "--limit", "3", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert cli.main(["messages", "--config", str(config), "--state", "delivered", "--json"]) == 0
    assert '"state": "delivered"' in capsys.readouterr().out


def test_check_connects_to_the_store_and_refuses_one_without_tables(write, pg_cluster: Cluster, capsys) -> None:
    ready = _config(write, pg_cluster.fresh_url())
    assert cli.main(["migrate", "--config", str(ready)]) == 0
    assert database_check(load_config(ready)) == 0
    assert f"OK, schema version {SCHEMA_VERSION}" in capsys.readouterr().out
    empty = write(f"storage:\n  url: {pg_cluster.fresh_url()}\n", name="empty.yaml")
    assert database_check(load_config(empty)) == 1
    assert "no CallBuddy tables in this database (run `callbuddy-pbx migrate`)" in capsys.readouterr().out


async def test_a_connection_lost_mid_write_is_an_outage_and_a_refused_row_is_not(pg_cluster: Cluster) -> None:
    async with await CallStore.open_url(pg_cluster.fresh_url()) as store:
        with pytest.raises(psycopg.OperationalError) as lost:
            async with store.transaction() as conn:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        assert CallStore.is_outage(lost.value)
        with pytest.raises(psycopg.IntegrityError) as refused:
            async with store.transaction() as conn:
                await conn.execute("INSERT INTO cel_progress (source, last_id, updated_at) VALUES ('x', NULL, 0)")
        assert not CallStore.is_outage(refused.value)
        # The pool replaced the dropped connection: the store works on.
        await store.set_cel_progress("x", 7, 1.0)
        assert await store.cel_progress("x") == 7 and await store.writable()


async def test_an_unreachable_server_is_an_outage() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(psycopg.OperationalError) as info:
        await psycopg.AsyncConnection.connect(f"postgresql://cb@127.0.0.1:{port}/x", connect_timeout=2)
    assert CallStore.is_outage(info.value)


async def test_the_text_back_service_runs_on_postgresql_end_to_end(pg_cluster: Cluster, tmp_path: Path) -> None:
    """The whole path on PostgreSQL: AMI events -> calls -> verdicts -> the outbox -> the gateway, a STOP, and a
    stream replayed after a reconnect texting nobody twice (the store-level tests cover each query; this, the
    wiring)."""
    first, second = (next(t for t in TRACES if t.name.startswith(n)) for n in ("01-", "09-"))
    gateway = SimulatedGateway("sim")
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    config = salon_config(server.port, tmp_path / "unused.sqlite3")
    store = await CallStore.open_url(pg_cluster.fresh_url())
    text_back = TextBackService(config, store, {gateway.name: gateway})
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append, text_back=text_back)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 5)
        run = Running(server, service, store, text_back, calls)
        await server.replay_raw(first.raw)
        await run.wait_for_calls(len(first.expected()))
        await run.settle()
        assert len(gateway.sent) == len([c for c in first.expected() if c.missed]) == 1
        server.drop_clients()  # a reconnect, then the same stream again (same linkedids)
        await wait_until(lambda: service.ami.connects == 2 and server.clients == 1)
        await server.replay_raw(first.raw)
        await gateway.receive(gateway.sent[0].to, "+15550001000", "STOP")
        await server.replay_raw(second.raw)
        await run.wait_for_calls(len(first.expected()) * 2 + len(second.expected()))
        await run.settle()
        texts = [sms.text for sms in gateway.sent]
        missed_second = [c for c in second.expected() if c.missed and f"+{c.caller}" != gateway.sent[0].to]
        assert len(texts) == 2 + len(missed_second) and "no more texts" in texts[1]
        assert await store.count_calls() == len({c.linkedid for c in calls})
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await store.close()
        await server.stop()
