"""Spans for the backend's database and Redis calls.

Redis: opentelemetry-instrumentation-redis wraps redis-py's command
execution, a span per command (Lua scripts and pipelines included), with
`db.system` and the server's address. It fits the code as it is.
SQL: backend/db_spans.py, from the engine's cursor events (it says why the
SQLAlchemy instrumentation package is not used). Neither costs anything
unless `instrument` runs, which it does only when tracing is on.

The background loops (dependency pings, idempotency-key clean-up) run with
instrumentation suppressed: a root trace for every health ping, every few
seconds on every pod, would bury the requests' traces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from backend.cache import Cache
from backend.db import Database
from common.tracing import tracer


def instrument(db: Database, cache: Cache) -> None:
    current = tracer()
    if current is None:
        return
    # Imported only when tracing is on (opentelemetry.instrumentation takes
    # about 0.2 s to import, for nothing when there is no collector).
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    from backend.db_spans import trace_statements

    trace_statements(db.engine, current)
    if cache.enabled:
        instrumentor = RedisInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """No spans from the calls made inside (a background loop's)."""
    if tracer() is None:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield
