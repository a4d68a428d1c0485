"""RequestMiddleware's seven jobs as seven pure ASGI middlewares, starlette's
way, to price the one-pass design (bench/middleware_cost.py measures it).

Bench-only: each class does one job of common/request_middleware.py with
the same helpers, so the difference measured is the layering itself (a
closure and a call per message per layer, a contextvar and a scope copy
where a layer needs one), not different work.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.access_log import access_log
from common.body_limit import BodyDrain, Refusal, declared_length, expects_continue
from common.connection_age import ConnectionAges
from common.logging import request_id_var
from common.metrics import HttpMetrics
from common.request_context import Timings, incoming_request_id, timings_var
from common.request_middleware import HeaderHook, HeaderList, RequestMiddleware
from common.server_error import Failure
from common.server_span import note_client

log = logging.getLogger("errors")


def _status_of(message: Message, current: int) -> int:
    return int(message["status"]) if message["type"] == "http.response.start" else current


class MetricsLayer:
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
            status = _status_of(message, status)
            await send(message)

        self._metrics.in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            self._metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self._metrics.observe(scope["method"], template, status, time.perf_counter() - started)


class AccessLogLayer:
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
            status = _status_of(message, status)
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


class RequestIdLayer:
    """X-Request-ID in, in every log line, and out with X-Served-By and Server-Timing."""

    def __init__(self, app: ASGIApp, pod_name: str, response_headers: HeaderHook | None) -> None:
        self.app = app
        self._served_by = pod_name.encode()
        self._extra_headers = response_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = incoming_request_id(scope)
        timings = Timings()
        rid_token = request_id_var.set(request_id)
        t_token = timings_var.set(timings)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: HeaderList = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-served-by", self._served_by))
                headers.append((b"server-timing", timings.header(time.perf_counter() - started)))
                if self._extra_headers is not None:
                    self._extra_headers(headers)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            request_id_var.reset(rid_token)
            timings_var.reset(t_token)


class ServerErrorLayer:
    """An exception before the answer started becomes the tier's 500."""

    def __init__(self, app: ASGIApp, failure: Failure) -> None:
        self.app = app
        self._failure = failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if started:
                raise
            log.exception("unhandled error")
            await self._failure(scope, sending)


class ConnectionCloseLayer:
    """`Connection: close` once the connection is past its age, or the pod drains."""

    def __init__(self, app: ASGIApp, connection_ages: ConnectionAges) -> None:
        self.app = app
        self._ages = connection_ages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._ages.should_close(scope):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"connection"]
                message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, sending)


class BodyLimitLayer:
    """413 for a body over the limit, declared or counted, after draining it."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, body_drain: BodyDrain, refusal: Refusal
    ) -> None:
        self.app = app
        self._max_body = max_body_bytes
        self._drain = body_drain
        self._refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._max_body
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            if declared <= self._drain.max_bytes and not expects_continue(scope):
                await self._drain.discard(receive)
            await self._refusal(scope, _closing(send), limit)
            return
        received = 0
        refused = False
        response_started = False

        async def sending(message: Message) -> None:
            nonlocal response_started
            if refused:
                return
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        async def receiving() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not response_started and not refused:
                        if message.get("more_body", False):
                            await self._drain.discard(receive)
                        await self._refusal(scope, _closing(send), limit)
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, receiving, sending)


def _closing(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k != b"connection"]
            message["headers"] = [*headers, (b"connection", b"close")]
        await send(message)

    return sending


class HeadLayer:
    """HEAD answered by the GET route, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, sending)


def split(app: FastAPI) -> None:
    """Swap the app's RequestMiddleware for the seven layers, same settings.

    Outermost first, as RequestMiddleware orders the jobs: metrics and the
    access log see the final status; the request id is set for every log
    line below; a 500 or a 413 still gets the request id's headers.
    """
    index, serving = next(
        (i, m) for i, m in enumerate(app.user_middleware) if m.cls is RequestMiddleware
    )
    kw = serving.kwargs
    layers = [
        (MetricsLayer, {"metrics": kw["metrics"]}),
        (AccessLogLayer, {"quiet_paths": kw["quiet_paths"], "tracing": kw.get("tracing", False)}),
        (
            RequestIdLayer,
            {"pod_name": kw["pod_name"], "response_headers": kw.get("response_headers")},
        ),
        (ConnectionCloseLayer, {"connection_ages": kw["connection_ages"]}),
        (ServerErrorLayer, {"failure": kw["failure"]}),
        (
            BodyLimitLayer,
            {
                "max_body_bytes": kw["max_body_bytes"],
                "body_drain": kw["body_drain"],
                "refusal": kw["refusal"],
            },
        ),
        (HeadLayer, {}),
    ]
    # user_middleware lists the outermost first.
    del app.user_middleware[index]
    for offset, (cls, kwargs) in enumerate(layers):
        app.add_middleware(cls, **kwargs)  # type: ignore[arg-type]
        # add_middleware puts each at the front: move it to its place.
        app.user_middleware.insert(index + offset, app.user_middleware.pop(0))
