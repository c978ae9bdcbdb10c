"""Failed dashboard logins, counted per key (a client address, a user name) to slow down password guessing.

`max_failures` failures of one key within `window_s` lock that key until the oldest of them is older than the
window; then one more attempt is allowed, and so on. Only the newest `max_failures` times of a key are kept, and at
most `max_keys` keys (those that failed longest ago are forgotten first), so a flood of made-up names or addresses
costs bounded memory. Pure and in memory: the caller passes the time, a restart forgets everything.

Count an attempt as failed before checking the password (`failed`), and `cancel` it if it was right: attempts sent
all at once then cannot all pass the check while the first ones are still being verified.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable

MAX_FAILURES = 5
WINDOW_S = 15 * 60.0
MAX_KEYS = 10_000


class LoginLimiter:
    def __init__(
        self, *, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S, max_keys: int = MAX_KEYS
    ) -> None:
        if max_failures < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("max_failures, window_s and max_keys must be positive")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()  # least recently failed first

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, keys: Iterable[str], now: float) -> int:
        """Whole seconds until every key may try again (0: now)."""
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_s - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, keys: Iterable[str], now: float) -> None:
        """Count a failed attempt against each key."""
        for key in keys:
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque(maxlen=self.max_failures)
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def cancel(self, keys: Iterable[str], at: float) -> None:
        """Take back a failure counted at `at` (counted before the outcome was known, and it was a success)."""
        for key in keys:
            times = self._failures.get(key)
            if times is not None and at in times:
                times.remove(at)
                if not times:
                    del self._failures[key]

    def forget(self, key: str) -> None:
        """A success: the key's earlier failures no longer count."""
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        """The key's failures still inside the window (None, and the key dropped, when there are none)."""
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times
