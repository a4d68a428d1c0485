"""`python -m backend.migrate`: bring the schema to head, once per rollout.

Every backend pod runs this as an init container. On MySQL a named lock
(GET_LOCK) makes them take turns: the first upgrades, the others wait, then
find the schema at head and do nothing. It waits for the database to accept
connections first, since on a fresh install MySQL starts after the backend.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from backend.config import SERVICE_NAME, BackendSettings, load_settings
from common.logging import configure_logging

log = logging.getLogger("migrate")

LOCK_NAME = "clusterip-demo:migrate"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    log.info(
        "database not reachable yet, retrying",
        extra={
            "error": str(getattr(exc, "orig", None) or exc),
            "attempt": state.attempt_number,
            "retry_in_s": round(state.upcoming_sleep, 1),
        },
    )


def _connect_with_retry(settings: BackendSettings, wait_seconds: float) -> Connection:
    """A connection, retried with backoff (0.5 s doubling to 5 s) for at most
    `wait_seconds`; then the last error is raised as it was."""
    engine = create_engine(settings.sqlalchemy_url, poolclass=NullPool)
    retrying = Retrying(
        retry=retry_if_exception_type(OperationalError),
        stop=stop_after_delay(wait_seconds),
        wait=wait_exponential(multiplier=0.5, max=5.0),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(engine.connect)


def upgrade(settings: BackendSettings, wait_seconds: float = 120.0, revision: str = "head") -> None:
    if settings.database_kind == "sqlite":
        database = settings.sqlalchemy_url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    conn = _connect_with_retry(settings, wait_seconds)
    try:
        locked = conn.dialect.name in ("mysql", "mariadb")
        if locked:
            got = conn.execute(
                text("SELECT GET_LOCK(:name, :timeout)"), {"name": LOCK_NAME, "timeout": 300}
            ).scalar()
            if got != 1:
                raise RuntimeError(f"could not take the migration lock {LOCK_NAME!r}")
        try:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()
        finally:
            if locked:
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
    finally:
        conn.close()


def main() -> int:
    settings = load_settings()
    configure_logging(settings.log_level, settings.pod_name, f"{SERVICE_NAME}-migrate")
    database = settings.sqlalchemy_url.render_as_string(hide_password=True)
    log.info("migrating to head", extra={"database": database})
    try:
        upgrade(settings)
    except Exception:
        log.exception("migration failed")
        return 1
    log.info("schema at head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
