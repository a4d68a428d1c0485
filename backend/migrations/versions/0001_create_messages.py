"""Create the messages table and the idempotency keys table.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ts = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# utf8mb4 so every Unicode character, emoji included, round-trips on MySQL.
# Any: create_table's typed keywords do not name dialect options, which go to **kw.
_mysql_table: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("written_by", sa.String(253), nullable=False),
        **_mysql_table,
    )
    op.create_index("ix_messages_written_by", "messages", ["written_by"])
    op.create_table(
        "idempotency_keys",
        # ascii_bin: keys are ASCII by validation and compared exactly.
        sa.Column(
            "key",
            sa.String(128).with_variant(
                mysql.VARCHAR(128, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
            ),
            primary_key=True,
        ),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column(
            "message_id",
            _id,
            sa.ForeignKey("messages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", _ts, nullable=False),
        **_mysql_table,
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_messages_written_by", table_name="messages")
    op.drop_table("messages")
