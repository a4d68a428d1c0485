"""The migration waits for the database, says so in the log, and gives up after its bound."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import OperationalError

from backend.config import BackendSettings
from backend.migrate import upgrade
from localservers.ports import free_port

_WAITING = "database not reachable yet, retrying"


def _waiting_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "migrate" and r.getMessage() == _WAITING]


def test_a_database_that_never_answers_fails_after_the_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A MySQL URL on a port nobody listens on: every connect is refused.
    url = f"mysql+pymysql://app:pw@127.0.0.1:{free_port()}/guestbook"
    caplog.set_level(logging.INFO, logger="migrate")
    with pytest.raises(OperationalError) as raised:
        upgrade(BackendSettings(database_url=url), wait_seconds=2)
    # The database's own error, not a wrapper around it.
    assert "Can't connect" in str(raised.value)
    lines = _waiting_lines(caplog)
    assert lines, "no line said the database was not reachable yet"
    # The log's JSON fields (extra=...): why, and which try it was.
    assert "Can't connect" in lines[0].__dict__["error"]
    assert [r.__dict__["attempt"] for r in lines] == list(range(1, len(lines) + 1))


def test_the_migration_goes_on_once_the_database_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite cannot open a file whose path is a directory; the directory goes
    # away after a moment, as a database comes up after its clients do.
    path = tmp_path / "guestbook.db"
    path.mkdir()
    timer = threading.Timer(1.0, shutil.rmtree, args=(path,))
    caplog.set_level(logging.INFO, logger="migrate")
    timer.start()
    try:
        upgrade(BackendSettings(database_url=f"sqlite:///{path}"), wait_seconds=60)
    finally:
        timer.cancel()
    assert _waiting_lines(caplog), "it never had to wait, so the test proved nothing"
    engine = create_engine(f"sqlite:///{path}")
    assert "messages" in inspect(engine).get_table_names()
    engine.dispose()
