"""Prometheus metrics, one registry per app (created with the app, not global).

common/metrics_server.py serves the registry on the scrape port.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from common.identity import PodIdentity

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    def __init__(self, identity: PodIdentity) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "Requests being served now.", registry=self.registry
        )
        info = Gauge(
            "app_info",
            "Constant 1, labelled with what this process is.",
            ["service", "version", "pod"],
            registry=self.registry,
        )
        info.labels(identity.service, identity.version, identity.pod_name).set(1)
        # labels() takes a lock and builds a key on every call; the set of
        # (method, route, status) seen is small and bounded by the routes.
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        counter = self._request_children.get((method, route, status))
        if counter is None:
            counter = self.requests.labels(method, route, str(status))
            self._request_children[(method, route, status)] = counter
        counter.inc()
        histogram = self._latency_children.get((method, route))
        if histogram is None:
            histogram = self.latency.labels(method, route)
            self._latency_children[(method, route)] = histogram
        histogram.observe(seconds)
