"""The backend's own metrics beside the HTTP ones: cache results and database errors."""

from __future__ import annotations

from prometheus_client import Counter

from common.metrics import HttpMetrics


class BackendMetrics:
    def __init__(self, http: HttpMetrics) -> None:
        self.cache = Counter(
            "cache_requests_total",
            "Cache look-ups by result (hit, miss, error).",
            ["result"],
            registry=http.registry,
        )
        self.db_errors = Counter(
            "db_errors_total",
            "Database calls that failed for want of a working connection.",
            registry=http.registry,
        )
        # labels() takes a lock and builds a key on every call: look each
        # child up once (every cached read counts one).
        self._cache_children = {r: self.cache.labels(r) for r in ("hit", "miss", "error")}

    def cache_result(self, result: str) -> None:
        self._cache_children[result].inc()

    def db_error(self) -> None:
        self.db_errors.inc()
