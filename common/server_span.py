"""What the request middleware adds to the server span FastAPI opens for each request.

FastAPI (0.1xx and later) traces requests itself when a tracer provider is
configured: a server span with the semantic-convention attributes, the
route template, the status, W3C `traceparent` / `tracestate` taken from the
request. It sits in `FastAPI.__call__`, around the middleware stack, so it
adds no middleware layer. That is why opentelemetry-instrumentation-asgi
(and -fastapi) are not used: either would be a second server span for the
same request, and another ASGI wrapper on the hot path the request
middleware exists to keep to one pass. FastAPI's span leaves out who the
client was; the middleware adds it here.
"""

from __future__ import annotations

from opentelemetry import trace
from starlette.types import Scope

from common.tracing import trace_id_of


def note_client(scope: Scope) -> str | None:
    """Name the client on the current server span; return the span's trace id."""
    span = trace.get_current_span()
    client = scope.get("client")
    if client and span.is_recording():
        span.set_attribute("client.address", client[0])
        span.set_attribute("network.peer.address", client[0])
        span.set_attribute("network.peer.port", client[1])
    return trace_id_of(span)
