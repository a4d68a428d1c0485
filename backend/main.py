"""The backend app: built by `create_app`, with everything it holds made in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI

from backend.api_errors import install_error_handlers
from backend.app_state import AppState
from backend.cache import Cache
from backend.config import SERVICE_NAME, BackendSettings, load_settings
from backend.data_errors import DatabaseUnavailable
from backend.database import Database
from backend.metrics import BackendMetrics
from backend.routes import health, info, messages
from backend.tracing import instrument, untraced
from common.gc_tuning import settle_heap
from common.lifecycle import Lifecycle
from common.request_middleware import install_request_middleware
from common.tier import tier_basics
from common.tracing import fastapi_telemetry
from common.version import VERSION

log = logging.getLogger("backend")


async def _watch_dependencies(app_state: AppState) -> None:
    """Keep the database and Redis states fresh without waiting for traffic.

    Until the database has answered once the pod stays unready, so poll fast
    then; afterwards a slower beat keeps /readyz and /api/info honest and
    lets a recovered Redis be noticed with no request needing it.
    """
    interval = app_state.settings.health_interval_seconds
    with untraced():
        while True:
            await app_state.db.ping()
            if app_state.cache.enabled:
                await app_state.cache.ping()
            await asyncio.sleep(interval if app_state.db.answered_once else min(interval, 0.25))


async def _expire_idempotency_keys(app_state: AppState) -> None:
    """Delete expired Idempotency-Keys, a bounded batch per pass.

    Each pass is its own short statement pair on a pooled connection, never
    inside a write's transaction. A full batch means more are waiting, so the
    next pass comes after a short pause instead of the whole interval.
    """
    settings = app_state.settings
    retention = timedelta(seconds=settings.idempotency_key_retention_seconds)
    batch = settings.idempotency_cleanup_batch
    with untraced():
        while True:
            deleted = 0
            try:
                deleted = await app_state.db.run(app_state.keys.expire_keys, retention, batch)
            except DatabaseUnavailable:
                pass  # the database watcher reports it; try again next pass
            except Exception:
                log.exception("idempotency key clean-up failed")
            if deleted:
                log.info("expired idempotency keys deleted", extra={"deleted": deleted})
            interval = settings.idempotency_cleanup_interval_seconds
            await asyncio.sleep(min(1.0, interval) if deleted >= batch else interval)


def create_app(
    settings: BackendSettings | None = None, lifecycle: Lifecycle | None = None
) -> FastAPI:
    settings = settings or BackendSettings()
    lifecycle, identity, http_metrics = tier_basics(SERVICE_NAME, settings, lifecycle)
    backend_metrics = BackendMetrics(http_metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings, on_error=backend_metrics.db_error)
        cache = Cache(settings, on_result=backend_metrics.cache_result)
        app_state = AppState(settings, identity, lifecycle, db, cache)
        instrument(db, cache)
        app.state.app_state = app_state
        log.info(
            "backend starting",
            extra={"database": db.describe(), "redis": cache.describe(), **identity.as_dict()},
        )
        settle_heap()
        tasks = [
            asyncio.create_task(_watch_dependencies(app_state), name="dependency-watch"),
            asyncio.create_task(_expire_idempotency_keys(app_state), name="key-expiry"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await cache.close()
            db.dispose()
            log.info("backend stopped")

    app = FastAPI(
        title="clusterip-demo backend",
        version=VERSION,
        summary="The guestbook API behind the `backend` ClusterIP Service",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),
    )
    app.state.metrics = http_metrics
    install_error_handlers(app)
    # Routes are matched in order: the guestbook's, which carry nearly all
    # traffic, first (probes come every few seconds, not per request).
    app.include_router(messages.router)
    app.include_router(info.router)
    app.include_router(health.router)
    install_request_middleware(app, settings=settings, lifecycle=lifecycle, metrics=http_metrics)
    return app


def run() -> None:
    from common.uvicorn_runner import run_tier

    settings = load_settings()
    run_tier(SERVICE_NAME, settings, create_app)
