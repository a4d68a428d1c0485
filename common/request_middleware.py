"""What both tiers do around every request: one pure ASGI middleware per job
(common/middleware/), stacked here in the order the jobs need.

Outermost first:
- RequestIdMiddleware: takes the X-Request-ID (or makes one) and puts it in
  every log line below it; answers with X-Request-ID, X-Served-By (the pod)
  and Server-Timing, a 413 and a 500 included;
- AccessLogMiddleware: the access log line, with the final status and, when
  tracing is on, the client named on the server span and its trace id;
- RequestMetricsMiddleware: counts the request in the Prometheus metrics;
- ConnectionCloseMiddleware: asks the client to reconnect once its
  connection is older than the max age, or while the pod drains;
- ServerErrorMiddleware: an exception before the answer started is the
  tier's 500, never a traceback;
- BodyLimitMiddleware: a body over `max_body_bytes` is refused with 413;
- HeadAsGetMiddleware: HEAD answered with the GET route and no body.

These jobs were one 94-line function for speed, until issue 27 measured it:
`python -m bench.middleware_cost` (make bench's servers and wrk, the cached
list on MariaDB + Redis) runs this stack, an identical twin of it (the
noise) and the one pass (bench/one_pass_middleware.py) in the same run. On
a shared 2-core machine, six rounds of 5 s: the one pass used x0.980 of this
stack's CPU per request (rounds 0.933-1.030) and served x1.038 its
requests/s (0.952-1.112), while the twin measured x1.027 (0.935-1.062) and
x1.015 (0.923-1.059). The layering's cost, if any, is inside the noise (at
most some 10 µs of 210), so each job has its own middleware.
"""

from __future__ import annotations

from fastapi import FastAPI

from common.body_limit import BodyDrain, Refusal, refuse_too_large
from common.connection_age import ConnectionAges
from common.lifecycle import Lifecycle
from common.metrics import HttpMetrics
from common.middleware.access_logging import AccessLogMiddleware
from common.middleware.body_limit import BodyLimitMiddleware
from common.middleware.connection_close import ConnectionCloseMiddleware
from common.middleware.head import HeadAsGetMiddleware
from common.middleware.headers import HeaderHook
from common.middleware.request_id import RequestIdMiddleware
from common.middleware.request_metrics import RequestMetricsMiddleware
from common.middleware.server_errors import ServerErrorMiddleware
from common.server_error import Failure, answer_internal_error
from common.settings import CommonSettings
from common.tracing import tracer

# The probes' paths: the kubelet asks every few seconds; logged only when they fail.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def install_request_middleware(
    app: FastAPI,
    *,
    settings: CommonSettings,
    lifecycle: Lifecycle,
    metrics: HttpMetrics,
    quiet_paths: frozenset[str] = PROBE_PATHS,
    response_headers: HeaderHook | None = None,
    refusal: Refusal = refuse_too_large,
    failure: Failure = answer_internal_error,
) -> None:
    # add_middleware puts each in front of the ones before: innermost first.
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_drain=BodyDrain(settings.body_drain_max_bytes, settings.body_drain_timeout_seconds),
        refusal=refusal,
    )
    app.add_middleware(ServerErrorMiddleware, failure=failure)
    app.add_middleware(
        ConnectionCloseMiddleware,
        connection_ages=ConnectionAges(
            settings.max_connection_age_seconds, lifecycle, settings.keepalive_timeout_seconds
        ),
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.add_middleware(AccessLogMiddleware, quiet_paths=quiet_paths, tracing=tracer() is not None)
    app.add_middleware(
        RequestIdMiddleware, pod_name=settings.pod_name, response_headers=response_headers
    )
