"""Session-owned throwaway servers and factories for the real app processes.

Tests that need MariaDB or Redis get private servers started here and
stopped at the end of the session. Where the machine lacks the binaries the
test is skipped with the reason, except under CI=true where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from tests.support.apps import AppProcess, Launcher, migrate
from tests.support.servers import MariaDB, Redis, mariadb_binaries, redis_binary

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    if mariadb_binaries() is None:
        missing("MariaDB is not installed (apt-get install mariadb-server)")
    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    server.install()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    if redis_binary() is None:
        missing("Redis is not installed (apt-get install redis-server)")
    server = Redis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(redis_server: Redis) -> Redis:
    """The session's Redis, running and empty."""
    if redis_server.proc is None:
        redis_server.start()
    redis_sync.Redis.from_url(redis_server.url()).flushall()
    return redis_server


BackendFactory = Callable[..., AppProcess]


class BackendLauncher(Launcher):
    """Starts real backend processes and stops them all at the end.

    Defaults: a fresh SQLite file, no Redis. The schema is migrated first,
    exactly as the init container does.
    """

    module = "backend"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.migrated: set[str] = set()

    def __call__(
        self,
        database_url: str | None = None,
        redis_url: str = "",
        pod_name: str | None = None,
        wait_ready: bool = True,
        **env: str,
    ) -> AppProcess:
        url = database_url or f"sqlite:///{self.workdir / 'guestbook.db'}"
        base_env = {
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "HEALTH_INTERVAL_SECONDS": "0.2",
            "RATE_LIMIT_WRITES": "100000",
        }
        full_env = base_env | {k.upper(): v for k, v in env.items()}
        if url not in self.migrated:
            migrate(full_env)
            self.migrated.add(url)
        return self.launch(full_env, pod_name, wait_ready)


@pytest.fixture
def backend_factory(tmp_path: Path) -> Iterator[BackendFactory]:
    launcher = BackendLauncher(tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture
def mysql_url(mariadb: MariaDB) -> str:
    """A new, empty database on the session's MariaDB."""
    if mariadb.proc is None:
        mariadb.start()
    return mariadb.url(mariadb.create_database())


# Figures a test measured (image sizes, memory against limits, shutdown times): printed
# in a "measured" section at the end of the run, so CI's log carries them.
MEASURED = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def measured(request: pytest.FixtureRequest) -> list[str]:
    return request.config.stash.setdefault(MEASURED, [])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(MEASURED, [])
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.line(line)
