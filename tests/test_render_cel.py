"""`render` writes Asterisk's CEL configuration: cel.conf, and cel_sqlite3_custom.conf as the recorded PBX had it
(shared/traces/asterisk-cel/README.md), so the rows the service reads have the recorded columns."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.render import MARKER, render_all
from callbuddy_pbx.config import load_config
from tests.traces import TRACES_DIR

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "callbuddy.yaml").exists())
CEL_TRACES = TRACES_DIR.parent / "asterisk-cel"


def settings(text: str) -> dict[str, dict[str, str]]:
    """`key = value` lines by section (comments and #include lines left out)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith((";", "#")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, line
        assert key.strip() not in current, f"{key.strip()} set twice"
        current[key.strip()] = value.strip()
    return sections


def split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")]


def recorded_mapping() -> dict[str, str]:
    """The README's cel_sqlite3_custom.conf (the config that wrote the recorded master.db): column -> field."""
    readme = (CEL_TRACES / "README.md").read_text()
    block = re.search(r"; cel_sqlite3_custom\.conf\n(.*?)\n\n", readme, re.DOTALL)
    assert block is not None
    master = settings(block.group(1))["master"]
    assert master["table"] == "cel"
    columns, fields = split(master["columns"]), split(master["fields"])
    assert len(columns) == len(fields)
    return dict(zip(columns, fields, strict=True))


@pytest.fixture(params=CASES)
def files(request: pytest.FixtureRequest) -> dict[str, str]:
    return render_all(load_config(GOLDEN / request.param / "callbuddy.yaml"))


def test_cel_sqlite_config_has_linkedid_and_pairs_columns_with_fields_as_recorded(files: dict[str, str]) -> None:
    text = files["cel_sqlite3_custom.conf"]
    assert text.startswith(MARKER)  # render may overwrite it
    master = settings(text)["master"]
    assert master["table"] == "cel"
    columns, fields = split(master["columns"]), split(master["fields"])
    assert "linkedid" in columns  # the sample file Asterisk ships has none: a call's rows could not be grouped
    assert len(columns) == len(fields) == len(set(columns))
    assert dict(zip(columns, fields, strict=True)) == recorded_mapping()
    assert columns == list(recorded_mapping())  # the same order: the table Asterisk creates is the recorded one


def test_cel_sqlite_columns_are_the_recorded_tables(files: dict[str, str]) -> None:
    columns = split(settings(files["cel_sqlite3_custom.conf"])["master"]["columns"])
    with contextlib.closing(sqlite3.connect(CEL_TRACES / "03-answered" / "master.db")) as db:
        recorded = [row[1] for row in db.execute("PRAGMA table_info(cel)")]
    assert recorded == ["AcctId", *columns]


def test_cel_conf_enables_cel_for_the_ring_apps_with_unix_times(files: dict[str, str]) -> None:
    text = files["cel.conf"]
    assert text.startswith(MARKER)
    general = settings(text)["general"]
    assert general["enable"] == "yes"
    assert general["events"] == "ALL"
    apps = split(general["apps"])
    assert {"dial", "queue", "voicemail", "stasis"} <= set(apps)
    assert "dateformat" not in general  # eventtime stays unix seconds with microseconds
