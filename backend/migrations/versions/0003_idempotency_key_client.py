"""Idempotency keys belong to a client: the key's primary key becomes (client_id, key).

Until now a key was global: the same key from two clients returned the first
client's message to the second (issue 26). The new `client_id` holds the
identity the write rate limit uses (the address the frontend saw, from the
last X-Forwarded-For entry).

Rows written before this revision have no known client: they get the empty
`client_id`, which the backend matches for any client, so a key in use during
the rollout keeps working for the client that made it. They go away with the
usual key expiry (IDEMPOTENCY_KEY_RETENTION_HOURS); from then on every key is
scoped.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An IPv6 address in text is at most 45 characters; ASCII, compared exactly.
_client = sa.String(64).with_variant(
    mysql.VARCHAR(64, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
)


def _sqlite_copy(primary_key: list[str], scoped: bool) -> None:
    """SQLite cannot change a primary key in place: copy the table, as batch mode
    would, but spelled out (batch mode warns when the primary key changes)."""
    # Columns of different types: their common type, as create_table takes them.
    columns: list[sa.schema.SchemaItem] = [
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column(
            "message_id",
            sa.Integer(),
            sa.ForeignKey("messages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    ]
    if scoped:
        columns.insert(0, sa.Column("client_id", _client, nullable=False, server_default=""))
    op.create_table("idempotency_keys_new", *columns, sa.PrimaryKeyConstraint(*primary_key))
    op.execute(
        "INSERT INTO idempotency_keys_new (key, request_hash, message_id, created_at)"
        " SELECT key, request_hash, message_id, created_at FROM idempotency_keys"
    )
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_new", "idempotency_keys")
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_copy(["client_id", "key"], scoped=True)
        return
    op.add_column(
        "idempotency_keys",
        sa.Column("client_id", _client, nullable=False, server_default=""),
    )
    # One statement, so no moment exists with no primary key at all.
    op.execute("ALTER TABLE idempotency_keys DROP PRIMARY KEY, ADD PRIMARY KEY (client_id, `key`)")


def downgrade() -> None:
    bind = op.get_bind()
    # Keys of different clients may now share a value: keep one (the newest) of each.
    if bind.dialect.name == "sqlite":
        op.execute(
            "DELETE FROM idempotency_keys WHERE rowid NOT IN ("
            "SELECT MAX(rowid) FROM idempotency_keys GROUP BY key)"
        )
    else:
        op.execute(
            "DELETE k FROM idempotency_keys k JOIN idempotency_keys o ON o.`key` = k.`key`"
            " AND (o.created_at > k.created_at"
            " OR (o.created_at = k.created_at AND o.client_id > k.client_id))"
        )
    if bind.dialect.name == "sqlite":
        _sqlite_copy(["key"], scoped=False)
        return
    op.execute("ALTER TABLE idempotency_keys DROP PRIMARY KEY, ADD PRIMARY KEY (`key`)")
    op.drop_column("idempotency_keys", "client_id")
