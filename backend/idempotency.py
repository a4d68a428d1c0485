"""The idempotency store: an Idempotency-Key's earlier answer replayed, a
new key written with its message, expired keys cleaned up.

Keys are scoped per client (the address the rate limit uses): another
client's key of the same value is another key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, select
from sqlalchemy.exc import IntegrityError

from backend.data_errors import IdempotencyKeyReused
from backend.database import Database
from backend.models import IdempotencyKey
from backend.queries import MessageQueries, messages_table, now_utc, row_to_dict

_keys = cast(Table, IdempotencyKey.__table__)

# The client's own key first; a key from before migration 0003 (no client
# recorded) matches any client until it expires.
_REPLAY = (
    select(_keys.c.request_hash, messages_table)
    .join(messages_table, messages_table.c.id == _keys.c.message_id)
    .where(
        _keys.c.key == bindparam("key"),
        _keys.c.client_id.in_([bindparam("client_id"), bindparam("legacy")]),
    )
    .order_by(_keys.c.client_id.desc())
    .limit(1)
)


@dataclass(slots=True)
class CreatedMessage:
    row: dict[str, Any]
    replayed: bool


def request_fingerprint(author: str, text_: str) -> str:
    payload = json.dumps([author, text_], ensure_ascii=False).encode()
    return hashlib.sha256(payload).hexdigest()


def delete_expired_keys(conn: Connection, cutoff: datetime, limit: int) -> int:
    """Delete at most `limit` idempotency keys created before `cutoff`.

    The keys are picked by a plain read first and then deleted one by one
    by primary key: InnoDB then locks only those rows, never a range or its
    gaps, so an insert of a new key never waits for a clean-up pass.
    """
    expired = list(
        conn.execute(
            select(_keys.c.client_id, _keys.c.key)
            .where(_keys.c.created_at < cutoff)
            .order_by(_keys.c.created_at)
            .limit(limit)
        ).all()
    )
    if not expired:
        return 0
    # One equality delete per key: `key IN (…)` or a condition on created_at
    # is a range scan to InnoDB, whose next-key locks block inserts of new
    # keys until the pass commits (tests/backend/test_key_expiry.py).
    deleted = 0
    for client_id, key in expired:
        deleted += conn.execute(
            delete(_keys).where(_keys.c.client_id == client_id, _keys.c.key == key)
        ).rowcount
    return deleted


class IdempotencyStore:
    """Writes with an Idempotency-Key: at most one message per client and key."""

    def __init__(self, db: Database, messages: MessageQueries) -> None:
        self._engine = db.engine
        self._messages = messages

    def expire_keys(self, retention: timedelta, limit: int) -> int:
        """One bounded clean-up pass, in its own short transaction."""
        cutoff = now_utc() - retention
        with self._engine.begin() as conn:
            return delete_expired_keys(conn, cutoff, limit)

    def replay(
        self, author: str, text_: str, idempotency_key: str, client_id: str
    ) -> CreatedMessage | None:
        """What this client's earlier request with this key wrote, if any.

        Asked before the rate limit (a replay spends no token), so `create`
        is then told not to ask again."""
        return self._replay(idempotency_key, client_id, request_fingerprint(author, text_))

    def create(
        self,
        author: str,
        text_: str,
        written_by: str,
        idempotency_key: str | None,
        client_id: str = "",
        replay_checked: bool = False,
    ) -> CreatedMessage:
        fingerprint = request_fingerprint(author, text_)
        now = now_utc()
        if idempotency_key is not None and not replay_checked:
            replay = self._replay(idempotency_key, client_id, fingerprint)
            if replay is not None:
                return replay
        try:
            row = self._messages.insert(
                author, text_, written_by, (client_id, idempotency_key), fingerprint, now
            )
        except IntegrityError:
            # The same key committed by a concurrent request between our
            # look-up and our insert: answer with what that one wrote.
            if idempotency_key is None:
                raise
            replay = self._replay(idempotency_key, client_id, fingerprint)
            if replay is None:
                raise
            return replay
        return CreatedMessage(row=row, replayed=False)

    def _replay(self, key: str, client_id: str, fingerprint: str) -> CreatedMessage | None:
        with self._engine.connect() as conn:
            found = conn.execute(
                _REPLAY, {"key": key, "client_id": client_id, "legacy": ""}
            ).first()
        if found is None:
            return None
        if found.request_hash != fingerprint:
            raise IdempotencyKeyReused(key)
        return CreatedMessage(row=row_to_dict(found[1:]), replayed=True)
