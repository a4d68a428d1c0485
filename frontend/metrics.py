"""The frontend's own metrics beside the HTTP ones: its calls to the backend."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from common.metrics import HttpMetrics

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FrontendMetrics:
    def __init__(self, http: HttpMetrics) -> None:
        self.calls = Counter(
            "backend_calls_total",
            "Tries at calls to the backend, by method and the status answered (or failed).",
            ["method", "status"],
            registry=http.registry,
        )
        self.call_duration = Histogram(
            "backend_call_duration_seconds",
            "Time from sending a try at a call to the backend to its last byte.",
            ["method"],
            buckets=_BUCKETS,
            registry=http.registry,
        )
        self.retries = Counter(
            "backend_retries_total",
            "Calls retried on a new connection after their connection died.",
            registry=http.registry,
        )
        # Each new connection is a fresh pick of a backend pod by kube-proxy.
        self.connections_opened = Counter(
            "backend_connections_opened_total",
            "TCP connections opened to the backend Service.",
            registry=http.registry,
        )
