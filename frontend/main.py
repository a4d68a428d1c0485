"""The frontend app: built by `create_app`, with everything it holds made in the lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from common.gc_tuning import settle_heap
from common.lifecycle import Lifecycle
from common.request_middleware import install_request_middleware
from common.tier import tier_basics
from common.tracing import fastapi_telemetry, tracer
from common.version import VERSION
from frontend.app_state import AppState
from frontend.backend_client import BackendClient
from frontend.compression import CompressPages
from frontend.config import SERVICE_NAME, FrontendSettings
from frontend.edge_trace import EdgeFastAPI, install_edge_propagator, parse_networks
from frontend.errors import answer_internal_error, install_error_handlers, refuse_too_large
from frontend.metrics import FrontendMetrics
from frontend.pods import PodDirectory
from frontend.routes import api, health, pages
from frontend.security import add_security_headers
from frontend.spread_limits import SpreadGate
from frontend.static_files import VersionedStaticFiles, content_versions
from frontend.templating import create_templates

log = logging.getLogger("frontend")


def create_app(
    settings: FrontendSettings | None = None,
    lifecycle: Lifecycle | None = None,
    backend_client: type[BackendClient] = BackendClient,
) -> FastAPI:
    """The app; `backend_client` lets bench/per_request.py swap in its foil."""
    settings = settings or FrontendSettings()
    lifecycle, identity, http_metrics = tier_basics(SERVICE_NAME, settings, lifecycle)
    frontend_metrics = FrontendMetrics(http_metrics)
    static_versions = content_versions()
    templates = create_templates(static_versions)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The one HTTP client (and its connection pool) of this process.
        backend = backend_client(settings, frontend_metrics)
        pods = PodDirectory()
        app.state.app_state = AppState(
            settings,
            identity,
            lifecycle,
            backend,
            pods,
            templates,
            spread_gate=SpreadGate(settings.spread_concurrency),
        )
        settle_heap()
        log.info(
            "frontend starting", extra={"backend_url": settings.backend_url, **identity.as_dict()}
        )
        try:
            yield
        finally:
            await pods.settle()
            await backend.aclose()
            log.info("frontend stopped")

    trusted = parse_networks(settings.trace_trusted_proxies)
    if tracer() is not None:
        # The public edge: an incoming traceparent becomes a link, not a parent.
        install_edge_propagator(trusted)
    app = EdgeFastAPI(
        trusted_peers=bool(trusted) and tracer() is not None,
        title="clusterip-demo frontend",
        version=VERSION,
        summary="The guestbook page, and how it reaches the `backend` ClusterIP Service",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),
        # The interactive docs load scripts from a CDN, which the page's
        # Content-Security-Policy forbids; /openapi.json stays for scripts.
        docs_url=None,
        redoc_url=None,
    )
    # Read by the error handlers, which may run for a request no route took.
    app.state.metrics = http_metrics
    app.state.templates = templates
    app.state.identity = identity
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(api.spread_router(settings))
    app.mount("/static", VersionedStaticFiles(static_versions), name="static")
    # Inside the serving middleware: its headers and HEAD handling see the
    # compressed response, so HEAD's Content-Length is the one GET sends.
    app.add_middleware(CompressPages)
    install_request_middleware(
        app,
        settings=settings,
        lifecycle=lifecycle,
        metrics=http_metrics,
        # Pages get their security headers on every response, errors too.
        response_headers=add_security_headers,
        # A form post over the limit gets a page, like any other error there.
        refusal=refuse_too_large,
        # A 500 too is a page (or JSON under /api/), with the same headers.
        failure=answer_internal_error,
    )
    return app


def run() -> None:
    from common.uvicorn_runner import run_tier

    # httpx logs every backend call at INFO; the access log (here and in the
    # backend, joined by X-Request-ID) and the backend_calls metrics say it
    # already, and a line per call would cost as much as writing the page.
    settings = FrontendSettings()
    run_tier(SERVICE_NAME, settings, create_app, quiet_loggers=("httpx",))
