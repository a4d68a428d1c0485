"""Idempotency keys expire after IDEMPOTENCY_KEY_RETENTION_SECONDS: a bounded
clean-up deletes at most a batch per pass, and a write never waits for it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from backend.idempotency import delete_expired_keys
from tests.backend.conftest import empty_database_url, idempotency_store
from tests.conftest import BackendLauncher
from tests.support.servers import MariaDB
from tests.support.waiting import wait_until


def _key_count(database_url: str) -> int:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT COUNT(*) FROM idempotency_keys")).scalar_one())
    engine.dispose()
    return count


def _age_keys(database_url: str, keys: list[str], days: int) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        for key in keys:
            conn.execute(
                text("UPDATE idempotency_keys SET created_at = :at WHERE `key` = :key"),
                {"at": f"2020-01-{days:02d} 00:00:00", "key": key},
            )
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_pass_deletes_at_most_its_batch_of_expired_keys(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database_url = empty_database_url(kind, tmp_path, request)
    with idempotency_store(database_url) as (store, messages):
        keys = [f"k{i}" for i in range(5)]
        for key in keys:
            store.create("a", f"text {key}", "pod", key)
        _age_keys(database_url, keys[:3], days=1)
        retention = timedelta(days=1)
        assert store.expire_keys(retention, 2) == 2
        assert store.expire_keys(retention, 2) == 1
        assert store.expire_keys(retention, 2) == 0
        assert _key_count(database_url) == 2
        # A young key still replays; its message was never touched.
        replay = store.create("a", "text k4", "pod", "k4")
        assert replay.replayed
        assert messages.stats()[0] == 5


def test_an_expired_key_is_deleted_by_the_backend_and_can_be_used_again(
    tmp_path: Path,
) -> None:
    launcher = BackendLauncher(tmp_path)
    database_url = f"sqlite:///{tmp_path / 'guestbook.db'}"
    try:
        app = launcher(
            database_url=database_url,
            idempotency_key_retention_seconds="2",
            idempotency_cleanup_interval_seconds="0.2",
        )
        key = {"Idempotency-Key": "reused-key"}
        with httpx.Client(base_url=app.url, timeout=10) as client:
            first = client.post("/api/messages", json={"author": "a", "text": "one"}, headers=key)
            assert first.status_code == 201
            wait_until(lambda: _key_count(database_url) == 0, timeout=30)
            second = client.post("/api/messages", json={"author": "a", "text": "two"}, headers=key)
            assert second.status_code == 201, second.text
            assert second.json()["id"] != first.json()["id"]
            assert "Idempotent-Replayed" not in second.headers
        assert '"deleted": 1' in app.logs() or '"deleted":1' in app.logs()
    finally:
        launcher.stop_all()


@pytest.mark.mysql
def test_a_write_goes_through_while_a_cleanup_pass_holds_its_locks(
    tmp_path: Path, mariadb: MariaDB
) -> None:
    """Every key expired is the worst case for range locks (the gap after the
    last key is where new keys go): the pass must lock only its own rows."""
    if mariadb.proc is None:
        mariadb.start()
    database_url = mariadb.url(mariadb.create_database())
    launcher = BackendLauncher(tmp_path)
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        # The backend's own clean-up stays out of the way; the test runs a pass.
        app = launcher(database_url=database_url, idempotency_cleanup_interval_seconds="3600")
        with httpx.Client(base_url=app.url, timeout=30) as client:
            keys = [uuid.uuid4().hex for _ in range(4)]
            for i, key in enumerate(keys):
                done = client.post(
                    "/api/messages",
                    json={"author": "a", "text": f"old {i}"},
                    headers={"Idempotency-Key": key},
                )
                assert done.status_code == 201
            _age_keys(database_url, keys, days=1)
            with engine.connect() as conn:
                transaction = conn.begin()
                assert delete_expired_keys(conn, datetime(2025, 1, 1), 100) == 4
                # The pass has not committed: its row locks are held.
                fresh = client.post(
                    "/api/messages",
                    json={"author": "a", "text": "new"},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                plain = client.post("/api/messages", json={"author": "a", "text": "plain"})
                transaction.rollback()
        assert plain.status_code == 201, plain.text
        assert fresh.status_code == 201, fresh.text
    finally:
        engine.dispose()
        launcher.stop_all()
