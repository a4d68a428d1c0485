"""The database engine and its health: the pool, whether it answers, and
the worker threads every query runs in.

SQLAlchemy's engine is synchronous (PyMySQL is a blocking driver), so every
query (backend/queries.py, backend/idempotency.py) runs in the thread pool
via `Database.run`, which also times it for Server-Timing and turns
connection failures into DatabaseUnavailable (a 503 naming the database).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from anyio import CapacityLimiter, to_thread
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from backend.config import BackendSettings
from backend.data_errors import DatabaseUnavailable, DataError
from common.request_context import record_timing

log = logging.getLogger("db")

T = TypeVar("T")

DbState = Literal["up", "down", "unknown"]


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
        # the pool. Writes ask for a real transaction (see `transaction`).
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

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
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

    def dispose(self) -> None:
        self.engine.dispose()
