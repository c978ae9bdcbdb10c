"""Keeps the phones' push bindings across restarts: a softphone asleep registers again only when it is pushed, so
after a restart the binding its last registration carried is all that can wake it.

The device registry reports each change of a binding (`DeviceRegistry.on_binding`, on the event path: no I/O there);
the last change per device waits here until the supervised writer stores it. While the database is away the
changes wait and are tried again, never dropped; on start the kept bindings are restored before Asterisk is asked
about its phones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.push.binding import PushBinding, binding_from_json, binding_json
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.push_bindings import PushBindingStore

log = logging.getLogger(__name__)

RETRY_MIN_S, RETRY_MAX_S = 1.0, 30.0


class BindingKeeper:
    def __init__(self, registry: DeviceRegistry, store: CallStore, *, clock: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._store = PushBindingStore(store)
        self._clock = clock
        self._pending: dict[str, str | None] = {}  # device -> its binding as text, None: ended
        self._changed = asyncio.Event()
        registry.on_binding = self.changed

    @property
    def waiting(self) -> int:
        """Changes not stored yet (health: they wait for the database)."""
        return len(self._pending)

    async def restore(self) -> int:
        """Give the registry the bindings kept before the restart; a database that cannot be read now costs the
        sleeping phones their wake-up until they register again, never the service its start."""
        try:
            kept = await self._store.load()
        except Exception:
            log.exception("push bindings: the kept ones could not be read; sleeping phones wake once they register")
            return 0
        bindings: dict[str, PushBinding] = {}
        for device, text in kept.items():
            binding = binding_from_json(text)
            if binding is None:
                log.warning("push bindings: the one kept for %s is not readable; left out", device)
            else:
                bindings[device] = binding
        restored = self._registry.restore_bindings(bindings)
        log.info("push bindings: %d restored", restored)
        return restored

    def changed(self, device: str, binding: PushBinding | None) -> None:
        self._pending[device] = None if binding is None else binding_json(binding)
        self._changed.set()

    async def run(self) -> None:
        """Store the changes as they come (supervised: started again after a failure, with what still waits)."""
        if self._pending:
            self._changed.set()
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._store_pending()

    async def flush(self) -> None:
        """Store what waits, once (on stop)."""
        if self._pending:
            await self._save(dict(self._pending))

    async def _store_pending(self) -> None:
        delay = RETRY_MIN_S
        while self._pending:
            batch = dict(self._pending)
            try:
                await self._save(batch)
            except Exception as exc:
                if not CallStore.is_outage(exc):
                    raise  # a refusal of the data: a bug, for the supervisor to report (the changes stay)
                log.warning("push bindings: the database is unavailable (%s); trying again in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _save(self, batch: dict[str, str | None]) -> None:
        await self._store.save(batch, self._clock())
        for device, binding in batch.items():
            if device in self._pending and self._pending[device] == binding:
                del self._pending[device]  # unless it changed again while being stored
