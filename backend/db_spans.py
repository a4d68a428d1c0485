"""A client span for each SQL statement the engine sends, from SQLAlchemy's cursor events.

Why not opentelemetry-instrumentation-sqlalchemy: its newest release
declares support for SQLAlchemy below 2.1 and refuses to instrument the
2.1 this project pins (it logs an error and does nothing); forcing it with
`skip_dep_check` would run it where its authors have not. What it does is
small, and done here with the same events: a span when a statement goes to
the server, ended when the cursor returns or the driver raises.

The spans carry the stable semantic conventions' database attributes only:
the system (`db.system.name`), the database (`db.namespace`), the operation
and the first table the statement names (`db.operation.name`,
`db.collection.name`), the statement as written, with `%s` placeholders,
never the values (`db.query.text`), and the server's address. A span is
named `<operation> <table>` (`SELECT messages`), as the conventions ask,
or `<operation> <database>` for a statement that names no table.
They start in a worker thread; anyio runs it in a copy of the request's
context, so each span is a child of the request's server span.
"""

from __future__ import annotations

import re
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from sqlalchemy import event
from sqlalchemy.engine import Engine

_CLIENT = SpanKind.CLIENT
_SPAN = "_otel_span"  # where the open span waits on the execution context


# Where each operation names its (first) table: after this keyword.
_TABLE = {
    operation: re.compile(rf"\b{keyword}\s+([`\"\w.]+)", re.IGNORECASE)
    for operation, keyword in {
        "SELECT": "FROM",
        "DELETE": "FROM",
        "INSERT": "INTO",
        "REPLACE": "INTO",
        "UPDATE": "UPDATE",
    }.items()
}


def _operation(statement: str) -> str:
    word = statement.lstrip().split(None, 1)
    return word[0].upper() if word else "SQL"


def _table(operation: str, statement: str) -> str | None:
    """The first table the statement names, unquoted; None for `SELECT 1` and the like."""
    pattern = _TABLE.get(operation)
    found = pattern.search(statement) if pattern else None
    return found[1].replace("`", "").replace('"', "") if found else None


def trace_statements(engine: Engine, tracer: Tracer) -> None:
    url = engine.url
    system = engine.dialect.name  # "mysql" (MariaDB too, as MySQL speaks) or "sqlite"
    base: dict[str, str | int] = {"db.system.name": system}
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
        attributes = {**base, "db.operation.name": operation, "db.query.text": statement}
        table = _table(operation, statement)
        if table:
            attributes["db.collection.name"] = table
        target = table or url.database
        name = f"{operation} {target}" if target else operation
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
