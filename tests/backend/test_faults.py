"""MariaDB stopped and restarted under the running backend, with Redis in front.

These tests stop the session's own MariaDB; each restarts it before it ends.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.backend.pages import write_and_cache
from tests.conftest import BackendFactory
from tests.support.servers import MariaDB, Redis
from tests.support.waiting import wait_until


@pytest.fixture
def restart_mariadb(mariadb: MariaDB) -> Iterator[MariaDB]:
    yield mariadb
    if mariadb.proc is None:
        mariadb.start()


def _rows(url: str) -> dict[int, str]:
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, text FROM messages")).all()
    engine.dispose()
    return {int(r.id): r.text for r in rows}


def test_database_down_then_back(
    backend_factory: BackendFactory, mysql_url: str, fresh_redis: Redis, restart_mariadb: MariaDB
) -> None:
    app = backend_factory(database_url=mysql_url, redis_url=fresh_redis.url())
    client = httpx.Client(base_url=app.url, timeout=15)
    try:
        client.post("/api/messages", json={"author": "a", "text": "kept"})
        client.get("/api/messages")  # warm the cache

        restart_mariadb.stop()
        write = client.post("/api/messages", json={"author": "a", "text": "lost?"})
        assert write.status_code == 503
        assert write.json() == {
            "error": "dependency_unavailable",
            "message": "the database is unavailable; try again shortly",
            "dependency": "database",
        }
        assert write.headers["retry-after"]
        cached = client.get("/api/messages")
        assert cached.status_code == 200
        assert cached.json()["cache"] == "hit"
        assert cached.json()["items"][0]["text"] == "kept"
        uncached = client.get("/api/messages", params={"limit": 7})
        assert uncached.status_code == 503
        assert client.get("/api/messages/1").status_code == 503
        assert client.get("/api/stats").status_code == 503
        # A shared dependency going down never makes the pod unready.
        wait_until(lambda: client.get("/readyz").json()["dependencies"]["database"] == "down")
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["degraded"] is True
        assert client.get("/api/info").json()["status"] == "degraded"
        metrics = httpx.get(app.metrics_url).text
        assert "db_errors_total 0.0" not in metrics

        restart_mariadb.start()
        back_at = time.monotonic()
        recovery = wait_until(
            lambda: (
                client.post("/api/messages", json={"author": "a", "text": "after"}).status_code
                == 201
            )
        )
        print(f"\nwrites recovered {recovery:.2f} s after MariaDB came back")
        assert time.monotonic() - back_at < 20
        assert client.get("/readyz").json()["dependencies"]["database"] == "up"
        texts = [m["text"] for m in client.get("/api/messages").json()["items"]]
        assert texts[0] == "after"
        assert "lost?" not in texts
    finally:
        client.close()


def test_cached_pages_outlive_the_breaker_while_the_database_is_down(
    backend_factory: BackendFactory, mysql_url: str, fresh_redis: Redis, restart_mariadb: MariaDB
) -> None:
    """MariaDB down, and the Redis breaker open after a hang: a page that
    Redis still holds is served anyway, rather than a 503 for both."""
    # A slow dependency watch, so only requests move the breaker here.
    app = backend_factory(
        database_url=mysql_url, redis_url=fresh_redis.url(), health_interval_seconds="60"
    )
    client = httpx.Client(base_url=app.url, timeout=15)
    try:
        write_and_cache(client, "kept")

        restart_mariadb.stop()
        with fresh_redis.hung():
            # Both hung or gone: nothing can answer, and each failed try at Redis
            # doubles the breaker's back-off (to 5 s at most).
            hung = [client.get("/api/messages").status_code for _ in range(4)]
            assert hung == [503] * 4, hung
        assert client.get("/api/info").json()["cache"] == "down"  # the breaker is open

        page = client.get("/api/messages")
        assert page.status_code == 200, page.text
        assert page.json()["cache"] == "hit"
        assert page.json()["items"][0]["text"] == "kept"
        # A page Redis never held still needs the database.
        assert client.get("/api/messages", params={"limit": 3}).status_code == 503
    finally:
        client.close()


def test_no_write_is_lost_or_doubled_across_a_restart(
    backend_factory: BackendFactory, mysql_url: str, restart_mariadb: MariaDB
) -> None:
    """Writers keep going while MariaDB stops and starts; each retries with its
    Idempotency-Key until it gets a 201. Afterwards the table holds exactly
    one row per key, and every 201 the writers saw is a row."""
    app = backend_factory(database_url=mysql_url)
    acknowledged: dict[str, int] = {}
    failures: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + 60

    def writer(worker: int) -> None:
        with httpx.Client(base_url=app.url, timeout=15) as client:
            n = 0
            while not stop.is_set() and time.monotonic() < deadline:
                key = f"w{worker}-{n}-{uuid.uuid4().hex[:8]}"
                body = {"author": f"writer{worker}", "text": key}
                while time.monotonic() < deadline:
                    try:
                        response = client.post(
                            "/api/messages", json=body, headers={"Idempotency-Key": key}
                        )
                    except httpx.TransportError:
                        continue
                    if response.status_code == 201:
                        with lock:
                            acknowledged[key] = response.json()["id"]
                        break
                    with lock:
                        failures.append(response.status_code)
                    time.sleep(0.05)
                n += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    restart_mariadb.stop()
    time.sleep(1.0)
    restart_mariadb.start()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(timeout=90)

    rows = _rows(mysql_url)
    assert acknowledged, "no write succeeded at all"
    assert set(failures) <= {503}, f"unexpected statuses {set(failures)}"
    assert failures, "the outage was not seen by any writer"
    for key, message_id in acknowledged.items():
        assert rows.get(message_id) == key
    assert sorted(rows.values()) == sorted(acknowledged), "a row without a 201, or a double"
    print(f"\n{len(acknowledged)} writes acknowledged, {len(failures)} 503s during the outage")
