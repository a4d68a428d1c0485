"""The client span of one try at a backend call, written by BackendClient.send_once.

One span per attempt: a call retried on a fresh connection shows as two
sibling spans under the page's server span, the first with its error, the
second with `http.request.resend_count` 1.

Which pod answered: behind a ClusterIP the socket's peer
(`network.peer.address`) is the ClusterIP itself, not the pod. The node
rewrote the destination of the packets the frontend sent (DNAT), and
conntrack rewrites the replies' source back, so the frontend's socket never
sees the pod's address. The pod names itself in `X-Served-By`, as the route
panel reads it, and the span carries that as `clusterip_demo.served_by`.

Why not opentelemetry-instrumentation-httpx: it wraps the client's
transport and sees the request, not the connection. What this project's
trace is for (which backend pod answered behind the ClusterIP, on a new or a
kept-alive connection) is only known to frontend/transport.py and arrives in
the Attempt this module reads; with the instrumentation it would take a
response hook digging the same facts out of the response's extensions,
after the instrumentation had already built its own span and attributes,
so the hand-written span is both simpler and cheaper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from common.tracing import host_and_port

if TYPE_CHECKING:
    import httpx

    from frontend.transport import ConnectionInfo

_CLIENT = SpanKind.CLIENT


def start(
    tracer: Tracer,
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    resend_count: int = 0,
) -> Span:
    """Start the attempt's span and put its `traceparent` in `headers`.

    `resend_count`: how many tries of the same call came before this one.
    """
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": str(url),
        "server.address": url.host,
    }
    if url.port is not None:
        attributes["server.port"] = url.port
    if resend_count:
        attributes["http.request.resend_count"] = resend_count
    span = tracer.start_span(method, kind=_CLIENT, attributes=attributes)
    propagate.inject(headers, context=trace.set_span_in_context(span))
    return span


def finish(
    span: Span,
    *,
    connection: ConnectionInfo | None,
    new_connection: bool,
    status: int | None,
    error: BaseException | None,
    served_by: str | None = None,
) -> None:
    if connection is not None and (peer := host_and_port(connection.peer)) is not None:
        # The address the socket is connected to: behind a Service, the
        # ClusterIP (the module's docstring says why not the pod's).
        span.set_attribute("network.peer.address", peer[0])
        span.set_attribute("network.peer.port", peer[1])
    if served_by:
        span.set_attribute("clusterip_demo.served_by", served_by)
    span.set_attribute("clusterip_demo.new_connection", new_connection)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_status(StatusCode.ERROR)
            span.set_attribute("error.type", str(status))
    if error is not None:
        span.set_status(StatusCode.ERROR, str(error) or type(error).__name__)
        span.set_attribute("error.type", type(error).__qualname__)
    span.end()
