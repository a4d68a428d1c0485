"""Redis as the shared cache, counter and rate limiter, against a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.backend.pages import write_and_cache
from tests.conftest import BackendFactory
from tests.support.servers import Redis
from tests.support.waiting import wait_until


@pytest.fixture
def cached(backend_factory: BackendFactory, fresh_redis: Redis) -> Iterator[httpx.Client]:
    app = backend_factory(redis_url=fresh_redis.url())
    with httpx.Client(base_url=app.url, timeout=10) as client:
        yield client


def test_second_read_is_a_hit_and_a_write_invalidates(cached: httpx.Client) -> None:
    cached.post("/api/messages", json={"author": "a", "text": "one"})
    first = cached.get("/api/messages").json()
    second = cached.get("/api/messages")
    assert first["cache"] == "miss"
    assert second.json()["cache"] == "hit"
    assert "db;dur" not in second.headers["server-timing"]  # the hit never touched the database
    assert second.json()["items"] == first["items"]
    created = cached.post("/api/messages", json={"author": "a", "text": "two"})
    assert created.status_code == 201
    after = cached.get("/api/messages").json()
    # No stale page after a 201: the new message is there at once.
    assert after["cache"] == "miss"
    assert after["items"][0]["id"] == created.json()["id"]


def test_pages_are_cached_separately(cached: httpx.Client) -> None:
    for i in range(5):
        cached.post("/api/messages", json={"author": "a", "text": f"m{i}"})
    full = cached.get("/api/messages").json()
    small = cached.get("/api/messages", params={"limit": 2}).json()
    assert small["cache"] == "miss"
    assert len(small["items"]) == 2
    older = cached.get("/api/messages", params={"limit": 2, "before_id": small["next_before_id"]})
    assert older.json()["cache"] == "miss"
    assert cached.get("/api/messages", params={"limit": 2}).json()["cache"] == "hit"
    assert len(full["items"]) == 5


def test_visits_are_counted_in_redis(cached: httpx.Client) -> None:
    for _ in range(4):
        cached.get("/api/messages")
    assert cached.get("/api/stats").json()["visits"] == 4


def test_rate_limit_is_shared_by_two_instances(
    backend_factory: BackendFactory, fresh_redis: Redis
) -> None:
    env = {"redis_url": fresh_redis.url(), "rate_limit_writes": "5"}
    a = backend_factory(pod_name="backend-a", **env)
    b = backend_factory(pod_name="backend-b", **env)
    visitor = {"X-Forwarded-For": "203.0.113.7"}
    statuses = []
    for i in range(8):
        target = a if i % 2 == 0 else b
        response = httpx.post(
            f"{target.url}/api/messages",
            json={"author": "spam", "text": f"{i}"},
            headers=visitor,
            timeout=10,
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            # Within the window (60 s by default), and never 0.
            assert 1 <= int(response.headers["retry-after"]) <= 61
            assert response.json()["error"] == "rate_limited"
    assert statuses == [201] * 5 + [429] * 3
    # Another visitor has a budget of its own.
    other = httpx.post(
        f"{b.url}/api/messages",
        json={"author": "ok", "text": "x"},
        headers={"X-Forwarded-For": "198.51.100.9"},
        timeout=10,
    )
    assert other.status_code == 201
    # Only the last X-Forwarded-For entry (the one the frontend appended) counts.
    forged = httpx.post(
        f"{a.url}/api/messages",
        json={"author": "spam", "text": "forged"},
        headers={"X-Forwarded-For": "10.9.9.9, 203.0.113.7"},
        timeout=10,
    )
    assert forged.status_code == 429


def test_rate_limit_holds_under_concurrent_writes(
    backend_factory: BackendFactory, fresh_redis: Redis, mysql_url: str
) -> None:
    # 30 writes at once from one client through two replicas, budget 10: the
    # count and its expiry are one atomic step in Redis, so exactly 10 pass.
    env = {"redis_url": fresh_redis.url(), "rate_limit_writes": "10"}
    pods = [backend_factory(mysql_url, pod_name=f"backend-{x}", **env) for x in "ab"]
    visitor = {"X-Forwarded-For": "203.0.113.8"}

    def write(i: int) -> httpx.Response:
        return httpx.post(
            f"{pods[i % 2].url}/api/messages",
            json={"author": "burst", "text": f"{i}"},
            headers=visitor,
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=15) as pool:
        statuses = sorted(r.status_code for r in pool.map(write, range(30)))
    assert statuses == [201] * 10 + [429] * 20


def test_redis_stopped_then_restarted(backend_factory: BackendFactory, fresh_redis: Redis) -> None:
    app = backend_factory(redis_url=fresh_redis.url())
    client = httpx.Client(base_url=app.url, timeout=10)
    try:
        write_and_cache(client, "before")

        fresh_redis.stop()
        down_at = time.monotonic()
        # Served from the database, marked degraded, never an error.
        pages = [client.get("/api/messages") for _ in range(30)]
        assert all(p.status_code == 200 for p in pages)
        assert pages[-1].json()["cache"] == "off"
        assert pages[-1].json()["cache_state"] == "down"
        assert pages[-1].json()["items"][0]["text"] == "before"
        # The breaker skips Redis between retries: most requests do not try it.
        tried = sum("cache;dur" in p.headers["server-timing"] for p in pages)
        assert tried <= 10, f"{tried} of 30 requests waited on a dead Redis"
        info = client.get("/api/info").json()
        assert info["cache"] == "down"
        assert info["status"] == "degraded"
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["degraded"] is True
        assert ready.json()["dependencies"]["cache"] == "down"
        written = client.post("/api/messages", json={"author": "a", "text": "during"})
        assert written.status_code == 201
        assert client.get("/api/stats").json()["visits"] is None
        print(f"redis down for {time.monotonic() - down_at:.2f} s of traffic")

        fresh_redis.start()
        restarted_at = time.monotonic()
        recovered = wait_until(lambda: client.get("/api/info").json()["cache"] == "up", timeout=15)
        print(f"redis recovery noticed {recovered:.2f} s after restart")
        client.get("/api/messages")
        page = client.get("/api/messages").json()
        assert page["cache"] == "hit"
        # The write made while Redis was away is visible: nothing stale came back.
        assert page["items"][0]["text"] == "during"
        assert time.monotonic() - restarted_at < 15
    finally:
        client.close()
        if fresh_redis.proc is None:
            fresh_redis.start()


def test_unreachable_redis_at_start_still_serves(backend_factory: BackendFactory) -> None:
    from tests.support.ports import free_port

    app = backend_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    response = httpx.get(f"{app.url}/api/messages", timeout=10)
    assert response.status_code == 200
    assert response.json()["cache"] == "off"
    assert httpx.get(f"{app.url}/api/info", timeout=10).json()["status"] == "degraded"


def test_hung_redis_keeps_its_data_but_no_stale_page_comes_back(
    backend_factory: BackendFactory, fresh_redis: Redis
) -> None:
    """A Redis that stops answering (SIGSTOP: a partition, not a restart).

    It keeps the old pages, so a write that could not invalidate them must be
    made good before the cache is trusted again.
    """
    app = backend_factory(redis_url=fresh_redis.url())
    client = httpx.Client(base_url=app.url, timeout=10)
    try:
        write_and_cache(client, "old")

        with fresh_redis.hung():
            pages = [client.get("/api/messages") for _ in range(20)]
            assert all(p.status_code == 200 for p in pages)
            # Each try against a hung Redis costs its full timeout; the breaker
            # must keep most requests from trying at all.
            tried = sum("cache;dur" in p.headers["server-timing"] for p in pages)
            assert tried <= 5, f"{tried} of 20 reads waited on a hung Redis"
            written = client.post("/api/messages", json={"author": "a", "text": "new"})
            assert written.status_code == 201

        wait_until(lambda: client.get("/api/info").json()["cache"] == "up", timeout=15)
        page = client.get("/api/messages").json()
        assert page["items"][0]["text"] == "new", page
    finally:
        client.close()


def test_a_redis_timeout_keeps_the_cached_pages(
    backend_factory: BackendFactory, fresh_redis: Redis
) -> None:
    """Redis hung for a moment with no write in between: once it answers
    again its pages are still good, so the read that finds it back is a hit."""
    # A slow dependency watch, so the read below is what finds Redis back.
    app = backend_factory(redis_url=fresh_redis.url(), health_interval_seconds="60")
    client = httpx.Client(base_url=app.url, timeout=10)
    try:
        write_and_cache(client, "kept")

        with fresh_redis.hung():
            hung = client.get("/api/messages").json()
            assert (hung["cache"], hung["cache_state"]) == ("off", "down")

        # Reads skip Redis until the breaker's back-off has passed; the first
        # one that tries it again is the one that must find the page.
        pages: list[dict[str, Any]] = []

        def redis_tried() -> bool:
            pages.append(client.get("/api/messages").json())
            return pages[-1]["cache"] != "off"

        wait_until(redis_tried)
        assert pages[-1]["cache"] == "hit", pages[-1]
        assert pages[-1]["items"][0]["text"] == "kept"
    finally:
        client.close()
