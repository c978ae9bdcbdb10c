"""`callbuddy-pbx messages`: what a business owner sees of the texts."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from callbuddy_pbx.cli import main
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore, NewText, SendUpdate


def fill(path: Path) -> None:
    async def go() -> None:
        async with await CallStore.open(path) as store:
            messages = MessageStore(store)
            now = time.time()
            await messages.enqueue(
                [
                    NewText("a", "missed_call", "+15557654321", "+15550001000", "smsc", "Hi from Glow\x1b[31m", now),
                    NewText("b", "missed_call", "+15553334444", "+15550001000", "smsc", "Hi again", now),
                ],
                now,
            )
            rows = {r.key: r for r in await messages.list_messages()}
            await messages.claim([rows["a"].id, rows["b"].id], now)
            await messages.apply_send_results(
                [
                    SendUpdate(rows["a"].id, "sent", 1, now, "m-1", None, now),
                    SendUpdate(rows["b"].id, "failed", 1, now, None, "ESME_RINVDSTADR", now),
                ]
            )

    asyncio.run(go())


def test_messages_table_json_and_state_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite3"
    fill(db)
    assert main(["messages", "--db", str(db)]) == 0
    table = capsys.readouterr().out
    assert "+15557654321" in table and "ESME_RINVDSTADR" in table
    assert "\x1b" not in table  # text from the database is escaped for the terminal
    assert main(["messages", "--db", str(db), "--json", "--state", "failed"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["key"], row["state"], row["error"], row["to"]) == ("b", "failed", "ESME_RINVDSTADR", "+15553334444")


def test_messages_on_a_missing_database_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["messages", "--db", str(tmp_path / "none.sqlite3")]) == 1
    assert "none.sqlite3" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite3").exists()
