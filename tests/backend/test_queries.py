"""backend/queries.py: pages newest first by keyset, one message, the per-pod counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.config import BackendSettings
from backend.database import Database
from backend.migrate import upgrade
from backend.queries import MessageQueries, now_utc


@pytest.fixture
def messages(tmp_path: Path) -> Iterator[MessageQueries]:
    settings = BackendSettings(database_url=f"sqlite:///{tmp_path / 'guestbook.db'}")
    upgrade(settings, wait_seconds=10)
    db = Database(settings, on_error=lambda: None)
    try:
        yield MessageQueries(db)
    finally:
        db.dispose()


def _write(messages: MessageQueries, text: str, pod: str) -> int:
    row = messages.insert("ann", text, pod, ("", None), "fingerprint", now_utc())
    return int(row["id"])


def test_pages_are_newest_first_and_continue_before_an_id(messages: MessageQueries) -> None:
    ids = [_write(messages, f"m{i}", "pod-a") for i in range(5)]
    first = messages.list_page(2, None)
    assert [row["id"] for row in first] == ids[:-3:-1]
    after = messages.list_page(2, first[-1]["id"])
    assert [row["id"] for row in after] == [ids[2], ids[1]]
    assert after[0]["created_at"].endswith("Z")


def test_one_message_or_none(messages: MessageQueries) -> None:
    new_id = _write(messages, "hello", "pod-a")
    row = messages.get(new_id)
    assert row is not None and (row["text"], row["written_by"]) == ("hello", "pod-a")
    assert messages.get(new_id + 1) is None


def test_counts_per_pod_follow_the_writes(messages: MessageQueries) -> None:
    for pod in ("pod-a", "pod-a", "pod-b"):
        _write(messages, "x", pod)
    assert messages.stats() == (3, {"pod-a": 2, "pod-b": 1})
