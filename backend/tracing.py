"""Spans for the backend's database and Redis calls.

Redis: opentelemetry-instrumentation-redis wraps redis-py's command
execution, a span per command (Lua scripts and pipelines included), with
`db.system.name` and the server's address. It fits the code as it is. It
writes the stable semantic conventions only when OTEL_SEMCONV_STABILITY_OPT_IN
asks for them (the old `db.statement`, `net.peer.name` otherwise), and reads
that variable once, on first use: `instrument` sets it first, so the traces
carry the stable names whatever the pod's environment says (a `database/dup`
there would add the old names back beside them). Hooks add what the
instrumentation leaves out: the command as `db.operation.name` (a pipeline,
many commands, has none) and the database index as `db.namespace`.
SQL: backend/db_spans.py, from the engine's cursor events (it says why the
SQLAlchemy instrumentation package is not used). Neither costs anything
unless `instrument` runs, which it does only when tracing is on.

The background loops (dependency pings, idempotency-key clean-up) run with
instrumentation suppressed: a root trace for every health ping, every few
seconds on every pod, would bury the requests' traces.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from backend.cache import Cache
from backend.database import Database
from common.tracing import tracer

if TYPE_CHECKING:
    from opentelemetry.trace import Span

# The stable database and HTTP conventions, without the old names (`/dup`).
STABLE_SEMCONV = "database,http"


def instrument(db: Database, cache: Cache) -> None:
    current = tracer()
    if current is None:
        return
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = STABLE_SEMCONV  # before any instrumentor
    # Imported only when tracing is on (opentelemetry.instrumentation takes
    # about 0.2 s to import, for nothing when there is no collector).
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    from backend.db_spans import trace_statements

    trace_statements(db.engine, current)
    if cache.enabled:
        instrumentor = RedisInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(
                request_hook=_name_the_command, response_hook=_name_the_database
            )


def _name_the_command(span: Span, client: Any, args: Sequence[Any], kwargs: Any) -> None:
    if args and span.is_recording():
        span.set_attribute("db.operation.name", str(args[0]))
        _name_the_database(span, client, None)


def _name_the_database(span: Span, client: Any, response: Any) -> None:
    # Pipelines reach only this hook, after their reply; commands both, so a
    # command that fails still has it.
    if span.is_recording():
        pool_kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
        span.set_attribute("db.namespace", str(pool_kwargs.get("db") or 0))


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """No spans from the calls made inside (a background loop's)."""
    if tracer() is None:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield
