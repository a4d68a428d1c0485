"""The database: engine, pool, and the queries the API runs.

SQLAlchemy's engine is synchronous (PyMySQL is a blocking driver), so every
call here runs in the thread pool via `Database.run`, which also times it
for Server-Timing and turns connection failures into a 503.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Engine, create_engine, event, func, insert, select, text
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool

from backend.config import BackendSettings
from backend.errors import ApiError, DependencyUnavailable
from backend.models import IdempotencyKey, Message
from common.request_context import record_timing

log = logging.getLogger("db")

T = TypeVar("T")

_messages = Message.__table__
_keys = IdempotencyKey.__table__

DbState = Literal["up", "down", "unknown"]


@dataclass(slots=True)
class CreatedMessage:
    row: dict[str, Any]
    replayed: bool


def _utc(value: datetime) -> str:
    # Stored naive in UTC (SQLite keeps no zone); sent with an explicit Z.
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _row_to_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "author": row.author,
        "text": row.text,
        "created_at": _utc(row.created_at),
        "written_by": row.written_by,
    }


def request_fingerprint(author: str, text_: str) -> str:
    payload = json.dumps([author, text_], ensure_ascii=False).encode()
    return hashlib.sha256(payload).hexdigest()


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
    return create_engine(
        url,
        # pre_ping tests a pooled connection before use, and SQLAlchemy drops
        # the whole pool on a disconnect error: a MySQL restart leaves no
        # dead connection behind. recycle stays under server/proxy idle limits.
        pool_pre_ping=True,
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            # A hung server (not a refused one) must not hold a request forever.
            "read_timeout": settings.db_statement_timeout_seconds,
            "write_timeout": settings.db_statement_timeout_seconds,
        },
    )


class Database:
    def __init__(self, settings: BackendSettings, on_error: Callable[[], None]) -> None:
        self.engine = make_engine(settings)
        self.kind = settings.database_kind
        self.state: DbState = "unknown"
        self.answered_once = False
        self._on_error = on_error

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        try:
            result = await run_in_threadpool(fn, *args)
        except ApiError:
            raise
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            self._mark_down(exc)
            raise DependencyUnavailable("database") from exc
        finally:
            record_timing("db", time.perf_counter() - started)
        self._mark_up()
        return result

    def _mark_up(self) -> None:
        if self.state != "up":
            log.info("database is up", extra={"database": self.describe()})
        self.state = "up"
        self.answered_once = True

    def _mark_down(self, exc: Exception) -> None:
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
        except DependencyUnavailable:
            return False
        except SQLAlchemyError as exc:
            self._mark_down(exc)
            return False
        return True

    def _ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def list_page(self, limit: int, before_id: int | None) -> list[dict[str, Any]]:
        query = select(_messages).order_by(_messages.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(_messages.c.id < before_id)
        with self.engine.connect() as conn:
            return [_row_to_dict(row) for row in conn.execute(query)]

    def get(self, message_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_messages).where(_messages.c.id == message_id)).first()
        return _row_to_dict(row) if row else None

    def stats(self) -> tuple[int, dict[str, int]]:
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(_messages)).scalar_one()
            by_pod = conn.execute(
                select(_messages.c.written_by, func.count()).group_by(_messages.c.written_by)
            ).all()
        return int(total), {pod: int(n) for pod, n in by_pod}

    def create(
        self, author: str, text_: str, written_by: str, idempotency_key: str | None
    ) -> CreatedMessage:
        fingerprint = request_fingerprint(author, text_)
        now = datetime.now(UTC).replace(tzinfo=None)
        if idempotency_key is not None:
            replay = self._replay(idempotency_key, fingerprint)
            if replay is not None:
                return replay
        try:
            # One transaction for the row and its key: either both exist or
            # neither, so a retry after a lost response never makes a second row.
            with self.engine.begin() as conn:
                new_id = conn.execute(
                    insert(_messages).values(
                        author=author, text=text_, created_at=now, written_by=written_by
                    )
                ).inserted_primary_key[0]
                if idempotency_key is not None:
                    conn.execute(
                        insert(_keys).values(
                            key=idempotency_key,
                            request_hash=fingerprint,
                            message_id=new_id,
                            created_at=now,
                        )
                    )
                row = conn.execute(select(_messages).where(_messages.c.id == new_id)).one()
        except IntegrityError:
            # The same key committed by a concurrent request between our
            # look-up and our insert: answer with what that one wrote.
            if idempotency_key is None:
                raise
            replay = self._replay(idempotency_key, fingerprint)
            if replay is None:
                raise
            return replay
        return CreatedMessage(row=_row_to_dict(row), replayed=False)

    def _replay(self, key: str, fingerprint: str) -> CreatedMessage | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(_keys.c.request_hash, _messages)
                .join(_messages, _messages.c.id == _keys.c.message_id)
                .where(_keys.c.key == key)
            ).first()
        if found is None:
            return None
        if found.request_hash != fingerprint:
            raise ApiError(
                409,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different message",
            )
        return CreatedMessage(row=_row_to_dict(found), replayed=True)

    def dispose(self) -> None:
        self.engine.dispose()
