"""LinkStore: the tracked booking links in texts (`{public_url}/r/<token>`) and the visits to them.

A token is written in the same transaction as the text that carries it (`MessageStore.save_calls_with_texts`
calls `insert_links`), and only when that text was new: the link in a stored text always resolves, and a replayed
call creates neither a second text nor a second token.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.engine import Connection

TOKEN_BYTES = 8  # 64 random bits: guessing one live token among millions takes ~10^12 tries
TOKEN_CHARS = 11  # len(secrets.token_urlsafe(8))
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{11}")
MAX_USER_AGENT_CHARS = 200


def new_token() -> str:
    """A short, unguessable, URL-safe token (11 characters of base64url)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class NewLink:
    """A token to store with the text whose key is `text_key` (stored only if that text is)."""

    text_key: str
    token: str
    url: str  # where the token redirects: the business's booking page
    linkedid: str | None = None
    business: str | None = None


@dataclass(frozen=True, slots=True)
class LinkToken:
    token: str
    url: str
    linkedid: str | None
    business: str | None
    created_at: float | None


async def insert_links(
    conn: Connection, links: Sequence[NewLink], stored_text_keys: Collection[str], now: float
) -> int:
    """Inside a transaction, after the texts: store the tokens of the texts just stored. Returns how many."""
    rows = [
        (link.token, link.linkedid, link.business, link.url, now) for link in links if link.text_key in stored_text_keys
    ]
    await conn.executemany(
        "INSERT INTO link_tokens (token, linkedid, business, url, created_at) VALUES (?, ?, ?, ?, ?)", rows
    )
    return len(rows)


class LinkStore:
    def __init__(self, calls: CallStore) -> None:
        self._calls = calls

    async def lookup(self, token: str) -> LinkToken | None:
        """The token's row, or None for a token that was never issued."""
        async with self._calls.connection.execute(
            "SELECT token, url, linkedid, business, created_at FROM link_tokens WHERE token = ?", (token,)
        ) as cursor:
            row = await cursor.fetchone()
        return LinkToken(row[0], row[1], row[2], row[3], row[4]) if row is not None else None

    async def record_click(self, token: str, at: float, user_agent: str | None = None) -> None:
        """One visit to a known token; the user agent is kept to MAX_USER_AGENT_CHARS characters."""
        agent = user_agent[:MAX_USER_AGENT_CHARS] if user_agent else None
        async with self._calls.transaction() as conn:
            await conn.execute(
                "INSERT INTO link_clicks (token, clicked_at, user_agent) VALUES (?, ?, ?)", (token, at, agent)
            )

    async def tokens_for_call(self, linkedid: str) -> list[LinkToken]:
        async with self._calls.connection.execute(
            "SELECT token, url, linkedid, business, created_at FROM link_tokens WHERE linkedid = ?"
            " ORDER BY created_at, token",
            (linkedid,),
        ) as cursor:
            return [LinkToken(r[0], r[1], r[2], r[3], r[4]) for r in await cursor.fetchall()]

    async def clicks_for_call(self, linkedid: str) -> int:
        """Visits to the links texted after this call."""
        return await self._count("t.linkedid = :linkedid", {"linkedid": linkedid})

    async def clicks_for_business(self, business: str, since: float | None = None) -> int:
        """Visits to the business's tracked links (clicked at or after `since`, when given)."""
        return await self._count(
            "t.business = :business AND (CAST(:since AS DOUBLE PRECISION) IS NULL OR c.clicked_at >= :since)",
            {"business": business, "since": since},
        )

    async def clicks_by_business(self, since: float | None = None) -> dict[str, int]:
        """Visits per business (clicked at or after `since`, when given); businesses without visits are left out."""
        async with self._calls.connection.execute(
            "SELECT t.business, COUNT(*) FROM link_clicks AS c JOIN link_tokens AS t ON t.token = c.token"
            " WHERE t.business IS NOT NULL AND (CAST(:since AS DOUBLE PRECISION) IS NULL OR c.clicked_at >= :since)"
            " GROUP BY t.business",
            {"since": since},
        ) as cursor:
            return {row[0]: int(row[1]) for row in await cursor.fetchall()}

    async def _count(self, where: str, params: dict[str, object]) -> int:
        async with self._calls.connection.execute(
            "SELECT COUNT(*) FROM link_clicks AS c JOIN link_tokens AS t ON t.token = c.token WHERE "  # noqa: S608
            + where,  # one of the fixed conditions above; values are bound
            params,
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0
