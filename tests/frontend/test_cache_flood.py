"""No client can flood the page cache, or evict the rate limit with it (issue 26, item 2).

Redis runs with the memory settings the manifests ship (read from the
rendered `k8s/` and checked equal in docker-compose.yml). A client that has
spent its write allowance floods the cache through the public frontend with
the requests that used to grow it without end (`before_id` past the newest
message, each a new field) and with every distinct real page; afterwards it
is still refused, nothing was evicted, and the cache stayed within its caps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_sync
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from backend.config import BackendSettings
from backend.migrate import upgrade
from tests.conftest import BackendFactory, BackendLauncher
from tests.k8s.k8s_manifests import render
from tests.support.apps import REPO, AppProcess
from tests.support.frontends import FrontendLauncher
from tests.support.servers import Redis, redis_binary

pytestmark = [pytest.mark.mysql, pytest.mark.redis]

LIMIT = 3
PAGE = 100
SEEDED = 100
MAX_BYTES = 4 * 1024 * 1024


def _memory_args(args: list[str]) -> list[str]:
    wanted = ("--maxmemory", "--maxmemory-policy")
    picked: list[str] = []
    for i, arg in enumerate(args):
        if arg in wanted:
            picked += [arg, str(args[i + 1])]
    return picked


def shipped_redis_args() -> list[str]:
    """The Redis memory settings of the rendered manifests, the same in compose."""
    deployment = next(
        d for d in render() if d["kind"] == "Deployment" and d["metadata"]["name"] == "redis"
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    shipped = _memory_args(args)
    assert shipped == _memory_args(compose["services"]["redis"]["command"])
    assert "--maxmemory" in shipped and "--maxmemory-policy" in shipped
    return shipped


@pytest.fixture
def shipped_redis(tmp_path: Path) -> Iterator[Redis]:
    if redis_binary() is None:
        pytest.skip("Redis is not installed")
    server = Redis(tmp_path / "redis", extra_args=tuple(shipped_redis_args()))
    server.start()
    yield server
    server.stop()


def _seed(database_url: str) -> None:
    """A hundred messages of the longest text, all multi-byte: big pages, fast."""
    upgrade(BackendSettings(database_url=database_url), wait_seconds=10)
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO messages (author, text, created_at, written_by)"
                " VALUES ('Seed', :text, NOW(6), 'seed')"
            ),
            [{"text": "é" * 1000} for _ in range(SEEDED)],
        )
    engine.dispose()


def _write(client: httpx.Client) -> httpx.Response:
    return client.post(
        "/api/messages",
        json={"author": "Flood", "text": "one more"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )


def test_a_cache_flood_through_the_frontend_evicts_nothing_and_the_limit_holds(
    tmp_path: Path, mysql_url: str, shipped_redis: Redis
) -> None:
    _seed(mysql_url)
    backends, frontends = BackendLauncher(tmp_path), FrontendLauncher(tmp_path)
    try:
        backend: AppProcess = backends(
            database_url=mysql_url,
            redis_url=shipped_redis.url(),
            rate_limit_writes=str(LIMIT),
            rate_limit_window_seconds="600",
            cache_max_bytes=str(MAX_BYTES),
        )
        frontend = frontends(backend.url)
        with httpx.Client(base_url=frontend.url, timeout=30) as client:
            assert [_write(client).status_code for _ in range(LIMIT)] == [201] * LIMIT
            assert _write(client).status_code == 429
            first = client.get("/api/messages", params={"limit": PAGE}).json()
            newest = first["items"][0]["id"]
            # Past the newest id, each used to be a new field holding the first page.
            for offset in range(1, 401):
                page = client.get(
                    "/api/messages", params={"limit": PAGE, "before_id": newest + offset}
                )
                assert page.status_code == 200
                assert page.json()["items"] == first["items"]
            # And every real page there is, each of them big.
            for before_id in range(2, newest + 1):
                assert (
                    client.get(
                        "/api/messages", params={"limit": PAGE, "before_id": before_id}
                    ).status_code
                    == 200
                )
            refused = _write(client)
        assert refused.status_code == 429, "the flood freed the client's allowance"
        redis = redis_sync.Redis.from_url(shipped_redis.url())
        assert int(redis.info("stats")["evicted_keys"]) == 0
        assert redis.keys("guestbook:rate*"), "the rate limit's counter is gone"
        stored = int(redis.hget("guestbook:pages", "bytes") or 0)
        assert 0 < stored <= MAX_BYTES
        assert redis.hlen("guestbook:pages") <= 512 + 2
        assert redis.hexists("guestbook:pages", f"0:{PAGE}")
        assert not redis.hexists("guestbook:pages", f"{newest + 1}:{PAGE}")
    finally:
        frontends.stop_all()
        backends.stop_all()


def test_each_cached_page_expires_on_its_own(
    backend_factory: BackendFactory, mysql_url: str, fresh_redis: Redis
) -> None:
    """The hash's own expiry is renewed by every store: each page still ends on time."""
    _seed(mysql_url)
    app = backend_factory(
        database_url=mysql_url, redis_url=fresh_redis.url(), cache_ttl_seconds="2"
    )
    with httpx.Client(base_url=app.url, timeout=10) as client:
        newest = client.get("/api/messages").json()["items"][0]["id"]
        assert client.get("/api/messages").json()["cache"] == "hit"
        time.sleep(1.2)
        older = {"before_id": newest}
        assert client.get("/api/messages", params=older).json()["cache"] == "miss"
        time.sleep(1.2)  # the first page is 2.4 s old, the older one 1.2 s
        assert client.get("/api/messages").json()["cache"] == "miss"
        assert client.get("/api/messages", params=older).json()["cache"] == "hit"
