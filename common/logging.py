"""One JSON object per log line on stdout, carrying the request id, trace id and pod name."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

from opentelemetry import trace

from common.access_log import access_log
from common.redaction import redact

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# color_message: uvicorn's ANSI-coloured copy of msg, noise in a JSON line.
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """The JSON line of every record but the access log's (common/access_log.py).

    Written by hand, not python-json-logger's JsonFormatter (issue 16 looked
    at it; issue 17 added the trace ids): what this formatter must guarantee
    is that no password reaches a line, through the message, the exception
    text or any `extra=` value, and python-json-logger has no hook for that
    short of overriding `process_log_record` and walking the finished dict
    again. The subclass would also re-do the request and trace ids and this
    timestamp format (its `timestamp` field is an ISO datetime with
    microseconds and `+00:00`), and drop uvicorn's `color_message` through
    `reserved_attrs`: as long as this class, with the library's passes over
    the record (defaults, format fields, static fields, renames, extras) and
    an encoder object per line run on top, so it is slower as well as
    longer (issue 16 measured a python-json-logger subclass doing the same).
    """

    def __init__(self, pod_name: str, service: str) -> None:
        super().__init__()
        self._pod_name = pod_name
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
            "service": self._service,
            "pod": self._pod_name,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        # The span this line was written in (a request's, a database call's),
        # if tracing is on: one look-up in the context, nothing more.
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = f"{span.trace_id:032x}"
            entry["span_id"] = f"{span.span_id:016x}"
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, int | float | bool | None) else redact(str(value))
                )
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, pod_name: str, service: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(pod_name=pod_name, service=service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own loggers would print plain text; route them through ours,
    # and drop its access log: the request middleware writes a richer one.
    for name in ("uvicorn", "uvicorn.error"):
        log = logging.getLogger(name)
        log.handlers[:] = []
        log.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    access_log.bind(handler.stream, service, pod_name)
