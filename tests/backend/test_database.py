"""backend/database.py: the engine's health follows what its queries meet,
and a write's transaction is all or nothing."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from backend.config import BackendSettings
from backend.database import Database
from backend.migrate import upgrade


def _count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one())


def test_the_state_is_up_after_an_answer_and_the_url_hides_its_password(tmp_path: Path) -> None:
    settings = BackendSettings(database_url=f"sqlite:///{tmp_path / 'guestbook.db'}")
    upgrade(settings, wait_seconds=10)
    db = Database(settings, on_error=lambda: None)
    try:
        assert (db.state, db.answered_once) == ("unknown", False)
        assert anyio.run(db.ping)
        assert (db.state, db.answered_once) == ("up", True)
        assert anyio.run(lambda: db.run(_count, db)) == 0
    finally:
        db.dispose()
    hidden = Database(
        BackendSettings(database_url="mysql+pymysql://app:s3cret@127.0.0.1:1/app"),
        on_error=lambda: None,
    )
    assert "s3cret" not in hidden.describe()
    hidden.dispose()


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    settings = BackendSettings(database_url=f"sqlite:///{tmp_path / 'guestbook.db'}")
    upgrade(settings, wait_seconds=10)
    db = Database(settings, on_error=lambda: None)
    insert = text(
        "INSERT INTO messages (author, text, created_at, written_by)"
        " VALUES ('a', 'b', '2026-01-01 00:00:00', 'pod')"
    )
    try:
        with pytest.raises(RuntimeError), db.transaction() as conn:
            conn.execute(insert)
            raise RuntimeError("half way")
        assert _count(db) == 0
        with db.transaction() as conn:
            conn.execute(insert)
        assert _count(db) == 1
    finally:
        db.dispose()
