"""The frontend in front of a backend on MariaDB and Redis, as on Kubernetes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import BackendLauncher
from tests.frontend.conftest import (
    Stack,
    hop_html,
    hop_states,
    wait_for_pod_details,
    write_via_form,
)
from tests.support.frontends import FrontendLauncher
from tests.support.servers import Redis

pytestmark = [pytest.mark.mysql, pytest.mark.redis]

RATE_LIMIT = 4


@pytest.fixture(scope="module")
def cached(
    tmp_path_factory: pytest.TempPathFactory, mariadb, redis_server: Redis
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("frontend-mysql-redis")
    backends = BackendLauncher(workdir)
    frontends = FrontendLauncher(workdir)
    try:
        backend = backends(
            database_url=mariadb.url(mariadb.create_database()),
            redis_url=redis_server.url(),
            pod_name="backend-cached",
            rate_limit_writes=str(RATE_LIMIT),
        )
        frontend = frontends(backend.url, pod_name="frontend-cached")
        stack = Stack([backend], [frontend])
        yield stack
        stack.close()
    finally:
        frontends.stop_all()
        backends.stop_all()


def test_the_panel_says_redis_served_a_cached_page(cached: Stack, fresh_redis: Redis) -> None:
    client = cached.client()
    wait_for_pod_details(client)  # the pod's database kind names the data hop
    created = client.post("/api/messages", json={"author": "Cache", "text": "warm me"})
    assert created.status_code == 201

    first = client.get("/")  # the write cleared the cache: MySQL answers
    assert first.status_code == 200
    data = hop_html(first.text, "data")
    assert "MySQL (Redis missed)" in data
    assert "stored in Redis for the next reader" in data

    second = client.get("/")  # now Redis does
    assert second.status_code == 200
    assert hop_states(second.text)["data"] == "ok"
    data = hop_html(second.text, "data")
    assert "Redis (cache hit)" in data and "MySQL was not asked" in data
    route = client.get("/api/route").json()
    hop = {h["key"]: h for h in route["hops"]}["data"]
    assert hop["value"] == "Redis (cache hit)"
    assert hop["timings"][0]["label"] == "Redis" and hop["timings"][0]["ms"] is not None


def test_forwarded_for_cannot_dodge_the_rate_limit(cached: Stack, fresh_redis: Redis) -> None:
    # The backend limits by the last X-Forwarded-For entry. The frontend adds
    # the address it saw, so a browser's made-up entries change nothing.
    client = cached.client()
    for i in range(RATE_LIMIT):
        ok = client.post(
            "/api/messages",
            json={"author": "Spoofer", "text": f"n{i}"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )
        assert ok.status_code == 201, ok.text
    refused = client.post(
        "/api/messages",
        json={"author": "Spoofer", "text": "one more"},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1

    page_client = cached.client()
    text = f"too fast {uuid.uuid4().hex[:6]}"
    form = write_via_form(page_client, "Hasty", text)
    assert form.status_code == 429
    assert "Too many messages from your address" in form.text
    assert f"{text}</textarea>" in form.text
    assert "retry-after" in form.headers


def test_the_pod_hop_names_the_pod_behind_mysql(cached: Stack) -> None:
    with httpx.Client(base_url=cached.frontend.url, timeout=20) as client:
        wait_for_pod_details(client)
        route = client.get("/api/route").json()
    pod = {h["key"]: h for h in route["hops"]}["pod"]
    assert pod["value"] == "backend-cached"
    assert pod["detail"] == "127.0.0.1 on node test-node"
