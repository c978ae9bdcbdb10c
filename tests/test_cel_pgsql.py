"""CEL read from the PostgreSQL table Asterisk's `cel_pgsql` writes (asterisk/cel_pgsql.py): the recorded calls
(shared/traces/asterisk-cel/*/master.db) loaded into such a table, on the PostgreSQL the suite starts, are read as
the SQLite file gives them and judged as meta.json says; the reconciler sweeps it; every way the table or the server
can be wrong is one clear error; the `cel: pgsql:` section and the rendered cel_pgsql.conf."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml

from callbuddy_pbx.asterisk import cel_pgsql
from callbuddy_pbx.asterisk.cel import CelRow, complete_calls, event_time, judge
from callbuddy_pbx.asterisk.cel_pgsql import CEL_PGSQL_TABLE, CelPgsql
from callbuddy_pbx.asterisk.cel_source import CelSourceError, open_cel_source
from callbuddy_pbx.asterisk.cel_sqlite import CelProbe, CelSqlite
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.render import render_all
from callbuddy_pbx.config import Config, PbxConfig, StorageConfig, load_config
from callbuddy_pbx.config.cel import CelConfig, CelPgsqlConfig, CelReader
from callbuddy_pbx.config.reader import Reader
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.service.cel_reconcile import CelReconciler
from callbuddy_pbx.store.db import CallStore
from tests.config_files import Write, problems_of
from tests.pg import Cluster
from tests.test_cel_reconcile import expected
from tests.test_render_cel import settings
from tests.traces import Trace, cel_traces

TRACES = cel_traces()
UTC = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
# The recorded table's columns (cel_sqlite3_custom, as render writes it) -> cel_pgsql's names for the same fields.
PGSQL_NAMES = {"cidname": "cid_name", "cidnum": "cid_num", "cidani": "cid_ani", "cidrdnis": "cid_rdnis",
               "ciddnid": "cid_dnid"}  # fmt: skip
RECORDED = [  # as the recordings' cel_sqlite3_custom.conf listed them
    *("eventtype", "eventtime", "cidname", "cidnum", "cidani", "cidrdnis", "ciddnid", "exten", "context", "channame"),
    *("appname", "appdata", "amaflags", "accountcode", "uniqueid", "linkedid", "peer", "peeraccount", "userfield"),
    *("userdeftype", "extra"),
]
DATE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # cel_pgsql's "%Y-%m-%d %T.%6q"


def trace(prefix: str) -> Trace:
    return next(t for t in TRACES if t.name.startswith(prefix))


def recorded_rows(path: Path) -> list[dict[str, Any]]:
    """The recorded rows with their time as unix seconds (either eventtime format; the PBX was on UTC)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        raws = conn.execute(f"SELECT AcctId, {', '.join(RECORDED)} FROM cel ORDER BY AcctId").fetchall()
    rows = []
    for raw in raws:
        row = {PGSQL_NAMES.get(name, name): value for name, value in zip(["id", *RECORDED], raw, strict=True)}
        row["eventtime"] = event_time(str(row["eventtime"]), UTC)
        row["amaflags"] = int(row["amaflags"] or 0)
        rows.append(row)
    return rows


def written(at: float, kind: str, zone: ZoneInfo) -> object:
    """eventtime as cel_pgsql writes it into a column of this type (`zone`: GMT with usegmtime, else local)."""
    if kind in ("bigint", "integer"):
        return int(at)
    if kind in ("real", "double precision"):
        return f"{at:f}"  # C's %f
    return datetime.fromtimestamp(at, zone).strftime(DATE_FORMAT)


