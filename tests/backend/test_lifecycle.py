"""Readiness at start, draining on SIGTERM, and in-flight requests finishing."""

from __future__ import annotations

import signal
import time

import httpx
import pymysql
import pytest

from tests.conftest import BackendFactory
from tests.support.held_read import HeldRead
from tests.support.servers import MariaDB
from tests.support.waiting import wait_until


def test_not_ready_until_the_database_answers(
    backend_factory: BackendFactory, mysql_url: str, mariadb: MariaDB
) -> None:
    from tests.support.apps import AppProcess, migrate

    env = {
        "DATABASE_URL": mysql_url,
        "REDIS_URL": "",
        "POD_NAME": "backend-late",
        "SHUTDOWN_DELAY_SECONDS": "0",
        "HEALTH_INTERVAL_SECONDS": "0.2",
    }
    migrate(env)
    mariadb.stop()
    app = AppProcess("backend", env, mariadb.root / "late-backend.log")
    try:
        app.start(wait_ready=False)
        wait_until(lambda: _status(app.url) is not None)
        ready = httpx.get(f"{app.url}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["status"] == "starting"
        assert httpx.get(f"{app.url}/healthz", timeout=5).status_code == 200
        mariadb.start()
        took = wait_until(lambda: _status(app.url) == 200)
        print(f"\nready {took:.2f} s after MariaDB started")
    finally:
        app.stop()
        if mariadb.proc is None:
            mariadb.start()


def _status(url: str) -> int | None:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code
    except httpx.HTTPError:
        return None


def test_sigterm_fails_readiness_first_and_keeps_serving(backend_factory: BackendFactory) -> None:
    app = backend_factory(shutdown_delay_seconds="2", graceful_timeout_seconds="5")
    assert app.proc is not None
    with httpx.Client(base_url=app.url, timeout=5) as client:
        assert client.get("/readyz").status_code == 200
        app.signal(signal.SIGTERM)
        wait_until(lambda: client.get("/readyz").status_code == 503, timeout=5)
        draining = client.get("/readyz")
        assert draining.json()["status"] == "draining"
        # Still serving while kube-proxy catches up, but asking clients to
        # reconnect (elsewhere) after this response.
        page = client.get("/api/messages")
        assert page.status_code == 200
        assert page.headers["connection"] == "close"
    code = app.proc.wait(timeout=15)
    assert code in (0, -signal.SIGTERM)


def test_in_flight_request_finishes_after_sigterm(
    backend_factory: BackendFactory, mysql_url: str, mariadb: MariaDB
) -> None:
    app = backend_factory(
        database_url=mysql_url, shutdown_delay_seconds="0", graceful_timeout_seconds="20"
    )
    database = mysql_url.rsplit("/", 1)[1]
    # Hold a write lock so the next read blocks inside the backend.
    holder = pymysql.connect(host="127.0.0.1", port=mariadb.port, user="root", database=database)
    read = HeldRead(f"{app.url}/api/messages/1", holder)
    try:
        read.start()
        app.signal(signal.SIGTERM)
        time.sleep(1.0)
        assert app.proc is not None and app.proc.poll() is None, "exited with a request in flight"
        read.release()
    finally:
        holder.close()
    response = read.response()
    assert response.status_code == 404  # answered properly: the table is empty
    assert app.proc.wait(timeout=20) in (0, -signal.SIGTERM)


@pytest.mark.parametrize("age", ["1"])
def test_old_keepalive_connections_are_closed(backend_factory: BackendFactory, age: str) -> None:
    app = backend_factory(max_connection_age_seconds=age)
    with httpx.Client(base_url=app.url, timeout=5) as client:
        first = client.get("/healthz")
        assert "connection" not in first.headers
        time.sleep(float(age) + 0.2)
        aged = client.get("/healthz")
        assert aged.headers["connection"] == "close"
        fresh = client.get("/healthz")
        assert "connection" not in fresh.headers


def test_no_password_reaches_the_logs(tmp_path) -> None:
    """Start against a database that refuses connections, so the backend logs its
    URL while starting and again as it reports the database down."""
    from tests.support.apps import AppProcess
    from tests.support.ports import free_port

    secret = "s3cret-Pa55word"
    app = AppProcess(
        "backend",
        {
            "DATABASE_URL": f"mysql+pymysql://app:{secret}@127.0.0.1:{free_port()}/app",
            "DATABASE_PASSWORD": f"{secret}-from-env",
            "REDIS_URL": f"redis://:{secret}@127.0.0.1:{free_port()}/0",
            "SHUTDOWN_DELAY_SECONDS": "0",
            "HEALTH_INTERVAL_SECONDS": "0.2",
        },
        tmp_path / "backend.log",
    )
    try:
        app.start(wait_ready=False)
        wait_until(lambda: "database is down" in app.logs(), timeout=20)
        ready = httpx.get(f"{app.url}/readyz", timeout=5)
        assert ready.status_code == 503
    finally:
        app.stop()
    logs = app.logs()
    assert "mysql+pymysql://app:***@127.0.0.1" in logs  # the URL is there, masked
    assert secret not in logs
