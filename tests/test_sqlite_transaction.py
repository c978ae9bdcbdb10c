"""A write transaction cancelled while SQLite's worker thread runs its COMMIT: the cancellation goes on up (a
supervisor stopping the service must see it), not the ROLLBACK's "no transaction is active"."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from callbuddy_pbx.store.db import CallStore


class CommitRacesCancel:
    """The connection as the event loop sees it when the cancel lands as the thread commits."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.in_transaction = True  # read before the thread's COMMIT finished

    async def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            await self._real.execute("COMMIT")
            raise asyncio.CancelledError
        if sql == "ROLLBACK":
            raise sqlite3.OperationalError("cannot rollback - no transaction is active")
        return await self._real.execute(sql, *args)


async def test_a_cancel_during_commit_stays_a_cancel(tmp_path: Path) -> None:
    store = await CallStore.open(tmp_path / "calls.sqlite3")
    backend = store._backend  # the engine under the store is what is tested
    real = backend._conn
    backend._conn = CommitRacesCancel(real)
    with pytest.raises(asyncio.CancelledError):
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO cel_progress (source, last_id, updated_at) VALUES ('x', 1, 0)")
    backend._conn = real
    assert await store.cel_progress("x") == 1  # it was committed all the same
    await store.close()
