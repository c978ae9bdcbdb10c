"""Dashboard login sessions in the `web_sessions` table.

The browser holds a random 32-byte id (`secrets.token_urlsafe`); the table holds only its SHA-256, so a copy of the
database (a backup, a support bundle) cannot be replayed as a login. Each session has its own CSRF token, which
every dashboard form posts back. Sessions last a fixed time from login; an expired one is deleted when seen, and
`purge` (run at each login) clears those nobody came back with.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

from callbuddy_pbx.store.db import CallStore

ID_BYTES = 32
DEFAULT_LIFETIME_S = 12 * 3600.0
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{20,128}")  # anything else was not made here: no query at all


@dataclass(frozen=True, slots=True)
class Session:
    user_name: str
    csrf_token: str = field(repr=False)
    created_at: float
    expires_at: float


def session_key(cookie_value: str) -> str:
    """What the table stores for a cookie value: its SHA-256 in hex."""
    return hashlib.sha256(cookie_value.encode("ascii")).hexdigest()


class SessionStore:
    """Sessions of `lifetime_s` seconds; reads use the shared connection, writes go through `store.transaction()`."""

    def __init__(self, store: CallStore, *, lifetime_s: float = DEFAULT_LIFETIME_S) -> None:
        if lifetime_s <= 0:
            raise ValueError(f"a session lifetime must be positive, not {lifetime_s}")
        self._store = store
        self.lifetime_s = lifetime_s

    async def create(self, user_name: str, now: float) -> tuple[str, str]:
        """A new session for `user_name`: (the cookie value, the session's CSRF token)."""
        cookie_value = secrets.token_urlsafe(ID_BYTES)
        csrf_token = secrets.token_urlsafe(ID_BYTES)
        async with self._store.transaction() as conn:
            await conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (now,))
            await conn.execute(
                "INSERT INTO web_sessions (id_hash, user_name, csrf_token, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (session_key(cookie_value), user_name, csrf_token, now, now + self.lifetime_s),
            )
        return cookie_value, csrf_token

    async def lookup(self, cookie_value: str, now: float) -> Session | None:
        """The live session of a cookie value, or None (an expired one is deleted)."""
        if not _COOKIE_VALUE.fullmatch(cookie_value):
            return None
        key = session_key(cookie_value)
        async with self._store.connection.execute(
            "SELECT user_name, csrf_token, created_at, expires_at FROM web_sessions WHERE id_hash = ?", (key,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        session = Session(str(row[0]), str(row[1]), float(row[2]), float(row[3]))
        if session.expires_at <= now:
            await self._delete_key(key)
            return None
        return session

    async def delete(self, cookie_value: str) -> None:
        """End the session of a cookie value (nothing happens for an unknown one)."""
        if _COOKIE_VALUE.fullmatch(cookie_value):
            await self._delete_key(session_key(cookie_value))

    async def delete_user(self, user_name: str) -> int:
        """End every session of a user (removed, or given a new password); how many there were."""
        return await self._delete("DELETE FROM web_sessions WHERE user_name = ?", user_name)

    async def purge(self, now: float) -> int:
        """Delete the expired sessions; how many there were."""
        return await self._delete("DELETE FROM web_sessions WHERE expires_at <= ?", now)

    async def _delete_key(self, key: str) -> None:
        await self._delete("DELETE FROM web_sessions WHERE id_hash = ?", key)

    async def _delete(self, sql: str, value: str | float) -> int:
        async with self._store.transaction() as conn:
            cursor = await conn.execute(sql, (value,))
            count = cursor.rowcount
            await cursor.close()
        return int(count)
