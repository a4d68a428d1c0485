"""What the request middleware adds to the server span FastAPI opens for each request.

FastAPI (0.1xx and later) traces requests itself when a tracer provider is
configured: a server span with the semantic-convention attributes, the
route template, the status, W3C `traceparent` / `tracestate` taken from the
request. It sits in `FastAPI.__call__`, around the middleware stack, so it
adds no middleware layer. That is why opentelemetry-instrumentation-asgi
(and -fastapi) are not used: either would be a second server span for the
same request, and another ASGI wrapper on the hot path the request
middleware exists to keep to one pass. FastAPI's span leaves out who the
client was; the middleware adds it here, and the link to a context the
request came with that was not trusted as a parent (frontend/edge_trace.py).
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from starlette.types import Scope

from common.tracing import trace_id_of

# Where an edge propagator leaves the incoming span context it did not trust.
INCOMING_TRACE = otel_context.create_key("clusterip-demo.incoming-trace")


def note_client(scope: Scope) -> str | None:
    """Name the client on the current server span; return the span's trace id."""
    span = trace.get_current_span()
    client = scope.get("client")
    if span.is_recording():
        if client:
            span.set_attribute("client.address", client[0])
            span.set_attribute("network.peer.address", client[0])
            span.set_attribute("network.peer.port", client[1])
        incoming = otel_context.get_value(INCOMING_TRACE)
        if isinstance(incoming, trace.SpanContext):
            span.add_link(incoming, {"link.reason": "untrusted incoming traceparent"})
    return trace_id_of(span)
