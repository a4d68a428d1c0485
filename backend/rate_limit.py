"""The per-client write rate limit: the `limits` library's fixed window on the shared Redis.

Every backend replica counts in the same Redis keys, so a client has one
budget however the ClusterIP spreads its connections. `limits` increments and
sets the expiry in one Lua script (atomic: two replicas cannot both take the
last token). It runs on the cache's own connection pool, so its calls have the
cache's timeouts and raise redis-py's errors, which the cache's breaker reads:
with Redis down, a write is let through at once (backend/cache.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

KEY_PREFIX = "guestbook:rate"


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    # Seconds until the window ends; 0 when allowed.
    retry_after: int


class WriteRateLimit:
    def __init__(self, client: aioredis.Redis, writes: int, window_seconds: int) -> None:
        # The URI only names the client library: the pool decides where it connects.
        storage = RedisStorage(
            "async+redis://",
            # limits types **options as scalars; a connection pool is one it documents.
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
            implementation="redispy",
            key_prefix=KEY_PREFIX,
        )
        self._limiter = FixedWindowRateLimiter(storage)
        self._item = RateLimitItemPerSecond(writes, window_seconds)

    async def take(self, client_id: str) -> RateDecision:
        """Count one write for `client_id`; refused once its window's budget is spent."""
        if await self._limiter.hit(self._item, client_id):
            return RateDecision(allowed=True, retry_after=0)
        # Asked only when refusing: an allowed write costs one round trip.
        reset_at, _ = await self._limiter.get_window_stats(self._item, client_id)
        # Redis reports the window's TTL in whole, rounded seconds: one more, so
        # a client that waits exactly Retry-After finds the window gone.
        return RateDecision(
            allowed=False, retry_after=max(1, math.ceil(reset_at - time.time()) + 1)
        )