def write_rows(
    url: str, rows: list[dict[str, Any]], *, table: str = "cel", kind: str = "timestamp", zone: ZoneInfo = UTC,
    keep_ids: bool = False,
) -> None:  # fmt: skip
    """Asterisk writing these rows with cel_pgsql: one INSERT each, in order, the id left to its default (or kept)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for row in rows:
            values = {**row, "eventtime": written(row["eventtime"], kind, zone)}
            if not keep_ids:
                del values["id"]
            names = list(values)
            conn.execute(
                f'INSERT INTO "{table}" ({", ".join(names)}) VALUES ({", ".join(["%s"] * len(names))})',
                [None if value is None else str(value) for value in values.values()],
            )


def make_table(url: str, table: str = "cel", *, kind: str = "timestamp", ddl: str | None = None) -> None:
    """The table the rendered cel_pgsql.conf tells the installer to create (eventtime of another type if asked)."""
    text = ddl if ddl is not None else CEL_PGSQL_TABLE.format(table=table)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(text.replace("eventtime timestamp NOT NULL", f"eventtime {kind} NOT NULL"))


def pg_config(url: str | None = None, table: str = "cel", timezone: str | None = None) -> CelConfig:
    return CelConfig(pgsql=CelPgsqlConfig(table=table, url=url), timezone=timezone)


@contextlib.contextmanager
def opened(url: str, **kwargs: Any) -> Iterator[CelPgsql]:
    source = CelPgsql(pg_config(**kwargs), url)
    try:
        yield source
    finally:
        source.close()


def sqlite_rows(path: Path) -> list[CelRow]:
    source = CelSqlite(CelConfig(sqlite=path, timezone="UTC"))
    try:
        return source.rows(0, source.last_id())
    finally:
        source.close()


@pytest.fixture
def url(pg_cluster: Cluster) -> str:
    """An empty schema of its own (on the URL's search_path, as an installer's may be)."""
    return pg_cluster.fresh_url()


# ---- the recorded calls, read from cel_pgsql's table ---------------------------------------------------------------


@pytest.mark.parametrize("recording", TRACES, ids=lambda t: t.name)
def test_every_recorded_call_reads_and_judges_as_from_the_sqlite_file(url: str, recording: Trace) -> None:
    path = recording.path / "master.db"
    make_table(url)
    write_rows(url, recorded_rows(path), keep_ids=True)
    with opened(url) as source:
        rows = source.rows(0, source.last_id())
    assert rows == sqlite_rows(path)  # row for row, the same ids, values and times (to the microsecond)
    verdicts = judge(complete_calls(rows), InboundMatcher())
    assert {r.caller_raw: r.outcome.value for r in verdicts.values() if r is not None} == expected(recording)


EVENTTIME_TYPES = ["timestamp", "timestamptz", "double precision", "real", "bigint", "text", "varchar(40)"]


@pytest.mark.parametrize("kind", EVENTTIME_TYPES)
def test_eventtime_is_read_for_each_column_type_cel_pgsql_writes(url: str, kind: str) -> None:
    path = trace("20-").path / "master.db"
    make_table(url, kind=kind)
    write_rows(url, recorded_rows(path), kind=kind)
    with opened(url) as source:
        times = [row.time for row in source.rows(0, source.last_id())]
    want = [row.time for row in sqlite_rows(path)]
    if kind == "bigint":
        want = [float(int(at)) for at in want]  # cel_pgsql writes whole seconds into an integer column
    tolerance = 300 if kind == "real" else 1e-6  # float4 keeps ~7 digits: minutes at today's unix times
    assert times == pytest.approx(want, abs=tolerance)


@pytest.mark.parametrize("kind", ["timestamp", "text"])
def test_wall_clock_eventtime_is_read_in_the_configured_zone(url: str, kind: str) -> None:
    """cel_pgsql without usegmtime writes Asterisk's local time: cel.timezone names it; not given, UTC."""
    path = trace("03-").path / "master.db"
    make_table(url, kind=kind)
    write_rows(url, recorded_rows(path), kind=kind, zone=NEW_YORK)
    want = [row.time for row in sqlite_rows(path)]
    with opened(url, timezone="America/New_York") as source:
        assert [row.time for row in source.rows(0, source.last_id())] == pytest.approx(want, abs=1e-6)
    with opened(url) as source:  # read as UTC: 5 hours early (New York's wall clock is UTC-5 in December)
        assert [row.time + 5 * 3600 for row in source.rows(0, source.last_id())] == pytest.approx(want, abs=1e-6)


def test_rows_are_read_by_id_range_exactly_and_in_chunks(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cel_pgsql, "CHUNK_ROWS", 7)
    make_table(url)
    for prefix in ("17-", "09-", "22-"):
        write_rows(url, recorded_rows(trace(prefix).path / "master.db"))  # ids 1..n from the sequence
    with opened(url) as source:
        last = source.last_id()
        every = source.rows(0, last)
        assert [row.id for row in every] == sorted({row.id for row in every}) and every[-1].id == last
        for after, up_to in [(0, 1), (0, 7), (6, 7), (7, 8), (3, 30), (13, 14), (last - 1, last), (last, last + 5)]:
            assert source.rows(after, up_to) == [row for row in every if after < row.id <= up_to], (after, up_to)
        assert source.rows(5, 5) == [] and source.rows(9, 2) == []


