"""`GET /api/stats` reads counters kept in the write transaction: they must equal
the rows after concurrent writers on two backend processes, after a restart,
and after the migration that backfills them from rows already there."""

from __future__ import annotations

import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from backend.config import BackendSettings
from backend.migrate import upgrade
from tests.backend.conftest import empty_database_url
from tests.conftest import BackendLauncher

WRITERS = 8
WRITES_PER_WRITER = 12


def _rows_by_pod(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT written_by, COUNT(*) FROM messages GROUP BY written_by")
        ).all()
    engine.dispose()
    return {pod: int(n) for pod, n in rows}


def _write(urls: list[str], writer: int) -> list[int]:
    """One writer's messages, spread over the backends; every third is sent twice
    with the same Idempotency-Key (a retry must not count twice)."""
    ids: list[int] = []
    clients = [httpx.Client(base_url=url, timeout=30) for url in urls]
    try:
        for i, client in zip(range(WRITES_PER_WRITER), itertools.cycle(clients), strict=False):
            body = {"author": f"w{writer}", "text": f"message {i}"}
            headers = {"Idempotency-Key": uuid.uuid4().hex} if i % 3 == 0 else {}
            first = client.post("/api/messages", json=body, headers=headers)
            assert first.status_code == 201, first.text
            ids.append(first.json()["id"])
            if headers:
                again = client.post("/api/messages", json=body, headers=headers)
                assert again.status_code == 201, again.text
                assert again.json()["id"] == first.json()["id"]
    finally:
        for client in clients:
            client.close()
    return ids


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def test_counts_are_exact_after_concurrent_writes_and_a_restart(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database_url = empty_database_url(kind, tmp_path, request)
    launcher = BackendLauncher(tmp_path)
    try:
        backends = [launcher(database_url=database_url, pod_name=pod) for pod in ("pod-a", "pod-b")]
        urls = [app.url for app in backends]
        with ThreadPoolExecutor(WRITERS) as pool:
            written = [i for ids in pool.map(_write, [urls] * WRITERS, range(WRITERS)) for i in ids]
        assert len(set(written)) == WRITERS * WRITES_PER_WRITER
        by_pod = _rows_by_pod(database_url)
        assert sum(by_pod.values()) == len(written)
        assert set(by_pod) == {"pod-a", "pod-b"}
        for url in urls:
            stats = httpx.get(f"{url}/api/stats", timeout=10).json()
            assert stats["messages"] == len(written)
            assert stats["writes_by_pod"] == by_pod

        for app in backends:
            app.stop()
        restarted = launcher(database_url=database_url, pod_name="pod-c")
        stats = httpx.get(f"{restarted.url}/api/stats", timeout=10).json()
        assert stats["messages"] == len(written)
        assert stats["writes_by_pod"] == by_pod
        created = httpx.post(
            f"{restarted.url}/api/messages", json={"author": "c", "text": "after"}, timeout=10
        )
        assert created.status_code == 201
        stats = httpx.get(f"{restarted.url}/api/stats", timeout=10).json()
        assert stats["messages"] == len(written) + 1
        assert stats["writes_by_pod"] == by_pod | {"pod-c": 1}
    finally:
        launcher.stop_all()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def test_migration_backfills_counts_from_existing_rows(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database_url = empty_database_url(kind, tmp_path, request)
    settings = BackendSettings(database_url=database_url)
    upgrade(settings, wait_seconds=10, revision="0001")
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        for pod, count in (("old-a", 3), ("old-b", 5)):
            for i in range(count):
                conn.execute(
                    text(
                        "INSERT INTO messages (author, text, created_at, written_by) "
                        "VALUES ('a', :t, '2026-01-01 00:00:00', :pod)"
                    ),
                    {"t": f"{pod} {i}", "pod": pod},
                )
    upgrade(settings, wait_seconds=10)
    with engine.connect() as conn:
        counts = dict(conn.execute(text("SELECT written_by, messages FROM message_counts")).all())
    engine.dispose()
    assert counts == {"old-a": 3, "old-b": 5}
