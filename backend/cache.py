"""Redis: cache-aside for message pages, the visit counter and the write rate limit.

Redis is optional. With no REDIS_URL the cache is `disabled`. When Redis is
configured but failing, the cache is `down`: callers fall back to the
database, and Redis is not tried again until a back-off has passed, so a dead
Redis does not add its timeout to every request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from backend.config import BackendSettings
from backend.rate_limit import RateDecision, WriteRateLimit
from common.request_context import record_timing

log = logging.getLogger("cache")

T = TypeVar("T")

CacheState = Literal["up", "down", "disabled"]

GENERATION_KEY = "guestbook:pages:gen"
PAGES_KEY = "guestbook:pages"
VISITS_KEY = "guestbook:visits"

# The pages live in one hash, dropped whole by a write (with the generation
# bumped). Its size is bounded three ways, so no client can grow it by asking
# for pages (issue 26): a `before_id` past the newest message is the first
# page (one field, not one per id), at most `max_pages` fields and
# `max_bytes` of bodies are stored, and each field carries its own expiry
# (15 digits of Unix milliseconds in front of the body; Redis 7.0 has no per-field
# TTL). Two bookkeeping fields ride along: `newest` (the newest message id,
# learnt from a first page) and `bytes` (what the bodies add up to).

# Store a page only if no write has bumped the generation since the reader
# looked: a slow reader must not put back a page older than a newer write.
# A page before an id is stored only once the newest id is known and the id
# is not past it: otherwise it may be the first page under another name.
_STORE_IF_CURRENT = """
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return 0 end
local before = tonumber(ARGV[2])
if before > 0 then
  local newest = redis.call('HGET', KEYS[2], 'newest')
  if not newest or before > tonumber(newest) then return 0 end
end
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0 then
  if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[6]) then return 0 end
  local bytes = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
  if bytes + string.len(ARGV[4]) > tonumber(ARGV[7]) then return 0 end
end
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[5]) * 1000
redis.call('HSET', KEYS[2], ARGV[3], string.format('%015d', expires) .. ARGV[4])
redis.call('HINCRBY', KEYS[2], 'bytes', string.len(ARGV[4]))
if before == 0 then redis.call('HSET', KEYS[2], 'newest', ARGV[8]) end
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""

# Count the visit, read the generation and the page: one command, one round
# trip, and far less client-side work than a three-command pipeline. A
# `before_id` past the newest known id is looked up (and answered) as the
# first page; the id the page was looked up under comes back third.
_LOOKUP = """
redis.call('INCR', KEYS[1])
local gen = redis.call('GET', KEYS[2]) or '0'
local before = tonumber(ARGV[1])
if before > 0 then
  local newest = redis.call('HGET', KEYS[3], 'newest')
  if newest and before > tonumber(newest) then before = 0 end
end
local page = redis.call('HGET', KEYS[3], before .. ':' .. ARGV[2])
if page then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(string.sub(page, 1, 15)) <= now then page = false end
end
return {gen, page and string.sub(page, 16) or false, before}
"""

_BACKOFF_START = 0.5
_BACKOFF_MAX = 5.0


class CacheUnavailable(Exception):
    pass


@dataclass(slots=True)
class PageLookup:
    body: bytes | None
    generation: bytes
    # The before_id the page is (None: the first page), which may differ from
    # the one asked for: an id past the newest message asks for the first page.
    before_id: int | None


