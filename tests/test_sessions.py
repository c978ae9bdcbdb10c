"""Dashboard sessions in SQLite (web/sessions.py): only a hash of the cookie is stored; sessions expire."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.sessions import SessionStore
from tests.conftest import OpenStore

T0 = 1_700_000_000.0
HOUR = 3600.0


@pytest.fixture
async def store(open_store: OpenStore) -> AsyncIterator[CallStore]:
    async with await open_store() as store:
        yield store


async def rows(store: CallStore) -> list[tuple[str, ...]]:
    async with store.connection.execute("SELECT * FROM web_sessions ORDER BY created_at") as cursor:
        return [tuple(str(value) for value in row) for row in await cursor.fetchall()]


async def test_a_session_is_found_by_its_cookie(store: CallStore) -> None:
    sessions = SessionStore(store, lifetime_s=HOUR)
    cookie, csrf = await sessions.create("ann", T0)
    assert len(cookie) >= 43 and len(csrf) >= 43 and cookie != csrf
    session = await sessions.lookup(cookie, T0 + 10)
    assert session is not None
    assert (session.user_name, session.csrf_token, session.created_at, session.expires_at) == (
        "ann",
        csrf,
        T0,
        T0 + HOUR,
    )
    assert csrf not in repr(session)


async def test_only_a_hash_of_the_cookie_is_stored(store: CallStore) -> None:
    cookie, _ = await SessionStore(store).create("ann", T0)
    (row,) = await rows(store)
    assert cookie not in "".join(row)
    assert row[0] == hashlib.sha256(cookie.encode()).hexdigest()


async def test_every_session_is_new(store: CallStore) -> None:
    sessions = SessionStore(store)
    first = await sessions.create("ann", T0)
    second = await sessions.create("ann", T0)
    assert first[0] != second[0] and first[1] != second[1]


async def test_an_expired_session_is_gone(store: CallStore) -> None:
    sessions = SessionStore(store, lifetime_s=HOUR)
    cookie, _ = await sessions.create("ann", T0)
    assert await sessions.lookup(cookie, T0 + HOUR - 1) is not None
    assert await sessions.lookup(cookie, T0 + HOUR) is None
    assert await rows(store) == []


@pytest.mark.parametrize("cookie", ["", "short", "x" * 500, "a" * 43 + "!", "../../etc/passwd" * 3])
async def test_cookies_not_made_here_find_nothing(store: CallStore, cookie: str) -> None:
    sessions = SessionStore(store)
    await sessions.create("ann", T0)
    assert await sessions.lookup(cookie, T0) is None
    await sessions.delete(cookie)
    assert len(await rows(store)) == 1


async def test_delete_and_delete_user(store: CallStore) -> None:
    sessions = SessionStore(store)
    ann1, _ = await sessions.create("ann", T0)
    ann2, _ = await sessions.create("ann", T0)
    bob, _ = await sessions.create("bob", T0)
    await sessions.delete(ann1)
    assert await sessions.lookup(ann1, T0) is None
    assert await sessions.lookup(ann2, T0) is not None
    assert await sessions.delete_user("ann") == 1
    assert await sessions.lookup(ann2, T0) is None
    assert await sessions.lookup(bob, T0) is not None


async def test_purge_and_login_clear_expired_sessions(store: CallStore) -> None:
    sessions = SessionStore(store, lifetime_s=HOUR)
    await sessions.create("ann", T0)
    await sessions.create("bob", T0 + HOUR / 2)
    assert await sessions.purge(T0 + HOUR) == 1
    assert [row[1] for row in await rows(store)] == ["bob"]
    await sessions.create("carl", T0 + 2 * HOUR)  # a login also clears what expired meanwhile
    assert [row[1] for row in await rows(store)] == ["carl"]


def test_a_lifetime_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SessionStore(None, lifetime_s=0)  # type: ignore[arg-type]
