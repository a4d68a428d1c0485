"""The access log line of every request (common/access_log.py), with the
request id and, when tracing is on, the trace id; the span itself is
FastAPI's own (common/tracing.py), which wraps every middleware."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.access_log import access_log
from common.logging import request_id_var
from common.middleware.headers import status_of
from common.server_span import note_client


class AccessLogMiddleware:
    """The access log line, with the request id and, when tracing, the trace id."""

    def __init__(self, app: ASGIApp, quiet_paths: frozenset[str], tracing: bool) -> None:
        self.app = app
        self._quiet = quiet_paths
        self._tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        trace_id = note_client(scope) if self._tracing else None
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            status = status_of(message, status)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = scope.get("path", "")
            if (path not in self._quiet or status >= 400) and access_log.enabled:
                client = scope.get("client")
                access_log.write(
                    request_id_var.get() or "-",
                    scope["method"],
                    path,
                    status,
                    round((time.perf_counter() - started) * 1000, 2),
                    client[0] if client else None,
                    trace_id,
                )
