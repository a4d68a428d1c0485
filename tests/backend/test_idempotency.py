"""backend/idempotency.py: a key replays its first answer for its own client
only, and a key that lost the race to a concurrent insert answers with the
winner's message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.idempotency import IdempotencyStore
from backend.queries import MessageQueries
from tests.backend.conftest import idempotency_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[IdempotencyStore, MessageQueries]]:
    with idempotency_store(f"sqlite:///{tmp_path / 'guestbook.db'}") as made:
        yield made


def test_replay_is_per_client(store: tuple[IdempotencyStore, MessageQueries]) -> None:
    keys, _ = store
    assert keys.replay("ann", "hi", "k1", "198.51.100.1") is None
    created = keys.create("ann", "hi", "pod-a", "k1", "198.51.100.1")
    replay = keys.replay("ann", "hi", "k1", "198.51.100.1")
    assert replay is not None and replay.replayed and replay.row == created.row
    assert keys.replay("ann", "hi", "k1", "198.51.100.2") is None


def test_a_key_that_lost_the_race_answers_with_the_winner(
    store: tuple[IdempotencyStore, MessageQueries],
) -> None:
    keys, messages = store
    # replay_checked: both writers looked the key up before either wrote it.
    winner = keys.create("ann", "hi", "pod-a", "k1", "c", replay_checked=True)
    loser = keys.create("ann", "hi", "pod-b", "k1", "c", replay_checked=True)
    assert loser.replayed and loser.row["id"] == winner.row["id"]
    assert messages.stats()[0] == 1


def test_a_write_without_a_key_is_never_a_replay(
    store: tuple[IdempotencyStore, MessageQueries],
) -> None:
    keys, messages = store
    first = keys.create("ann", "hi", "pod-a", None)
    second = keys.create("ann", "hi", "pod-a", None)
    assert not first.replayed and not second.replayed
    assert messages.stats()[0] == 2
