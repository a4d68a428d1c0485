"""A write whose outcome is unknown is never doubled (issue 26, item 3).

The backend is stalled in the middle of a write (its transaction waits on a
table lock the test holds) until the frontend's read timeout has passed. The
frontend cannot know whether the row will be committed, so it says so: 504,
the Idempotency-Key it used, no Retry-After. The client then retries as told,
with that key, and finds one row, on MariaDB as on Kubernetes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pymysql
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import BackendFactory
from tests.frontend.conftest import hidden_fields
from tests.support.frontends import FrontendLauncher
from tests.support.servers import MariaDB
from tests.support.waiting import wait_until

pytestmark = pytest.mark.mysql


@pytest.fixture
def frontends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FrontendLauncher]:
    launcher = FrontendLauncher(tmp_path_factory.mktemp("frontend-unknown"))
    yield launcher
    launcher.stop_all()


def _rows(database_url: str, author: str) -> int:
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT COUNT(*) FROM messages WHERE author = :a"), {"a": author}
        ).scalar_one()
    engine.dispose()
    return int(count)


def _stalled_write(
    mariadb: MariaDB, mysql_url: str, send: Callable[[], httpx.Response]
) -> tuple[httpx.Response, pymysql.Connection]:
    """Send a write while the backend's transaction is held on the counter table's lock."""
    database = mysql_url.rsplit("/", 1)[1]
    holder = pymysql.connect(host="127.0.0.1", port=mariadb.port, user="root", database=database)
    with holder.cursor() as cursor:
        # The message row is inserted, then the write waits on its pod's
        # counter: the backend is mid-transaction when the frontend gives up.
        cursor.execute("LOCK TABLES message_counts WRITE")
    try:
        response = send()
    except BaseException:
        holder.close()
        raise
    return response, holder


def test_an_unanswered_write_is_a_504_with_its_key_and_a_retry_makes_one_row(
    backend_factory: BackendFactory,
    frontends: FrontendLauncher,
    mysql_url: str,
    mariadb: MariaDB,
) -> None:
    backend = backend_factory(database_url=mysql_url, pod_name="backend-stalled")
    frontend = frontends(backend.url, backend_read_timeout_seconds="1")
    author = "Unknown" + uuid.uuid4().hex[:6]
    body = {"author": author, "text": "did it land?"}
    with httpx.Client(base_url=frontend.url, timeout=30) as client:
        # Warm the backend's counter row, so the stall below is inside the write.
        assert (
            client.post("/api/messages", json={"author": "warm", "text": "up"}).status_code == 201
        )
        response, holder = _stalled_write(
            mariadb, mysql_url, lambda: client.post("/api/messages", json=body)
        )

        try:
            assert response.status_code == 504, response.text
            assert "retry-after" not in response.headers
            key = response.headers["idempotency-key"]
            assert response.json()["error"] == "outcome_unknown"
            assert response.json()["idempotency_key"] == key
            assert "x-request-id" in response.headers
        finally:
            with holder.cursor() as cursor:
                cursor.execute("UNLOCK TABLES")
            holder.close()
        # The stalled write commits once the lock goes: the row exists.
        wait_until(lambda: _rows(mysql_url, author) == 1, timeout=10)
        retried = client.post("/api/messages", json=body, headers={"Idempotency-Key": key})
        assert retried.status_code == 201, retried.text
        assert retried.headers["idempotent-replayed"] == "true"
    assert _rows(mysql_url, author) == 1


def test_an_unanswered_form_post_keeps_its_key_and_says_the_outcome_is_unknown(
    backend_factory: BackendFactory,
    frontends: FrontendLauncher,
    mysql_url: str,
    mariadb: MariaDB,
) -> None:
    backend = backend_factory(database_url=mysql_url, pod_name="backend-stalled-form")
    frontend = frontends(backend.url, backend_read_timeout_seconds="1")
    author = "Form" + uuid.uuid4().hex[:6]
    with httpx.Client(base_url=frontend.url, timeout=30) as client:
        assert (
            client.post("/api/messages", json={"author": "warm", "text": "up"}).status_code == 201
        )
        fields = hidden_fields(client.get("/").text) | {"author": author, "text": "form"}
        response, holder = _stalled_write(
            mariadb, mysql_url, lambda: client.post("/messages", data=fields)
        )

        try:
            assert response.status_code == 504
            assert "cannot tell whether your message was saved" in response.text
            again = hidden_fields(response.text)
            assert again["idempotency_key"] == fields["idempotency_key"]
        finally:
            with holder.cursor() as cursor:
                cursor.execute("UNLOCK TABLES")
            holder.close()
        wait_until(lambda: _rows(mysql_url, author) == 1, timeout=10)
        resent = client.post("/messages", data=again | {"author": author, "text": "form"})
        assert resent.status_code == 303
    assert _rows(mysql_url, author) == 1
