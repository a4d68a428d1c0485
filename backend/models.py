"""The tables. Alembic migrations create them; this is what the code maps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.contract import AUTHOR_MAX, IDEMPOTENCY_KEY_MAX

# SQLite only auto-increments INTEGER PRIMARY KEY, MySQL wants BIGINT.
_Id = BigInteger().with_variant(Integer(), "sqlite")
# Microseconds, so messages written in the same second keep their order.
_Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class Base(DeclarativeBase):
    pass


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    author: Mapped[str] = mapped_column(String(AUTHOR_MAX), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(_Timestamp, nullable=False)
    written_by: Mapped[str] = mapped_column(String(253), nullable=False, index=True)


class MessageCount(Base):
    """Messages written per pod, kept in each write's transaction (see db.create)."""

    __tablename__ = "message_counts"

    written_by: Mapped[str] = mapped_column(String(253), primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger, nullable=False)


class IdempotencyKey(Base):
    """A client's Idempotency-Key and the message its first request created.

    Scoped to the client (the rate limit's identity): the same key from
    another client is another key. `client_id` is empty on keys written
    before migration 0003, which match any client until they expire.
    """

    __tablename__ = "idempotency_keys"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True, server_default="")
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    message_id: Mapped[int] = mapped_column(
        _Id, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(_Timestamp, nullable=False, index=True)
