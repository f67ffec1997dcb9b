"""REST budgets shared by every node: a token bucket per key in Redis, one atomic Lua script per call.

A cluster's nodes would otherwise each grant a client the full `IMMUNE_REST_PER_MIN` /
`IMMUNE_REST_BURST`, so a client spread over N nodes had N times its budget. Here each key
(`sub:<subject>`, `ip:<address>`) is one Redis hash (tokens, last refill), refilled with Redis's
own clock so the nodes' clocks do not matter, and expired once it would be full again.

Redis is a dependency the REST API must not hang on: every call is bounded by `timeout_s`, and
while Redis fails the node charges its own per-node buckets instead (logged once per outage),
asking Redis again after `retry_after_s`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.rate_limits import KeyedBuckets

log = structlog.get_logger(__name__)

KEY_PREFIX = "immune:rest:"

# ARGV: refill per second, burst, mode, TTL in ms. Mode '1' takes a token from KEYS[1], '0' only
# looks at it, '2' looks at KEYS[1] and, unless that budget is spent, takes a token from KEYS[2].
# Returns the seconds to wait as a string (Redis turns Lua numbers into integers).
_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local mode = ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local function wait(key, take)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    if not take then return 0 end
    tokens = burst
    ts = now
  end
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then
    return (1 - tokens) / rate
  end
  if take then
    redis.call('HSET', key, 'tokens', tostring(tokens - 1), 'ts', tostring(now))
    redis.call('PEXPIRE', key, ARGV[4])
  end
  return 0
end
if mode == '2' then
  local spent = wait(KEYS[1], false)
  if spent > 0 then return tostring(spent) end
  return tostring(wait(KEYS[2], true))
end
return tostring(wait(KEYS[1], mode == '1'))
"""


class RedisRateLimiter:
    """Cluster-wide token buckets in Redis, with this node's buckets as the fallback while Redis fails."""

    def __init__(
        self,
        url: str,
        per_min: float,
        burst: int,
        *,
        timeout_s: float = 0.1,
        retry_after_s: float = 1.0,
        fallback: KeyedBuckets | None = None,
    ) -> None:
        self.rate_per_s = per_min / 60.0
        self.burst = burst
        # Gone once it would be full again (plus a second): an idle key costs Redis nothing.
        self.ttl_ms = int((burst / self.rate_per_s + 1.0) * 1000)
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.fallback = fallback if fallback is not None else KeyedBuckets(per_min, burst)
        # No retries inside redis-py: one bounded attempt, then the local budget answers.
        self._redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._script = self._redis.register_script(_BUCKET_LUA)
        self._failing_since: float | None = None
        self._next_try = 0.0

    @property
    def shared(self) -> bool:
        """True while the budgets come from Redis (False: this node's own, Redis failing)."""
        return self._failing_since is None

    async def take(self, key: str) -> float:
        """Take a token for `key` from the shared bucket (the local one while Redis fails)."""
        wait = await self._call([key], mode=1)
        return self.fallback.take(key) if wait is None else wait

    async def wait_for(self, key: str) -> float:
        """Seconds until `key` may take a token from the shared bucket (the local one while Redis fails)."""
        wait = await self._call([key], mode=0)
        return self.fallback.wait_for(key) if wait is None else wait

    async def take_unless_spent(self, key: str, guard: str) -> float:
        """`guard`'s wait when its shared budget is spent, else a token for `key`: one script, one round trip."""
        wait = await self._call([guard, key], mode=2)
        return (self.fallback.wait_for(guard) or self.fallback.take(key)) if wait is None else wait

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def _call(self, keys: list[str], *, mode: int) -> float | None:
        """The script's answer, or None when Redis failed (or is being left alone after a failure)."""
        now = time.monotonic()
        if self._failing_since is not None and now < self._next_try:
            return None
        args: list[Any] = [repr(self.rate_per_s), self.burst, mode, self.ttl_ms]
        try:
            async with asyncio.timeout(self.timeout_s):
                answer = await self._script(keys=[KEY_PREFIX + key for key in keys], args=args)
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            self._next_try = now + self.retry_after_s
            if self._failing_since is None:
                self._failing_since = now
                log.warning(
                    "rest_limits_local", reason=f"{type(exc).__name__}: {exc}", retry_after_s=self.retry_after_s
                )
            return None
        if self._failing_since is not None:
            log.info("rest_limits_shared", after_s=round(now - self._failing_since, 1))
            self._failing_since = None
        return float(answer)
