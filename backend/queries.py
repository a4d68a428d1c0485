"""The queries the API runs on messages and the per-pod counters: built
once, run by `Database.run` in a worker thread (the FastAPI template's
crud.py, beside its core/db.py: backend/database.py here).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError

from backend.database import Database
from backend.models import IdempotencyKey, Message, MessageCount

# The declarative base types __table__ as any FromClause; these are Tables.
messages_table = cast(Table, Message.__table__)
_keys = cast(Table, IdempotencyKey.__table__)
_counts = cast(Table, MessageCount.__table__)

# The page queries, built once: putting a Select together on every call
# costs about as much as turning its rows into dicts.
_FIRST_PAGE = select(messages_table).order_by(messages_table.c.id.desc()).limit(bindparam("limit"))
_PAGE_BEFORE = _FIRST_PAGE.where(messages_table.c.id < bindparam("before_id"))
_ONE = select(messages_table).where(messages_table.c.id == bindparam("id"))

# InnoDB's "deadlock found" and "lock wait timeout": the transaction was
# rolled back as a whole, so running it again is safe.
_RETRYABLE_MYSQL_ERRORS = frozenset({1213, 1205})
_WRITE_ATTEMPTS = 3


def now_utc() -> datetime:
    """Now, naive in UTC, as every timestamp is stored."""
    return datetime.now(UTC).replace(tzinfo=None)


def _utc(value: datetime) -> str:
    # Stored naive in UTC (SQLite keeps no zone); sent with an explicit Z.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def row_to_dict(row: Any) -> dict[str, Any]:
    # Positional unpacking: attribute access on a Row costs a look-up per
    # field, and a page converts twenty rows per request.
    id_, author, text_, created_at, written_by = row
    return {
        "id": id_,
        "author": author,
        "text": text_,
        "created_at": _utc(created_at),
        "written_by": written_by,
    }


# A write adds one to its pod's counter with a plain UPDATE, which takes the
# row's exclusive lock at once. An INSERT … ON DUPLICATE KEY UPDATE would first
# take a shared lock for the duplicate check and then upgrade it, and two
# concurrent writers doing that can deadlock (InnoDB rolls one back, and the
# write is retried in `insert`). So the row is created ahead of the first
# write, outside any write's transaction, and the upsert is only the fallback
# for a row that vanished since (tables emptied under a running backend).
_COUNT_PLUS_ONE = (
    update(_counts)
    .where(_counts.c.written_by == bindparam("pod"))
    .values(messages=_counts.c.messages + 1)
)
_COUNTER_ROW: dict[str, Any] = {"written_by": bindparam("pod"), "messages": bindparam("start")}
_COUNTER_ROW_SQLITE = (
    sqlite_insert(_counts)
    .values(_COUNTER_ROW)
    .on_conflict_do_update(
        index_elements=[_counts.c.written_by],
        set_={"messages": _counts.c.messages + bindparam("start")},
    )
)
_COUNTER_ROW_MYSQL = (
    mysql_insert(_counts)
    .values(_COUNTER_ROW)
    .on_duplicate_key_update(messages=_counts.c.messages + bindparam("start"))
)


def _add_to_counter(conn: Connection, pod: str, n: int) -> None:
    """Upsert: a row for `pod` with `n` messages, or `n` more on the one there."""
    stmt = _COUNTER_ROW_SQLITE if conn.dialect.name == "sqlite" else _COUNTER_ROW_MYSQL
    conn.execute(stmt, {"pod": pod, "start": n})


class MessageQueries:
    """Reads and the write of one message, on the engine `db` holds."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._engine = db.engine
        # Pods whose counter row this process has made sure exists.
        self._counter_rows: set[str] = set()

    def list_page(self, limit: int, before_id: int | None) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            if before_id is None:
                rows = conn.execute(_FIRST_PAGE, {"limit": limit})
            else:
                rows = conn.execute(_PAGE_BEFORE, {"limit": limit, "before_id": before_id})
            return [row_to_dict(row) for row in rows]

    def get(self, message_id: int) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(_ONE, {"id": message_id}).first()
        return row_to_dict(row) if row else None

    def stats(self) -> tuple[int, dict[str, int]]:
        # One row per pod that ever wrote, kept by `insert`: the cost does
        # not grow with the number of messages.
        with self._engine.connect() as conn:
            by_pod = {pod: int(n) for pod, n in conn.execute(select(_counts)).all()}
        return sum(by_pod.values()), by_pod

    def insert(
        self,
        author: str,
        text_: str,
        written_by: str,
        scoped_key: tuple[str, str | None],
        fingerprint: str,
        now: datetime,
    ) -> dict[str, Any]:
        """The message, its idempotency key (if any, for the store in
        backend/idempotency.py) and its pod's counter, in one transaction."""
        client_id, idempotency_key = scoped_key
        # One transaction for the row, its key and its pod's counter: either
        # all exist or none, so a retry after a lost response never makes a
        # second row and the counts never drift from the rows.
        if written_by not in self._counter_rows:
            with self._engine.begin() as conn:
                _add_to_counter(conn, written_by, 0)
            self._counter_rows.add(written_by)
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self._db.transaction() as conn:
                    new_id = conn.execute(
                        insert(messages_table).values(
                            author=author, text=text_, created_at=now, written_by=written_by
                        )
                    ).inserted_primary_key[0]  # type: ignore[index]  # None only for no INSERT
                    if idempotency_key is not None:
                        conn.execute(
                            insert(_keys).values(
                                client_id=client_id,
                                key=idempotency_key,
                                request_hash=fingerprint,
                                message_id=new_id,
                                created_at=now,
                            )
                        )
                    # Last before COMMIT: the pod's counter row is the one
                    # lock every write of this pod waits for.
                    if conn.execute(_COUNT_PLUS_ONE, {"pod": written_by}).rowcount != 1:
                        _add_to_counter(conn, written_by, 1)
                # Every column is known here, stored as given (microsecond
                # timestamps): no SELECT of the new row, one round trip less.
                return {
                    "id": new_id,
                    "author": author,
                    "text": text_,
                    "created_at": _utc(now),
                    "written_by": written_by,
                }
            except OperationalError as exc:
                # A deadlock InnoDB broke (or a lock wait it gave up on)
                # rolled the whole transaction back: run it again.
                code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
                if code not in _RETRYABLE_MYSQL_ERRORS or attempt == _WRITE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")
