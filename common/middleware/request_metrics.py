"""The Prometheus request metrics: in flight, then method, route template,
status and duration of every request."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.metrics import HttpMetrics
from common.middleware.headers import status_of


class RequestMetricsMiddleware:
    """Counts the request: in flight, then method, route template, status, time."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            status = status_of(message, status)
            await send(message)

        self._metrics.in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            self._metrics.in_flight.dec()
            route = scope.get("route")
            # The template, not the raw path: /api/messages/{id} is one series,
            # and a scan of random URLs cannot blow up the label set.
            template = getattr(route, "path", None) or "unmatched"
            self._metrics.observe(scope["method"], template, status, time.perf_counter() - started)
