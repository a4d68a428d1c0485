"""The backend with production features switched off, to price each one.

Two features have a real production switch and need nothing here: the
access log (`LOG_LEVEL=WARNING`) and the connection-age check
(`MAX_CONNECTION_AGE_SECONDS=0`). The other two have none, on purpose, so
this bench-only factory builds the real backend app and swaps a part of its
serving middleware before the first request:

- `no-metrics`: the Prometheus request counter, histogram and in-flight gauge
  become no-ops;
- `no-request-id`: no X-Request-ID made or sent, no X-Served-By, no
  Server-Timing;
- `one-pass`: the request middleware's jobs in one middleware
  (bench/one_pass_middleware.py), priced by bench/middleware_cost.py.

`BENCH_VARIANT=no-metrics,no-request-id python -m bench.variants`
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from starlette.types import Scope

from backend.config import SERVICE_NAME, BackendSettings
from backend.main import create_app
from bench.one_pass_middleware import one_pass
from common.lifecycle import Lifecycle
from common.logging import configure_logging
from common.middleware.headers import HeaderList
from common.middleware.request_id import RequestIdMiddleware
from common.middleware.request_metrics import RequestMetricsMiddleware
from common.request_context import Timings
from common.uvicorn_runner import serve

VARIANTS = frozenset({"no-metrics", "no-request-id", "one-pass"})


class _NoOp:
    def inc(self) -> None:
        pass

    def dec(self) -> None:
        pass


class NullMetrics:
    in_flight = _NoOp()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        pass


class AnonymousServing(RequestIdMiddleware):
    def request_id(self, scope: Scope) -> str:
        return "-"

    def identify(
        self, headers: HeaderList, request_id: str, timings: Timings, started: float
    ) -> None:
        pass


def switch_off(app: FastAPI, variants: set[str]) -> None:
    unknown = variants - VARIANTS
    if unknown:
        raise SystemExit(f"unknown BENCH_VARIANT {sorted(unknown)}; known: {sorted(VARIANTS)}")
    if "no-metrics" in variants:
        counting = next(m for m in app.user_middleware if m.cls is RequestMetricsMiddleware)
        counting.kwargs["metrics"] = NullMetrics()
    if "no-request-id" in variants:
        naming = next(m for m in app.user_middleware if m.cls is RequestIdMiddleware)
        naming.cls = AnonymousServing
    if "one-pass" in variants:
        one_pass(app)


def main() -> None:
    variants = {v for v in os.environ.get("BENCH_VARIANT", "").split(",") if v}
    settings = BackendSettings()
    configure_logging(settings.log_level, settings.pod_name, SERVICE_NAME)
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle)
    switch_off(app, variants)
    serve(app, lifecycle, settings, settings.port)


if __name__ == "__main__":
    main()