class Cache:
    def __init__(self, settings: BackendSettings, on_result: Callable[[str], None]) -> None:
        self.ttl = settings.cache_ttl_seconds
        self.max_pages = settings.cache_max_pages
        self.max_bytes = settings.cache_max_bytes
        self._on_result = on_result
        self._client: aioredis.Redis | None = None
        self._rate: WriteRateLimit | None = None
        self.state: CacheState = "disabled"
        if settings.redis_url:
            self._client = aioredis.Redis.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_timeout_seconds,
                socket_connect_timeout=settings.redis_timeout_seconds,
                # No hidden retries: one short attempt, then the breaker.
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                health_check_interval=0,
                max_connections=64,
            )
            self._rate = WriteRateLimit(
                self._client, settings.rate_limit_writes, settings.rate_limit_window_seconds
            )
            self.state = "up"
        self._retry_at = 0.0
        self._backoff = _BACKOFF_START
        # A write whose invalidation failed leaves possibly stale pages in a
        # Redis we could not reach: flush them before trusting Redis again.
        self._flush_needed = False
        self._store = self._client.register_script(_STORE_IF_CURRENT) if self._client else None
        self._lookup = self._client.register_script(_LOOKUP) if self._client else None

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def describe(self) -> str:
        if self._client is None:
            return "disabled"
        kwargs = self._client.connection_pool.connection_kwargs
        return f"redis://{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db', 0)}"

    def _may_try(self) -> bool:
        return self._client is not None and (
            self.state == "up" or time.monotonic() >= self._retry_at
        )

    async def _call(self, op: Callable[[aioredis.Redis], Awaitable[T]], force: bool = False) -> T:
        """Run `op` unless the breaker is open; `force` tries Redis even then."""
        if self._client is None or not (force or self._may_try()):
            raise CacheUnavailable
        started = time.perf_counter()
        try:
            recovering = self.state == "down"
            # Only a write that could not invalidate makes Redis's pages
            # suspect. Flushing on every recovery would also throw away good
            # pages after a mere timeout, and while the database is down those
            # pages are all that reads have left.
            if self._flush_needed:
                await self._flush(self._client)
            result = await op(self._client)
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            raise CacheUnavailable from exc
        finally:
            record_timing("cache", time.perf_counter() - started)
        if recovering:
            log.info("redis is back", extra={"redis": self.describe()})
        self.state = "up"
        self._backoff = _BACKOFF_START
        return result

    def _mark_down(self, exc: Exception) -> None:
        if self.state != "down":
            log.warning(
                "redis is down, serving from the database",
                extra={"redis": self.describe(), "error": type(exc).__name__},
            )
        else:
            self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
        self.state = "down"
        self._retry_at = time.monotonic() + self._backoff
        self._on_result("error")

    async def _flush(self, client: aioredis.Redis) -> None:
        # Cleared before the flush, not after it: a write whose invalidation
        # fails while this flush is in flight sets the flag again, and keeps it.
        self._flush_needed = False
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.incr(GENERATION_KEY)
                pipe.delete(PAGES_KEY)
                await pipe.execute()
        except BaseException:
            self._flush_needed = True
            raise

    async def ping(self) -> bool:
        try:
            await self._call(lambda c: c.ping())
        except CacheUnavailable:
            return False
        return True

    async def lookup_page(
        self, before_id: int | None, limit: int, force: bool = False
    ) -> PageLookup:
        """Count the visit and fetch the cached page in one round trip.

        `force` asks Redis even while the breaker is open: the caller's last
        resort when the database cannot answer either.
        """

        assert self._lookup is not None
        lookup = self._lookup

        async def op(client: aioredis.Redis) -> list[object]:
            return await lookup(  # type: ignore[no-any-return]
                keys=[VISITS_KEY, GENERATION_KEY, PAGES_KEY],
                args=[before_id or 0, limit],
                client=client,
            )

        gen, body, before = await self._call(op, force=force)
        self._on_result("hit" if body is not None else "miss")
        return PageLookup(
            body=body if isinstance(body, bytes) else None,
            generation=gen if isinstance(gen, bytes) else b"0",
            before_id=before if isinstance(before, int) and before > 0 else None,
        )

    async def store_page(
        self, before_id: int | None, limit: int, body: bytes, generation: bytes, newest: int
    ) -> None:
        """Keep a page for the next reader; `newest` is the newest id a first page showed."""
        assert self._store is not None
        store = self._store
        before = before_id or 0

        async def op(client: aioredis.Redis) -> object:
            return await store(
                keys=[GENERATION_KEY, PAGES_KEY],
                args=[
                    generation,
                    before,
                    f"{before}:{limit}",
                    body,
                    self.ttl,
                    self.max_pages,
                    self.max_bytes,
                    newest,
                ],
                client=client,
            )

        await self._call(op)

    async def invalidate_pages(self) -> None:
        try:
            await self._call(lambda c: self._flush(c))
        except CacheUnavailable:
            if self.enabled:
                self._flush_needed = True
            raise

    async def count_visit(self) -> None:
        await self._call(lambda c: c.incr(VISITS_KEY))

    async def visits(self) -> int:
        value = await self._call(lambda c: c.get(VISITS_KEY))
        return int(value) if value is not None else 0

    async def take_write_token(self, client_id: str) -> RateDecision:
        """The shared write rate limit (backend/rate_limit.py), through the breaker.

        With Redis down this raises CacheUnavailable at once, without waiting
        on Redis, and the caller lets the write through
        (tests/backend/test_cache.py, test_redis_stopped_then_restarted).
        """
        rate = self._rate
        if rate is None:
            raise CacheUnavailable
        return await self._call(lambda _client: rate.take(client_id))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
