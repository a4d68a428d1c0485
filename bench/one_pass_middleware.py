"""The benchmark's foil for common/request_middleware.py: the request
middleware's seven jobs in one pure ASGI middleware, as both tiers ran them
until issue 27 (bench/middleware_cost.py compares the two).

One pass instead of a stack of wrappers was kept for speed: each layer of
ASGI middleware costs a closure and a call per message. Per request it
- takes the X-Request-ID (or makes one) and puts it in every log line;
- refuses a body over `max_body_bytes` with 413, counting chunked bodies,
  after reading what is left of it (within a bound), as nginx does: a client
  that writes its whole body before reading then gets the 413, not a reset;
- answers HEAD with the GET route and no body, wherever GET works;
- answers with X-Request-ID, X-Served-By (the pod) and Server-Timing;
- asks the client to reconnect (`Connection: close`) once its connection is
  older than the max age, or while the pod drains;
- counts the request in the Prometheus metrics and writes the access log;
- when tracing is on, names the client on the request's server span and puts
  its trace id in the access log. The span itself is FastAPI's own (see
  common/tracing.py): it wraps this middleware, so it is current here.

Why `__call__` repeats what common/middleware/ does (the body count, the
access line, the metrics): it is the baseline being measured, one function
whose jobs share one `send` wrapper and one `receive` wrapper. Calling the
layered middlewares' pieces per message would make it another shape and
price something else. What costs nothing per message is shared instead:
the request id and response headers come from RequestIdMiddleware (this
class extends it), the header types and the body-limit helpers from common/.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.access_log import access_log
from common.body_limit import (
    BodyDrain,
    Refusal,
    declared_length,
    expects_continue,
    refuse_too_large,
)
from common.connection_age import ConnectionAges
from common.logging import request_id_var
from common.metrics import HttpMetrics
from common.middleware.headers import HeaderHook, HeaderList
from common.middleware.request_id import RequestIdMiddleware
from common.request_context import Timings, timings_var
from common.server_error import Failure, answer_internal_error
from common.server_span import note_client

log = logging.getLogger("errors")


class RequestMiddleware(RequestIdMiddleware):
    def __init__(
        self,
        app: ASGIApp,
        *,
        pod_name: str,
        metrics: HttpMetrics,
        connection_ages: ConnectionAges,
        max_body_bytes: int,
        quiet_paths: frozenset[str],
        body_drain: BodyDrain,
        response_headers: HeaderHook | None = None,
        refusal: Refusal = refuse_too_large,
        failure: Failure = answer_internal_error,
        tracing: bool = False,
    ) -> None:
        super().__init__(app, pod_name, response_headers)
        self._failure = failure
        self._tracing = tracing
        self._metrics = metrics
        self._ages = connection_ages
        self._max_body = max_body_bytes
        self._quiet = quiet_paths
        self._drain = body_drain
        self._refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        trace_id = note_client(scope) if self._tracing else None
        request_id = self.request_id(scope)
        rid_token = request_id_var.set(request_id)
        timings = Timings()
        t_token = timings_var.set(timings)
        close = self._ages.should_close(scope)
        head = scope["method"] == "HEAD"
        # The routes see a GET; the server (and our metrics) still see HEAD.
        app_scope = {**scope, "method": "GET"} if head else scope
        self._metrics.in_flight.inc()
        status = 500
        response_started = False
        refused = False
        refusing = False
        received = 0
        limit = self._max_body

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if refused:
                return
            if head and message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers: HeaderList = list(message.get("headers", ()))
                if close or refusing:
                    headers = [(k, v) for k, v in headers if k.lower() != b"connection"]
                    headers.append((b"connection", b"close"))
                self.identify(headers, request_id, timings, started)
                if self._extra_headers is not None:
                    self._extra_headers(headers)
                message["headers"] = headers
            await send(message)

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not response_started and not refused:
                        if message.get("more_body", False):
                            await self._drain.discard(receive)
                        await send_wrapper_413()
                    refused = True
                    # The app sees the client go away and stops reading.
                    return {"type": "http.disconnect"}
            return message

        async def send_wrapper_413() -> None:
            nonlocal refusing
            refusing = True  # the connection closes after a refusal
            # Through send_wrapper, so a 413 carries the same headers as any answer.
            await self._refusal(app_scope, send_wrapper, limit)

        try:
            declared = declared_length(scope)
            if declared is not None and declared > limit:
                # A client waiting for `100 Continue` has not sent the body:
                # nothing to read, and reading would invite it to send.
                if declared <= self._drain.max_bytes and not expects_continue(scope):
                    await self._drain.discard(receive)
                await send_wrapper_413()
            else:
                await self.app(app_scope, limited_receive, send_wrapper)
        except Exception:
            if response_started or refused:
                raise  # half an answer is out: nothing left to dress
            log.exception("unhandled error")
            await self._failure(app_scope, send_wrapper)
        finally:
            self._metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            route = app_scope.get("route")
            # The template, not the raw path: /api/messages/{id} is one series,
            # and a scan of random URLs cannot blow up the label set.
            template = getattr(route, "path", None) or "unmatched"
            self._metrics.observe(scope.get("method", ""), template, status, elapsed)
            path = scope.get("path", "")
            if (path not in self._quiet or status >= 400) and access_log.enabled:
                client = scope.get("client")
                access_log.write(
                    request_id,
                    scope.get("method", ""),
                    path,
                    status,
                    round(elapsed * 1000, 2),
                    client[0] if client else None,
                    trace_id,
                )
            request_id_var.reset(rid_token)
            timings_var.reset(t_token)


def one_pass(app: FastAPI) -> None:
    """Swap the app's request middleware stack for this one pass, same settings."""
    layers = [m for m in app.user_middleware if m.cls.__module__.startswith("common.middleware.")]
    app.user_middleware[:] = [m for m in app.user_middleware if m not in layers]
    # The layers' settings, taken together, are this one's, name for name.
    settings: dict[str, Any] = {name: v for m in layers for name, v in m.kwargs.items()}
    app.add_middleware(RequestMiddleware, **settings)
