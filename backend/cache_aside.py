"""Cache-aside for the message pages: where a page is read from, and what a
write does to the cached ones.

A page is looked up in Redis first; on a miss it is read from the database
and stored, tagged with the generation it was read under, so a write that
lands in between (it bumps the generation) keeps the stale page out. The
route (backend/routes/messages.py) only turns the answer into a response.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from backend.cache import Cache, CacheUnavailable, PageLookup
from backend.data_errors import DatabaseUnavailable
from backend.database import Database
from backend.queries import MessageQueries


@dataclass(frozen=True, slots=True)
class PageRead:
    body: bytes  # the page's JSON, the bytes Redis holds
    cache: Literal["hit", "miss", "off"]
    cache_state: str


def page_body(rows: list[dict[str, Any]], limit: int) -> bytes:
    next_before = rows[-1]["id"] if len(rows) == limit else None
    return json.dumps(
        {"items": rows, "next_before_id": next_before}, ensure_ascii=False, separators=(",", ":")
    ).encode()


async def read_page(
    cache: Cache, db: Database, messages: MessageQueries, limit: int, before_id: int | None
) -> PageRead:
    """One page, newest first: from Redis if it holds it, else from the database."""
    lookup: PageLookup | None = None
    if cache.enabled:
        try:
            lookup = await cache.lookup_page(before_id, limit)
        except CacheUnavailable:
            lookup = None
        if lookup is not None:
            if lookup.body is not None:
                return PageRead(lookup.body, "hit", "up")
            # Past the newest message: the first page, under its own name.
            before_id = lookup.before_id
    try:
        rows = await db.run(messages.list_page, limit, before_id, retry=True)
    except DatabaseUnavailable:
        if lookup is not None or not cache.enabled:
            raise
        # The breaker had given up on Redis (a timeout is enough on a busy
        # node), but with the database down too a page Redis may still hold
        # is the only answer left: ask it once more before answering 503.
        with contextlib.suppress(CacheUnavailable):
            last_resort = await cache.lookup_page(before_id, limit, force=True)
            if last_resort.body is not None:
                return PageRead(last_resort.body, "hit", "up")
        raise
    body = page_body(rows, limit)
    if lookup is None:
        return PageRead(body, "off", cache.state)
    newest = rows[0]["id"] if rows else 0
    with contextlib.suppress(CacheUnavailable):
        await cache.store_page(before_id, limit, body, lookup.generation, newest)
    return PageRead(body, "miss", "up")


async def after_write(cache: Cache) -> None:
    """Drop the cached pages a new message made stale."""
    if not cache.enabled:
        return
    # A failed invalidation is remembered by this process's cache, which
    # flushes before it trusts Redis again. Only by this process: the
    # other replicas may serve the pages it could not drop, until each
    # page's own TTL (CACHE_TTL_SECONDS) ends them. Telling them would
    # need a shared place Redis is not, i.e. the database, read on every
    # cached page: the cost the cache exists to avoid.
    with contextlib.suppress(CacheUnavailable):
        await cache.invalidate_pages()
