"""Message counters kept in the write transaction; idempotency keys by age.

`message_counts` holds one row per writing pod, incremented in the same
transaction as the message insert, so `GET /api/stats` reads a handful of
rows instead of counting the whole `messages` table. The backfill counts the
rows already there. Writes made by backends older than this revision after
the backfill (during the rolling update that brings this revision in) are not
counted: where exact counts matter, pause writes for that rollout, or re-run
the backfill (DELETE FROM message_counts, then the INSERT … SELECT below, in
one transaction) once every pod runs the new code.

The index on `idempotency_keys.created_at` lets the clean-up find expired
keys without scanning the table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Any: create_table's typed keywords do not name dialect options, which go to **kw.
_mysql_table: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table(
        "message_counts",
        sa.Column("written_by", sa.String(253), primary_key=True),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        **_mysql_table,
    )
    op.execute(
        "INSERT INTO message_counts (written_by, messages) "
        "SELECT written_by, COUNT(*) FROM messages GROUP BY written_by"
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("message_counts")
