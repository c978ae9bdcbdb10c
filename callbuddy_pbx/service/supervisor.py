"""The service's long-running tasks, each kept alive: a task that raises is logged with its name and started again
after a back-off (0.5 s doubling to 30 s, back to 0.5 s once it has run for a minute); a task that returns has
finished its work (it was stopped) and is not started again. While a task waits to be started again it is reported
down (`down()`), so /healthz says which part is not working instead of the service failing silently. A task that
runs but whose work fails (forwarded replies whose server is down) says so with `report`, shown the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_S = 60.0  # a task that ran this long before failing starts its back-off afresh
MAX_ERROR_CHARS = 200


class Supervisor:
    def __init__(self, *, min_backoff_s: float = MIN_BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S) -> None:
        self._min_backoff_s, self._max_backoff_s = min_backoff_s, max_backoff_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._down: dict[str, str] = {}  # name -> why, while waiting to be started again
        self._trouble: dict[str, str] = {}  # name -> why its work fails, as the running task reports it
        self.restarts: Counter[str] = Counter()

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` as the task `name`, and again whenever it stops, until `stop()`."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        self._tasks[name] = asyncio.create_task(self._keep(name, run), name=name)

    def running(self, name: str) -> bool:
        return name in self._tasks

    def down(self) -> dict[str, str]:
        """The tasks not running now (waiting to be started again) or not getting their work done, with the reason."""
        return {**self._trouble, **self._down}

    def report(self, name: str, trouble: str | None) -> None:
        """A running task's word that its work is failing (`trouble`: why, bounded), or works again (None)."""
        if trouble is None or name not in self._tasks:
            self._trouble.pop(name, None)
        else:
            self._trouble[name] = trouble[:MAX_ERROR_CHARS]

    async def stop(self, *names: str) -> None:
        """Cancel the named tasks (every task when none is named) and wait for them to end."""
        chosen = [name for name in self._tasks if not names or name in names]
        tasks = [self._tasks.pop(name) for name in chosen]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for name in chosen:
            self._down.pop(name, None)
            self._trouble.pop(name, None)

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        backoff = self._min_backoff_s
        while True:
            started = time.monotonic()
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason, error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], exc
            if time.monotonic() - started >= STABLE_S:
                backoff = self._min_backoff_s
            log.error("task %s failed (%s); starting it again in %.1f s", name, reason, backoff, exc_info=error)
            self._down[name] = reason
            self.restarts[name] += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)
            self._down.pop(name, None)
