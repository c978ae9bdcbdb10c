"""Token buckets per (gateway, sender): a 10DLC number may allow about one segment per second."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate_per_s: float  # 0 = unlimited
    capacity: float = 1.0
    tokens: float = 1.0
    updated: float = 0.0

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
            self.updated = now

    def try_take(self, now: float) -> bool:
        if self.rate_per_s <= 0:
            return True
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_s(self, now: float) -> float:
        """How long until a token is there (0 when one is)."""
        if self.rate_per_s <= 0:
            return 0.0
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate_per_s)


class SenderLimits:
    def __init__(self, rates: dict[str, float]) -> None:
        self._rates = rates  # gateway name -> messages per second per sender
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def _bucket(self, gateway: str, sender: str, now: float) -> TokenBucket:
        key = (gateway, sender)
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = self._rates.get(gateway, 0.0)
            bucket = self._buckets[key] = TokenBucket(rate, capacity=max(1.0, rate), tokens=1.0, updated=now)
        return bucket

    def try_take(self, gateway: str, sender: str, now: float) -> bool:
        return self._bucket(gateway, sender, now).try_take(now)

    def wait_s(self, gateway: str, sender: str, now: float) -> float:
        return self._bucket(gateway, sender, now).wait_s(now)
