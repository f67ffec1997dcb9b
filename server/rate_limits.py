"""Token buckets for rate limits (SPEC §7): per connection, identity and IP, for REST, real-time and the cluster."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol


class TokenBucket:
    """`burst` tokens, refilled at `rate_per_s`; each request takes one."""

    __slots__ = ("burst", "rate_per_s", "tokens", "updated")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self, now: float | None = None) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one is available."""
        wait = self.wait(now)
        if not wait:
            self.tokens -= 1.0
        return wait

    def wait(self, now: float | None = None) -> float:
        """Seconds until a token is available (0.0: one is), taking none."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate_per_s


class KeyedBuckets:
    """One bucket per key (identity, IP), at most `max_keys` remembered (least recently used go)."""

    def __init__(self, per_min: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate_per_s = per_min / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token for `key`: 0.0 when allowed, else seconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate_per_s, self.burst)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def wait_for(self, key: str, now: float | None = None) -> float:
        """Seconds until `key` may take a token (0.0 when it may now), taking none."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait(now)


class RateLimiter(Protocol):
    """A keyed budget the REST middleware charges: per node (`LocalRateLimiter`) or cluster-wide (Redis)."""

    async def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 when allowed, else seconds to wait."""
        ...

    async def wait_for(self, key: str) -> float:
        """Seconds until `key` may take a token (0.0 when it may now), taking none."""
        ...

    async def take_unless_spent(self, key: str, guard: str) -> float:
        """`wait_for(guard)` when that budget is spent, else `take(key)`: both in one call (one round trip)."""
        ...

    async def close(self) -> None:
        """Release what the limiter holds (connections)."""
        ...


class LocalRateLimiter:
    """`KeyedBuckets` behind the `RateLimiter` interface: this node's memory, nothing shared."""

    def __init__(self, buckets: KeyedBuckets) -> None:
        self.buckets = buckets

    async def take(self, key: str) -> float:
        """Take a token for `key` from this node's bucket."""
        return self.buckets.take(key)

    async def wait_for(self, key: str) -> float:
        """Seconds until `key` may take a token from this node's bucket."""
        return self.buckets.wait_for(key)

    async def take_unless_spent(self, key: str, guard: str) -> float:
        """`guard`'s wait when its budget is spent, else a token taken for `key`."""
        return self.buckets.wait_for(guard) or self.buckets.take(key)

    async def close(self) -> None:
        """Nothing to release."""
