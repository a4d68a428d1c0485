"""Idempotency keys against the rate limit and across clients (issue 26, items 5 and 6).

On MariaDB and Redis, as on Kubernetes: a replay is answered before the rate
limit (the stored 201 stays promised, and a retry spends no token); a key
belongs to the client that sent it (the rate limit's identity, the last
X-Forwarded-For entry); keys written before migration 0003 keep working.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from backend.config import BackendSettings
from backend.idempotency import request_fingerprint
from backend.migrate import upgrade
from tests.backend.conftest import empty_database_url, idempotency_store
from tests.conftest import BackendFactory
from tests.support.servers import Redis

pytestmark = [pytest.mark.mysql, pytest.mark.redis]

LIMIT = 3


def _post(client: httpx.Client, text_: str, key: str, address: str) -> httpx.Response:
    return client.post(
        "/api/messages",
        json={"author": "Scope", "text": text_},
        headers={"Idempotency-Key": key, "X-Forwarded-For": address},
    )


def _rows(database_url: str) -> int:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one())
    engine.dispose()
    return count


def test_a_replay_is_answered_past_the_rate_limit_and_spends_no_token(
    backend_factory: BackendFactory, mysql_url: str, fresh_redis: Redis
) -> None:
    app = backend_factory(
        database_url=mysql_url, redis_url=fresh_redis.url(), rate_limit_writes=str(LIMIT)
    )
    with httpx.Client(base_url=app.url, timeout=10) as client:
        key = uuid.uuid4().hex
        first = _post(client, "kept", key, "198.51.100.1")
        assert first.status_code == 201
        # Retries of the same write: answered from the store, no token taken.
        for _ in range(LIMIT + 2):
            again = _post(client, "kept", key, "198.51.100.1")
            assert again.status_code == 201
            assert again.headers["idempotent-replayed"] == "true"
            assert again.json() == first.json()
        # So the rest of the allowance is still there: LIMIT - 1 new writes.
        for i in range(LIMIT - 1):
            assert _post(client, f"new {i}", uuid.uuid4().hex, "198.51.100.1").status_code == 201
        refused = _post(client, "one too many", uuid.uuid4().hex, "198.51.100.1")
        assert refused.status_code == 429
        # And with the allowance spent, the first write's replay is still a 201.
        replayed = _post(client, "kept", key, "198.51.100.1")
        assert replayed.status_code == 201
        assert replayed.json()["id"] == first.json()["id"]
    assert _rows(mysql_url) == LIMIT


def test_keys_belong_to_the_client_that_sent_them(
    backend_factory: BackendFactory, mysql_url: str, fresh_redis: Redis
) -> None:
    app = backend_factory(database_url=mysql_url, redis_url=fresh_redis.url())
    with httpx.Client(base_url=app.url, timeout=10) as client:
        key = uuid.uuid4().hex
        alice = _post(client, "same words", key, "198.51.100.10")
        bob = _post(client, "same words", key, "198.51.100.20")
        assert alice.status_code == bob.status_code == 201
        assert "idempotent-replayed" not in bob.headers  # bob's own message
        assert bob.json()["id"] != alice.json()["id"]
        carol = _post(client, "other words", key, "198.51.100.30")
        assert carol.status_code == 201  # not a 409 telling her the key exists
        # Each client's retry is still its own replay.
        again = _post(client, "same words", key, "198.51.100.20")
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == bob.json()["id"]
        assert _post(client, "changed", key, "198.51.100.10").status_code == 409
    assert _rows(mysql_url) == 3


def test_a_key_from_before_the_migration_keeps_working(
    backend_factory: BackendFactory, mysql_url: str
) -> None:
    """Written at revision 0002 (no client recorded), replayed after 0003."""
    settings = BackendSettings(database_url=mysql_url)
    upgrade(settings, wait_seconds=10, revision="0002")
    engine = create_engine(mysql_url, poolclass=NullPool)
    key = uuid.uuid4().hex
    with engine.begin() as conn:
        message_id = conn.execute(
            text(
                "INSERT INTO messages (author, text, created_at, written_by)"
                " VALUES ('Old', 'before', :now, 'backend-old')"
            ),
            {"now": datetime(2026, 12, 1)},
        ).lastrowid
        conn.execute(
            text(
                "INSERT INTO idempotency_keys (`key`, request_hash, message_id, created_at)"
                " VALUES (:key, :hash, :id, :now)"
            ),
            {
                "key": key,
                "hash": request_fingerprint("Old", "before"),
                "id": message_id,
                "now": datetime.now(),
            },
        )
    engine.dispose()
    app = backend_factory(database_url=mysql_url)  # migrates to head first
    with httpx.Client(base_url=app.url, timeout=10) as client:
        response = client.post(
            "/api/messages",
            json={"author": "Old", "text": "before"},
            headers={"Idempotency-Key": key, "X-Forwarded-For": "198.51.100.40"},
        )
    assert response.status_code == 201
    assert response.headers["idempotent-replayed"] == "true"
    assert response.json()["id"] == message_id
    assert _rows(mysql_url) == 1


def _downgrade(database_url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    from backend.migrate import MIGRATIONS

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
        conn.commit()
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "mysql"])
def test_migration_0003_goes_down_and_up_again(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Down, one key per value is kept (the newest); up again, it is the legacy kind."""
    database_url = empty_database_url(kind, tmp_path, request)
    with idempotency_store(database_url) as (store, _):
        first = store.create("a", "same", "pod", "shared-key", "198.51.100.1")
        second = store.create("b", "same", "pod", "shared-key", "198.51.100.2")
        assert first.row["id"] != second.row["id"]
    _downgrade(database_url, "0002")
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT message_id FROM idempotency_keys")).scalars().all()
    assert len(kept) == 1
    with idempotency_store(database_url) as (store, _):
        replay = store.create(
            "a" if kept[0] == first.row["id"] else "b", "same", "pod", "shared-key", "203.0.113.9"
        )
        assert replay.replayed and replay.row["id"] == kept[0]
    engine.dispose()
