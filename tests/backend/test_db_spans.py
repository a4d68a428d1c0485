"""backend/db_spans.py: a SQL span is named by its operation and the first table."""

from __future__ import annotations

import pytest

from backend.db_spans import _operation, _table


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("SELECT messages.id FROM messages ORDER BY messages.id DESC LIMIT %s", "messages"),
        ("SELECT k.hash FROM idempotency_keys AS k JOIN messages ON 1", "idempotency_keys"),
        ("SELECT count(*) FROM (SELECT id FROM messages) AS anon_1", "messages"),
        ("INSERT INTO `message_counts` (written_by) VALUES (%s)", "message_counts"),
        ("update counters set n = n + 1", "counters"),
        ("DELETE FROM app.idempotency_keys WHERE id = %s", "app.idempotency_keys"),
        ("SELECT GET_LOCK(%s, %s)", None),
        ("START TRANSACTION", None),
    ],
)
def test_a_statement_is_known_by_the_first_table_it_names(
    statement: str, table: str | None
) -> None:
    assert _table(_operation(statement), statement) == table
