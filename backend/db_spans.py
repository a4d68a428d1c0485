"""A client span for each SQL statement the engine sends, from SQLAlchemy's cursor events.

Why not opentelemetry-instrumentation-sqlalchemy: its newest release
declares support for SQLAlchemy below 2.1 and refuses to instrument the
2.1 this project pins (it logs an error and does nothing); forcing it with
`skip_dep_check` would run it where its authors have not. What it does is
small, and done here with the same events: a span when a statement goes to
the server, ended when the cursor returns or the driver raises.

The spans carry the semantic conventions' database attributes: the system
(`db.system.name`, and the older `db.system` most backends still index),
the database (`db.namespace`), the statement as written, with `%s`
placeholders, never the values (`db.query.text`), and the server's address.
They start in a worker thread; anyio runs it in a copy of the request's
context, so each span is a child of the request's server span.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from sqlalchemy import event
from sqlalchemy.engine import Engine

_CLIENT = SpanKind.CLIENT
_SPAN = "_otel_span"  # where the open span waits on the execution context


def _operation(statement: str) -> str:
    word = statement.lstrip().split(None, 1)
    return word[0].upper() if word else "SQL"


def trace_statements(engine: Engine, tracer: Tracer) -> None:
    url = engine.url
    system = engine.dialect.name  # "mysql" (MariaDB too, as MySQL speaks) or "sqlite"
    base: dict[str, str | int] = {"db.system.name": system, "db.system": system}
    if url.database:
        base["db.namespace"] = url.database
    if url.host:
        base["server.address"] = url.host
        base["server.port"] = url.port or 3306

    @event.listens_for(engine, "before_cursor_execute")
    def _start(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if context is None or not is_instrumentation_enabled():
            return
        operation = _operation(statement)
        name = f"{operation} {url.database}" if url.database else operation
        attributes = {**base, "db.operation.name": operation, "db.query.text": statement}
        setattr(context, _SPAN, tracer.start_span(name, kind=_CLIENT, attributes=attributes))

    @event.listens_for(engine, "after_cursor_execute")
    def _end(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        span: trace.Span | None = getattr(context, _SPAN, None)
        if span is not None:
            span.end()
            setattr(context, _SPAN, None)

    @event.listens_for(engine, "handle_error")
    def _failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        span: trace.Span | None = getattr(context, _SPAN, None) if context else None
        if span is not None:
            error = exception_context.original_exception
            span.set_status(StatusCode.ERROR, type(error).__name__)
            span.set_attribute("error.type", type(error).__qualname__)
            span.end()
            setattr(context, _SPAN, None)
