"""PushBindingStore: each softphone's last push binding, kept across restarts (schema 12).

A softphone asleep registers again only when it is pushed, so after a restart the binding its last registration
carried is all that can wake it. The store keeps text (push/binding.binding_json writes it, binding_from_json
reads it back); what a binding means is push/'s business.
"""

from __future__ import annotations

from collections.abc import Mapping

from callbuddy_pbx.store.db import CallStore

MAX_KEPT = 10_000  # more devices than any PBX this serves has; a bound on what a start-up reads

_UPSERT = (
    "INSERT INTO push_bindings (device, binding, updated_at) VALUES (?, ?, ?)"
    " ON CONFLICT (device) DO UPDATE SET binding = excluded.binding, updated_at = excluded.updated_at"
)


class PushBindingStore:
    def __init__(self, store: CallStore) -> None:
        self._store = store

    async def load(self) -> dict[str, str]:
        """device -> its kept binding (as text)."""
        async with self._store.connection.execute(
            "SELECT device, binding FROM push_bindings ORDER BY device LIMIT ?", (MAX_KEPT,)
        ) as cursor:
            return {str(row[0]): str(row[1]) for row in await cursor.fetchall()}

    async def save(self, changes: Mapping[str, str | None], at: float) -> None:
        """In one transaction: each device's new binding, or None to forget the device's binding."""
        async with self._store.transaction() as conn:
            kept = [(device, binding, at) for device, binding in changes.items() if binding is not None]
            if kept:
                await conn.executemany(_UPSERT, kept)
            ended = [(device,) for device, binding in changes.items() if binding is None]
            if ended:
                await conn.executemany("DELETE FROM push_bindings WHERE device = ?", ended)
