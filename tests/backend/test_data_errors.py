"""The data layer speaks its own errors; the HTTP layer alone turns them into answers."""

from __future__ import annotations

import ast
from pathlib import Path

import anyio
import pytest

from backend.config import BackendSettings
from backend.data_errors import DatabaseUnavailable, IdempotencyKeyReused
from backend.database import Database
from backend.queries import MessageQueries
from tests.backend.conftest import idempotency_store

REPO = Path(__file__).resolve().parents[2]


def test_a_reused_key_raises_the_data_layers_own_error(tmp_path: Path) -> None:
    with idempotency_store(f"sqlite:///{tmp_path / 'guestbook.db'}") as (store, _):
        first = store.create("ann", "hello", "pod-a", "key-1")
        assert not first.replayed
        assert store.create("ann", "hello", "pod-a", "key-1").replayed
        with pytest.raises(IdempotencyKeyReused) as raised:
            store.create("ann", "something else", "pod-a", "key-1")
        assert raised.value.key == "key-1"


def test_a_database_that_is_not_there_raises_database_unavailable(tmp_path: Path) -> None:
    # A directory that does not exist: SQLite cannot open the file.
    missing = tmp_path / "no-such-dir" / "guestbook.db"
    errors: list[None] = []
    db = Database(
        BackendSettings(database_url=f"sqlite:///{missing}"), on_error=lambda: errors.append(None)
    )
    try:
        with pytest.raises(DatabaseUnavailable):
            anyio.run(lambda: db.run(MessageQueries(db).stats))
        assert db.state == "down" and errors
    finally:
        db.dispose()


@pytest.mark.parametrize(
    "module", ["database.py", "queries.py", "idempotency.py", "data_errors.py"]
)
def test_the_data_layer_imports_nothing_from_http(module: str) -> None:
    tree = ast.parse((REPO / "backend" / module).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {m for m in imported if m.startswith(("fastapi", "starlette", "backend.api_errors"))}
