"""The backend API under test, on each database/cache combination it supports.

One backend process per combination and module (starting one per test would
spend most of the run on start-up); every test starts from empty tables and
an empty Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redis_sync
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from backend.config import BackendSettings
from backend.database import Database
from backend.idempotency import IdempotencyStore
from backend.migrate import upgrade
from backend.queries import MessageQueries
from tests.conftest import BackendLauncher
from tests.support.apps import AppProcess
from tests.support.servers import MariaDB, Redis


@dataclass
class Api:
    app: AppProcess
    client: httpx.Client
    kind: str
    database_url: str
    redis_url: str

    @property
    def cached(self) -> bool:
        return bool(self.redis_url)

    def reset(self) -> None:
        engine = create_engine(self.database_url, poolclass=NullPool)
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text("DELETE FROM idempotency_keys"))
                conn.execute(text("DELETE FROM messages"))
                conn.execute(text("DELETE FROM message_counts"))
            else:
                conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
                conn.execute(text("TRUNCATE TABLE idempotency_keys"))
                conn.execute(text("TRUNCATE TABLE messages"))
                conn.execute(text("TRUNCATE TABLE message_counts"))
                conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
        engine.dispose()
        if self.redis_url:
            redis_sync.Redis.from_url(self.redis_url).flushall()


@pytest.fixture(scope="module", params=["sqlite", "mysql", "mysql+redis"])
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    kind = request.param
    launcher = BackendLauncher(tmp_path_factory.mktemp(kind.replace("+", "-")))
    database_url = f"sqlite:///{launcher.workdir / 'guestbook.db'}"
    redis_url = ""
    if kind.startswith("mysql"):
        mariadb: MariaDB = request.getfixturevalue("mariadb")
        database_url = mariadb.url(mariadb.create_database())
    if kind.endswith("redis"):
        redis_server: Redis = request.getfixturevalue("redis_server")
        redis_url = redis_server.url()
    app = launcher(database_url=database_url, redis_url=redis_url, pod_name=f"backend-{kind}")
    with httpx.Client(base_url=app.url, timeout=10) as client:
        yield Api(app, client, kind, database_url, redis_url)
    launcher.stop_all()


@pytest.fixture
def api(api_server: Api) -> Api:
    api_server.reset()
    return api_server


def empty_database_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new, empty database of `kind` ("sqlite" or "mysql"), for a test parametrized on it:
    a file under tmp_path, or a fresh database on the session's MariaDB (`mysql_url`)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'guestbook.db'}"
    return str(request.getfixturevalue("mysql_url"))


@contextmanager
def idempotency_store(database_url: str) -> Iterator[tuple[IdempotencyStore, MessageQueries]]:
    """The data layer on `database_url`, migrated to the newest revision: the
    idempotency store and the queries it writes with, disposed of after."""
    settings = BackendSettings(database_url=database_url)
    upgrade(settings, wait_seconds=10)
    db = Database(settings, on_error=lambda: None)
    messages = MessageQueries(db)
    try:
        yield IdempotencyStore(db, messages), messages
    finally:
        db.dispose()
