"""backend/cache_aside.py on a real Redis: a miss reads the database and
stores the page, the next read is a hit, a write drops it, and without Redis
the page comes from the database marked "off"."""

from __future__ import annotations

from pathlib import Path

import anyio

from backend.cache import Cache
from backend.cache_aside import after_write, read_page
from backend.config import BackendSettings
from backend.database import Database
from backend.idempotency import IdempotencyStore
from backend.migrate import upgrade
from backend.queries import MessageQueries
from tests.support.servers import Redis


def _reads(settings: BackendSettings) -> list[tuple[str, str, int]]:
    """(cache, cache_state, first id) of: a read, a read, a write, a read."""

    async def scenario() -> list[tuple[str, str, int]]:
        db = Database(settings, on_error=lambda: None)
        cache = Cache(settings, on_result=lambda _result: None)
        messages = MessageQueries(db)
        keys = IdempotencyStore(db, messages)
        seen: list[tuple[str, str, int]] = []

        async def read() -> None:
            page = await read_page(cache, db, messages, 20, None)
            first = page.body.split(b'"id":', 1)[1].split(b",", 1)[0]
            seen.append((page.cache, page.cache_state, int(first)))

        try:
            await db.run(keys.create, "ann", "one", "pod", None)
            await read()
            await read()
            await db.run(keys.create, "ann", "two", "pod", None)
            await after_write(cache)
            await read()
        finally:
            await cache.close()
            db.dispose()
        return seen

    upgrade(settings, wait_seconds=10)
    return anyio.run(scenario)


def test_miss_then_hit_then_a_write_drops_the_page(tmp_path: Path, fresh_redis: Redis) -> None:
    settings = BackendSettings(
        database_url=f"sqlite:///{tmp_path / 'guestbook.db'}", redis_url=fresh_redis.url()
    )
    assert _reads(settings) == [("miss", "up", 1), ("hit", "up", 1), ("miss", "up", 2)]


def test_without_redis_every_page_is_read_from_the_database(tmp_path: Path) -> None:
    settings = BackendSettings(database_url=f"sqlite:///{tmp_path / 'guestbook.db'}")
    assert _reads(settings) == [
        ("off", "disabled", 1),
        ("off", "disabled", 1),
        ("off", "disabled", 2),
    ]
