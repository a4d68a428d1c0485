"""OpenTelemetry tracing, configured only by the standard `OTEL_*` variables.

Tracing is on when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and `OTEL_SDK_DISABLED` is not true.
Otherwise nothing is set up, the SDK is not even imported, and every hook in
the request path is one `is None` test: that is the "negligible" of
docs/benchmarks.md.

When on, spans leave through a BatchSpanProcessor: a request only appends
its finished spans to a bounded in-memory queue (`OTEL_BSP_MAX_QUEUE_SIZE`,
2048), and a background thread exports them. A collector that is down or
slow costs dropped spans, never a failed or slower request. The export
timeout defaults to 2 s here instead of the specification's 10 s, so that a
dead collector holds the exporting thread (and a shutdown's final flush)
only briefly; `OTEL_EXPORTER_OTLP_TIMEOUT` / `OTEL_BSP_EXPORT_TIMEOUT` still
win when set. The sampler is the SDK's: `OTEL_TRACES_SAMPLER` (default
`parentbased_always_on`) and `OTEL_TRACES_SAMPLER_ARG`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.trace import Tracer

    from common.identity import PodIdentity
    from common.settings import CommonSettings

EXPORT_TIMEOUT_SECONDS = 2.0
_TRUE = {"true", "1", "yes", "on"}

_tracer: Tracer | None = None


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def tracing_wanted() -> bool:
    """What the `OTEL_*` variables ask for: an endpoint, and the SDK not disabled."""
    if (_env("OTEL_SDK_DISABLED") or "").lower() in _TRUE:
        return False
    if (_env("OTEL_TRACES_EXPORTER") or "otlp").lower() == "none":
        return False
    return _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT") is not None


def configure_tracing(identity: PodIdentity, settings: CommonSettings) -> Tracer | None:
    """Install the SDK's tracer provider for this process, if the variables ask for one.

    The resource names the pod the way the Downward API does (POD_NAME,
    NODE_NAME, POD_NAMESPACE, and the rest of `resource_attributes`);
    `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` override what is
    derived here.
    """
    global _tracer
    if not tracing_wanted():
        _tracer = None
        return None
    # Imported only when tracing is on: the SDK and the exporter (protobuf,
    # requests) are a few megabytes of memory a pod without a collector saves.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = resource_attributes(identity, settings)
    # The environment's attributes are merged last, so they win.
    resource = Resource.create(attributes).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    timeout = (
        None
        if _env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
        else EXPORT_TIMEOUT_SECONDS
    )
    export_timeout_ms = None if _env("OTEL_BSP_EXPORT_TIMEOUT") else EXPORT_TIMEOUT_SECONDS * 1000
    exporter = OTLPSpanExporter(timeout=timeout)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, export_timeout_millis=export_timeout_ms)
    )
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("clusterip-demo", identity.version)
    return _tracer


def resource_attributes(identity: PodIdentity, settings: CommonSettings) -> dict[str, str]:
    """Who sends the spans, in the stable semantic conventions' resource attributes."""
    attributes = {
        "service.name": identity.service,
        "service.namespace": settings.service_namespace,
        "service.version": identity.version,
        "service.instance.id": identity.pod_name,
        "deployment.environment.name": settings.deployment_environment,
        "k8s.namespace.name": settings.pod_namespace,
        "k8s.deployment.name": settings.k8s_deployment_name,
        "k8s.pod.name": identity.pod_name,
        "k8s.container.name": settings.k8s_container_name,
        "k8s.node.name": identity.node_name,
    }
    # An empty value says nothing true (outside Kubernetes there is no deployment).
    return {name: value for name, value in attributes.items() if value}


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's own request tracing: the server span of every request, or nothing.

    Its request metrics and log records are off: the Prometheus metrics and
    the JSON logs say the same already. So are its operation spans
    (dependencies, endpoint, serialization): three more spans per request,
    on every request, for little a reader of this app's traces needs. With
    tracing off every part is off, and FastAPI skips its telemetry after one
    test per request.
    """
    return {
        "tracing": _tracer is not None,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "auto_configure": False,  # configure_tracing is the one place that exports
    }


def tracer() -> Tracer | None:
    """This process's tracer, or None when tracing is off (the hot paths test for None)."""
    return _tracer


def trace_id_of(span: trace.Span) -> str | None:
    context = span.get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def current_trace_id() -> str | None:
    """The trace id of the span this code runs in, as 32 hex digits, or None."""
    return trace_id_of(trace.get_current_span())


def host_and_port(address: Iterable[object] | None) -> tuple[str, int] | None:
    """`(host, port, ...)` as a socket reports it → (host, port)."""
    if address is None:
        return None
    parts = list(address)
    if len(parts) < 2 or not isinstance(parts[1], int):
        return None
    return str(parts[0]), parts[1]