def test_probe_says_how_many_rows_and_what_the_newest_is(url: str) -> None:
    make_table(url)
    with opened(url) as source:
        assert source.probe() == CelProbe(0, None, None)
        assert source.last_id() == 0 and source.rows(0, 10) == []
        rows = recorded_rows(trace("01-").path / "master.db")
        write_rows(url, rows)
        assert source.probe() == CelProbe(len(rows), "LINKEDID_END", rows[-1]["eventtime"])


def test_values_are_bounded_as_they_are_read(url: str) -> None:
    make_table(url)
    write_rows(url, recorded_rows(trace("01-").path / "master.db"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE cel SET cid_name = repeat('x', 100000) WHERE eventtype = 'CHAN_START'")
        conn.execute("UPDATE cel SET extra = repeat('[', 50000) WHERE eventtype = 'HANGUP'")
        conn.execute("UPDATE cel SET eventtime = '1970-01-01 00:00:01' WHERE id = 2")  # no time Asterisk writes
    with opened(url) as source:
        rows = source.rows(0, source.last_id())
    assert max(len(row.cid_name) for row in rows) == 256 and max(len(row.extra) for row in rows) == 4096
    assert 1 in {row.id for row in rows} and 2 not in {row.id for row in rows}  # a row with such a time: left out
    assert judge(complete_calls(rows), InboundMatcher())


# ---- the reconciler sweeping cel_pgsql's table ---------------------------------------------------------------------


async def test_the_reconciler_finds_the_calls_in_cel_pgsql_once(url: str, tmp_path: Path) -> None:
    make_table(url)
    config = pg_config()  # table cel, eventtime in UTC
    source = open_cel_source(config, url)  # no url of its own: the store's database
    assert isinstance(source, CelPgsql) and source.url == url
    store = await CallStore.open(tmp_path / "calls.sqlite3")
    found: list[CallRecord] = []
    reconciler = CelReconciler(config, source, InboundMatcher(), store, submit=found.append, followed=lambda _: False)
    try:
        await reconciler.sweep()  # the first sweep notes where CEL is
        recordings = [t for t in TRACES if "/" not in t.name][:8]
        for recording in recordings:  # Asterisk goes on writing while the service is away
            write_rows(url, recorded_rows(recording.path / "master.db"))
        reconciler.connected()  # AMI back: everything written so far ended before
        await reconciler.sweep()
        want = sorted(outcome for t in recordings for outcome in expected(t).values())
        assert sorted(r.outcome.value for r in found) == want and all(r.from_cel for r in found)
        last = source.last_id()
        assert await store.cel_progress(source.name) == last
        await reconciler.sweep()
        assert len(found) == len(want)  # nothing twice
        more = trace("19-")
        write_rows(url, recorded_rows(more.path / "master.db"))
        reconciler.connected()
        await reconciler.sweep()
        assert [r.outcome.value for r in found[len(want) :]] == list(expected(more).values())
        assert await store.cel_progress(source.name) == source.last_id() > last
        assert "password" not in source.name and source.name.startswith("pgsql:")
    finally:
        reconciler.close()
        await store.close()


async def test_the_reconciler_waits_out_an_unreachable_server(tmp_path: Path) -> None:
    source = CelPgsql(pg_config(), "postgresql://callbuddy@127.0.0.1:1/asterisk")
    store = await CallStore.open(tmp_path / "calls.sqlite3")
    reconciler = CelReconciler(
        pg_config(), source, InboundMatcher(), store, submit=lambda _: None, followed=lambda _: False
    )
    task = asyncio.create_task(reconciler.run())
    try:
        for _ in range(200):
            if reconciler.last_error is not None:
                break
            await asyncio.sleep(0.02)
        assert reconciler.last_error is not None and "cannot connect" in reconciler.last_error
        assert not task.done()  # still running: it tries again later
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()


# ---- what can be wrong: one clear error each ----------------------------------------------------------------------


def error_of(url: str, **kwargs: Any) -> str:
    with opened(url, **kwargs) as source, pytest.raises(CelSourceError) as caught:
        source.last_id()
    return str(caught.value)


def test_a_missing_table_says_so(url: str) -> None:
    message = error_of(url)
    assert "table cel: no such table" in message and "ALTER TABLE cel ADD COLUMN id bigserial" in message


def test_a_table_without_id_says_how_to_add_it(url: str) -> None:
    without_id = CEL_PGSQL_TABLE.format(table="cel").replace("  id bigserial PRIMARY KEY,\n", "")
    make_table(url, ddl=without_id)
    message = error_of(url)
    assert "no id column" in message and "run `ALTER TABLE cel ADD COLUMN id bigserial PRIMARY KEY`" in message
    with opened(url) as source, pytest.raises(CelSourceError, match="no id column"):
        source.probe()  # what `check` shows
    with psycopg.connect(url, autocommit=True) as conn:  # the installer does as told, rows already there
        conn.execute("ALTER TABLE cel ADD COLUMN id bigserial PRIMARY KEY")
    path = trace("01-").path / "master.db"
    write_rows(url, recorded_rows(path))
    with opened(url) as source:
        assert [row[1:] for row in source.rows(0, source.last_id())] == [row[1:] for row in sqlite_rows(path)]


def test_an_id_without_a_default_or_an_integer_eventtype_is_refused(url: str) -> None:
    table = CEL_PGSQL_TABLE.format(table="cel")
    make_table(url, ddl=table.replace("id bigserial PRIMARY KEY", "id bigint"))
    assert "column id is int8 without a default" in error_of(url)
    make_table(url, ddl=CEL_PGSQL_TABLE.format(table="c2").replace("eventtype text", "eventtype integer"))
    assert "eventtype is int4: cel_pgsql then writes event numbers" in error_of(url, table="c2")
    make_table(url, ddl=CEL_PGSQL_TABLE.format(table="c3").replace("linkedid text,", ""))
    assert "table has no column linkedid" in error_of(url, table="c3")
    make_table(url, ddl=CEL_PGSQL_TABLE.format(table="c4").replace("eventtime timestamp", "eventtime date"))
    assert "eventtime is date" in error_of(url, table="c4")


def test_a_bad_table_name_or_a_password_in_the_url_is_refused(url: str) -> None:
    for name in ('cel"; DROP TABLE cel; --', "cel x", "", "1cel", "x" * 64):
        with pytest.raises(CelSourceError, match="is not a table name"):
            CelPgsql(pg_config(table=name), url)
    with pytest.raises(CelSourceError, match=r"postgresql://u:\*\*\*@h/db.*does not belong") as caught:
        CelPgsql(pg_config(), "postgresql://u:hunter22@h/db")
    assert "hunter22" not in str(caught.value)


def test_an_unreachable_server_is_a_clear_error_with_the_url_masked() -> None:
    message = error_of("postgresql://callbuddy@127.0.0.1:1/asterisk")
    assert message.startswith("postgresql://callbuddy@127.0.0.1:1/asterisk: cannot connect (")


def test_a_connection_lost_mid_way_is_an_error_then_read_again(url: str) -> None:
    make_table(url)
    rows = recorded_rows(trace("01-").path / "master.db")
    write_rows(url, rows)
    with opened(url) as source:
        assert source.last_id() == len(rows)
        with psycopg.connect(url, autocommit=True) as admin:  # the server drops the reader's connection
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'callbuddy-cel'"
            )
        with pytest.raises(CelSourceError, match="cannot read"):
            source.rows(0, len(rows))
        assert len(source.rows(0, len(rows))) > 0  # connected again


def test_the_reader_never_writes_asterisks_table(url: str) -> None:
    make_table(url)
    with opened(url) as source:
        source.last_id()
        assert source._conn is not None
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            source._conn.execute("DELETE FROM cel")


def test_a_renamed_table_fails_the_sweep_until_it_is_back(url: str) -> None:
    make_table(url)
    write_rows(url, recorded_rows(trace("01-").path / "master.db"))
    with opened(url) as source, psycopg.connect(url, autocommit=True) as admin:
        last = source.last_id()
        admin.execute("ALTER TABLE cel RENAME TO cel_old")
        with pytest.raises(CelSourceError, match="cannot read"):
            source.rows(0, last)
        with pytest.raises(CelSourceError, match="no such table"):
            source.rows(0, last)
        admin.execute("ALTER TABLE cel_old RENAME TO cel")
        assert len(source.rows(0, last)) > 0


# ---- choosing the source ------------------------------------------------------------------------------------------


def test_open_cel_source_picks_the_configured_one(tmp_path: Path) -> None:
    sqlite = open_cel_source(CelConfig(sqlite=tmp_path / "master.db"), "postgresql://u@h/store")
    assert isinstance(sqlite, CelSqlite)
    own = open_cel_source(pg_config(url="postgresql://asterisk@pbx1/cel"), "postgresql://u@h/store")
    assert isinstance(own, CelPgsql) and own.url == "postgresql://asterisk@pbx1/cel"
    shared = open_cel_source(pg_config(table="cel_pbx2"), "postgresql://u@h/store")
    assert isinstance(shared, CelPgsql) and (shared.url, shared.table) == ("postgresql://u@h/store", "cel_pbx2")
    # progress is kept per source: the same table name on two servers is two sources
    assert (
        own.name
        == "pgsql:postgresql://asterisk@pbx1/cel#cel"
        != open_cel_source(pg_config(), "postgresql://u@h/s").name
    )
    with pytest.raises(CelSourceError, match="give the `pgsql:` section a url"):
        open_cel_source(pg_config(), None)
    with pytest.raises(ValueError, match="no CEL database"):
        open_cel_source(CelConfig(), None)


# ---- the configuration: `cel: pgsql:` -----------------------------------------------------------------------------


def test_the_pgsql_section_is_read(write: Write) -> None:
    config = load_config(write("cel:\n  pgsql: {table: cel_pbx1, url: 'postgresql://cb@db:5433/pbx', timezone: UTC}\n"))
    assert config.cel == CelConfig(pgsql=CelPgsqlConfig("cel_pbx1", "postgresql://cb@db:5433/pbx"), timezone="UTC")
    assert config.cel.enabled and config.cel.sqlite is None
    on_pg = "storage: {url: 'postgresql://cb@db/pbx'}\n"
    defaults = load_config(write(f"cel:\n  pgsql: {{}}\n  poll_seconds: 2\n{on_pg}", "b.yaml")).cel
    assert defaults.pgsql == CelPgsqlConfig("cel", None) and defaults.poll_s == 2 and defaults.timezone is None
    assert load_config(write(f"cel:\n  pgsql:\n{on_pg}", "c.yaml")).cel.pgsql == CelPgsqlConfig()
    assert load_config(write("cel: {sqlite: m.db}\n", "d.yaml")).cel.pgsql is None


def test_pgsql_section_problems_name_file_line_and_key(write: Write) -> None:
    path = write(
        "cel:\n"
        "  sqlite: master.db\n"
        "  timezone: UTC\n"
        "  pgsql:\n"
        "    table: 'cel; DROP TABLE x'\n"
        "    url: 'postgresql://cb:hunter22@db/pbx'\n"
        "    timezone: Mars/Base\n"
        "    user: asterisk\n"
    )
    problems = problems_of(path)
    assert problems == [
        f"{path}:2: cel.sqlite: give cel.sqlite or cel.pgsql, not both",
        f"{path}:3: cel.timezone: give cel.timezone or cel.pgsql.timezone, not both",
        f"{path}:5: cel.pgsql.table: 'cel; DROP TABLE x' is not a table name (letters, digits, _)",
        f"{path}:6: cel.pgsql.url: 'postgresql://cb:***@db/pbx': the password does not belong in the configuration "
        "file; set it in the environment (CALLBUDDY_DB_PASSWORD or PGPASSWORD)",
        f"{path}:7: cel.pgsql.timezone: 'Mars/Base' is not a known time zone (expected e.g. America/New_York or "
        "Europe/London)",
        f"{path}:8: cel.pgsql.user: unknown key (expected one of: table, url, timezone)",
    ]
    other = write("cel:\n  pgsql:\n    url: 'sqlite:///x.db'\n    table: Cel\n  table: cel\n", "e.yaml")
    assert problems_of(other) == [
        f"{other}:3: cel.pgsql.url: cel_pgsql writes to PostgreSQL: give a postgresql://user@host/database URL",
        f"{other}:4: cel.pgsql.table: 'Cel': use lower case (cel_pgsql does)",
        f"{other}:5: cel.table: the SQLite table's name: with cel.pgsql give cel.pgsql.table",
    ]


def read_section(text: str, key: str) -> tuple[CelConfig, list[str]]:
    reader = Reader("site.yaml")
    node = yaml.compose(text)
    assert isinstance(node, yaml.MappingNode)
    return CelReader(reader).cel(node.value[0][1], Path("/etc/callbuddy"), key), reader.problems


def test_problems_name_the_key_path_the_section_was_read_at() -> None:
    text = "cel:\n  table: 'a b'\n  poll_seconds: -1\n  pgsql: {url: 'mysql://x/y'}\n  nope: 1\n"
    _, as_cel = read_section(text, "cel")
    _, as_node = read_section(text, "asterisk.nodes[2].cel")
    assert as_cel == [
        "site.yaml:2: cel.table: the SQLite table's name: with cel.pgsql give cel.pgsql.table",
        "site.yaml:2: cel.table: 'a b' is not a table name (letters, digits, _)",
        "site.yaml:3: cel.poll_seconds: -1 is not allowed (expected a positive number of seconds)",
        "site.yaml:4: cel.pgsql.url: 'mysql://x/y' is not a database URL (postgresql://user@host:port/database or "
        "sqlite:///path)",
        "site.yaml:5: cel.nope: unknown key (expected one of: sqlite, table, timezone, "
        "text_found_calls_within_minutes, poll_seconds, pgsql)",
    ]
    assert as_node == [line.replace(" cel.", " asterisk.nodes[2].cel.") for line in as_cel]
    config, _ = read_section("cel:\n  sqlite: m.db\n", "asterisk.nodes[0].cel")
    assert config.sqlite == Path("/etc/callbuddy/m.db") and config.pgsql is None


# ---- render: cel_pgsql.conf ---------------------------------------------------------------------------------------


def render_config(tmp_path: Path, cel: CelConfig, storage_url: str | None) -> dict[str, str]:
    config = Config(cel=cel, storage=StorageConfig(tmp_path / "c.sqlite3", url=storage_url),
                    pbx=PbxConfig(secret_key="k" * 32))  # fmt: skip
    return render_all(config)


def test_render_writes_cel_pgsql_conf_for_the_configured_table(tmp_path: Path) -> None:
    files = render_config(tmp_path, pg_config(table="cel_pbx1"), "postgresql://callbuddy@db.lan:5433/pbx")
    assert "cel_sqlite3_custom.conf" not in files
    text = files["cel_pgsql.conf"]
    assert settings(text)["global"] == {
        "hostname": "db.lan",
        "port": "5433",
        "dbname": "pbx",
        "user": "callbuddy",
        "table": "cel_pbx1",
        "appname": "asterisk-cel",
        "usegmtime": "yes  ; eventtime in UTC: the service reads it so (cel.timezone not set)",
    }
    assert "ALTER TABLE cel_pbx1 ADD COLUMN id bigserial PRIMARY KEY" in text and "password" not in settings(text)
    assert "#tryinclude cel_pgsql_custom.conf" in text
    local = render_config(tmp_path, pg_config(url="postgresql://asterisk@/cel", timezone="Europe/Paris"), None)
    conf = settings(local["cel_pgsql.conf"])["global"]
    assert "hostname" not in conf and conf["dbname"] == "cel" and conf["usegmtime"].startswith("no ")
    assert "cel_pgsql.conf" not in render_config(tmp_path, CelConfig(sqlite=tmp_path / "m.db"), None)


def test_a_caller_name_that_is_not_utf8_in_a_sql_ascii_database_is_read(pg_cluster: Cluster) -> None:
    """A SQL_ASCII database keeps whatever bytes Asterisk sent (a carrier's Latin-1 caller name): read with U+FFFD,
    not handed over as bytes, nor a failed sweep."""
    name = f"cel_ascii_{os.getpid()}"
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LOCALE_PROVIDER libc LOCALE 'C' TEMPLATE template0")
    url = pg_cluster.url(name)
    path = trace("01-").path / "master.db"
    make_table(url)
    write_rows(url, recorded_rows(path))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(r"UPDATE cel SET cid_name = 'Jos' || E'\351' WHERE uniqueid = linkedid")
    with opened(url) as source:
        rows = source.rows(0, source.last_id())
    (record,) = [r for r in judge(complete_calls(rows), InboundMatcher()).values() if r is not None]
    assert record.caller_name == "Jos\ufffd" and record.outcome.value == "no_answer"
