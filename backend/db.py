"""The database: engine, pool, and the queries the API runs.

SQLAlchemy's engine is synchronous (PyMySQL is a blocking driver), so every
call here runs in the thread pool via `Database.run`, which also times it
for Server-Timing and turns connection failures into a 503.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from anyio import CapacityLimiter, to_thread
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from backend.config import BackendSettings
from backend.dataerrors import DatabaseUnavailable, DataError, IdempotencyKeyReused
from backend.models import IdempotencyKey, Message, MessageCount
from common.request_context import record_timing

log = logging.getLogger("db")

T = TypeVar("T")

# The declarative base types __table__ as any FromClause; these are Tables.
_messages = cast(Table, Message.__table__)
_keys = cast(Table, IdempotencyKey.__table__)
_counts = cast(Table, MessageCount.__table__)

# The page queries, built once: putting a Select together on every call
# cost about as much as turning its twenty rows into dicts (py-spy).
_FIRST_PAGE = select(_messages).order_by(_messages.c.id.desc()).limit(bindparam("limit"))
_PAGE_BEFORE = _FIRST_PAGE.where(_messages.c.id < bindparam("before_id"))

# The client's own key first; a key from before migration 0003 (no client
# recorded) matches any client until it expires.
_REPLAY = (
    select(_keys.c.request_hash, _messages)
    .join(_messages, _messages.c.id == _keys.c.message_id)
    .where(
        _keys.c.key == bindparam("key"),
        _keys.c.client_id.in_([bindparam("client_id"), bindparam("legacy")]),
    )
    .order_by(_keys.c.client_id.desc())
    .limit(1)
)

# InnoDB's "deadlock found" and "lock wait timeout": the transaction was
# rolled back as a whole, so running it again is safe.
_RETRYABLE_MYSQL_ERRORS = frozenset({1213, 1205})
_WRITE_ATTEMPTS = 3

DbState = Literal["up", "down", "unknown"]


@dataclass(slots=True)
class CreatedMessage:
    row: dict[str, Any]
    replayed: bool


def _utc(value: datetime) -> str:
    # Stored naive in UTC (SQLite keeps no zone); sent with an explicit Z.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def _row_to_dict(row: Any) -> dict[str, Any]:
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


def request_fingerprint(author: str, text_: str) -> str:
    payload = json.dumps([author, text_], ensure_ascii=False).encode()
    return hashlib.sha256(payload).hexdigest()


# A write adds one to its pod's counter with a plain UPDATE, which takes the
# row's exclusive lock at once. An INSERT … ON DUPLICATE KEY UPDATE would first
# take a shared lock for the duplicate check and then upgrade it, and two
# concurrent writers doing that can deadlock (InnoDB rolls one back, and the
# write is retried below). So the row is created ahead of the first
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


def make_engine(settings: BackendSettings) -> Engine:
    url = settings.sqlalchemy_url
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_pre_ping=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            # WAL lets readers run while a write commits; foreign keys are
            # off by default in SQLite.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

        return engine
    engine = create_engine(
        url,
        # Pinging on every checkout costs a round trip per query; instead a
        # connection is pinged only when it has sat idle (see
        # _ping_idle_connections), which is when a MySQL restart or an idle
        # timeout can have killed it. A connection that fails anyway makes
        # SQLAlchemy drop the whole pool, and reads are retried once.
        pool_pre_ping=False,
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        # Reads run in autocommit: a single SELECT needs no transaction, and
        # then a connection needs no ROLLBACK round trip when it goes back to
        # the pool. Writes ask for a real transaction (see `create`).
        isolation_level="AUTOCOMMIT",
        skip_autocommit_rollback=True,
        pool_reset_on_return=None,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            # A hung server (not a refused one) must not hold a request forever.
            "read_timeout": settings.db_statement_timeout_seconds,
            "write_timeout": settings.db_statement_timeout_seconds,
        },
    )
    _ping_idle_connections(engine, settings.db_ping_after_idle_seconds)
    return engine


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Pre-ping, but only connections that have been idle for a while.

    A connection in constant use has just proven itself; one that sat in the
    pool may have been cut by a server restart. Raising DisconnectionError
    from a checkout makes the pool discard it and hand out a fresh one.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            dbapi_conn.ping(False)
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc


class Database:
    def __init__(self, settings: BackendSettings, on_error: Callable[[], None]) -> None:
        self.engine = make_engine(settings)
        # No more threads in the database than connections in the pool: a
        # thread that has to wait for a connection holds a worker for nothing,
        # and overflow connections opened for a burst are closed right after,
        # so a busy pod would reconnect (TLS context and all) over and over.
        self._limiter = CapacityLimiter(settings.db_pool_size + settings.db_max_overflow)
        self.kind = settings.database_kind
        # Errors raised by the driver outside SQLAlchemy's wrapping (rare, but
        # seen while a connection dies mid-handshake) count as "down" too.
        dbapi = self.engine.dialect.loaded_dbapi
        self._unavailable: tuple[type[BaseException], ...] = (
            OperationalError,
            InterfaceError,
            PoolTimeout,
            dbapi.OperationalError,
            dbapi.InterfaceError,
        )
        self.state: DbState = "unknown"
        self.answered_once = False
        self._on_error = on_error
        # Pods whose counter row this process has made sure exists.
        self._counter_rows: set[str] = set()

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    async def run(self, fn: Callable[..., T], *args: Any, retry: bool = False) -> T:
        """Run `fn` in a worker thread; `retry` (reads only) tries once more
        on a fresh connection when the first one turned out to be dead."""
        started = time.perf_counter()
        try:
            try:
                result = await to_thread.run_sync(fn, *args, limiter=self._limiter)
            except (OperationalError, InterfaceError) as exc:
                if not (retry and exc.connection_invalidated):
                    raise
                result = await to_thread.run_sync(fn, *args, limiter=self._limiter)
        except DataError:
            raise
        except self._unavailable as exc:
            self._mark_down(exc)
            raise DatabaseUnavailable() from exc
        finally:
            record_timing("db", time.perf_counter() - started)
        self._mark_up()
        return result

    def _mark_up(self) -> None:
        if self.state != "up":
            log.info("database is up", extra={"database": self.describe()})
        self.state = "up"
        self.answered_once = True

    def _mark_down(self, exc: BaseException) -> None:
        if self.state != "down":
            log.warning(
                "database is down",
                extra={"database": self.describe(), "error": type(exc).__name__},
            )
        self.state = "down"
        self._on_error()

    async def ping(self) -> bool:
        try:
            await self.run(self._ping)
        except DatabaseUnavailable:
            return False
        except SQLAlchemyError as exc:
            self._mark_down(exc)
            return False
        return True

    def _ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def list_page(self, limit: int, before_id: int | None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            if before_id is None:
                rows = conn.execute(_FIRST_PAGE, {"limit": limit})
            else:
                rows = conn.execute(_PAGE_BEFORE, {"limit": limit, "before_id": before_id})
            return [_row_to_dict(row) for row in rows]

    def get(self, message_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_messages).where(_messages.c.id == message_id)).first()
        return _row_to_dict(row) if row else None

    def stats(self) -> tuple[int, dict[str, int]]:
        # One row per pod that ever wrote, kept by `create`: the cost does
        # not grow with the number of messages.
        with self.engine.connect() as conn:
            by_pod = {pod: int(n) for pod, n in conn.execute(select(_counts)).all()}
        return sum(by_pod.values()), by_pod

    def expire_keys(self, retention: timedelta, limit: int) -> int:
        """One bounded clean-up pass, in its own short transaction."""
        cutoff = datetime.now(UTC).replace(tzinfo=None) - retention
        with self.engine.begin() as conn:
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
        now = datetime.now(UTC).replace(tzinfo=None)
        if idempotency_key is not None and not replay_checked:
            replay = self._replay(idempotency_key, client_id, fingerprint)
            if replay is not None:
                return replay
        try:
            row = self._insert(
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

    def _insert(
        self,
        author: str,
        text_: str,
        written_by: str,
        scoped_key: tuple[str, str | None],
        fingerprint: str,
        now: datetime,
    ) -> dict[str, Any]:
        client_id, idempotency_key = scoped_key
        # One transaction for the row, its key and its pod's counter: either
        # all exist or none, so a retry after a lost response never makes a
        # second row and the counts never drift from the rows.
        if written_by not in self._counter_rows:
            with self.engine.begin() as conn:
                _add_to_counter(conn, written_by, 0)
            self._counter_rows.add(written_by)
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self._transaction() as conn:
                    new_id = conn.execute(
                        insert(_messages).values(
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

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                with conn.begin():
                    yield conn
                return
            # The engine is in autocommit for reads; a write opens its own
            # transaction with plain SQL rather than switching the connection's
            # isolation level, which costs round trips on checkout and return.
            conn.exec_driver_sql("START TRANSACTION")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(SQLAlchemyError):
                    conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    def _replay(self, key: str, client_id: str, fingerprint: str) -> CreatedMessage | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                _REPLAY, {"key": key, "client_id": client_id, "legacy": ""}
            ).first()
        if found is None:
            return None
        if found.request_hash != fingerprint:
            raise IdempotencyKeyReused(key)
        return CreatedMessage(row=_row_to_dict(found[1:]), replayed=True)

    def dispose(self) -> None:
        self.engine.dispose()
