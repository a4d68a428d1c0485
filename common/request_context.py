"""Per-request bookkeeping: request id, served-by header, timings, access log.

A pure ASGI middleware (not BaseHTTPMiddleware) so it adds no task switch per
request and sees the response headers before they are sent.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import time
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.logging import request_id_var

log = logging.getLogger("access")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(slots=True)
class Timings:
    """Time spent in each dependency during one request, for Server-Timing."""

    spans: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.spans[name] = self.spans.get(name, 0.0) + seconds

    def header(self, total: float) -> bytes:
        parts = [f"{name};dur={secs * 1000:.2f}" for name, secs in self.spans.items()]
        parts.append(f"app;dur={total * 1000:.2f}")
        return ", ".join(parts).encode()


timings_var: contextvars.ContextVar[Timings | None] = contextvars.ContextVar(
    "timings", default=None
)


def record_timing(name: str, seconds: float) -> None:
    timings = timings_var.get()
    if timings is not None:
        timings.add(name, seconds)


def incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            # An id we cannot log safely is replaced, not trusted.
            if _SAFE_REQUEST_ID.match(candidate):
                return candidate
            break
    # 128 random bits as hex, like uuid4().hex without building a UUID object.
    return os.urandom(16).hex()


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, pod_name: str, quiet_paths: frozenset[str]) -> None:
        self.app = app
        self._served_by = pod_name.encode()
        self._quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope)
        rid_token = request_id_var.set(request_id)
        timings = Timings()
        t_token = timings_var.set(timings)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-served-by", self._served_by))
                headers.append((b"server-timing", timings.header(time.perf_counter() - started)))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            if path not in self._quiet_paths or status >= 400:
                client = scope.get("client")
                log.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": path,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "client": client[0] if client else None,
                    },
                )
            request_id_var.reset(rid_token)
            timings_var.reset(t_token)
