"""The access log: one JSON line per request, with the request id.

The line has the fields and layout of every other log line (JsonFormatter),
but it is built by hand and written with one call on the handler's stream.
Through the logging module each line cost a LogRecord, a caller look-up
(`findCaller` walks the stack), the formatter's pass over the record's
attributes and the handler's lock: per request, work on the scale of
serving a cached page itself (issue 18's profile).

Lines written during one turn of the event loop go out together, in one
`write` at the start of the next turn: with stdout unbuffered (as in the
images) each write is a system call that lets go of the GIL, and on the
database path, where worker threads hold it, taking it back could cost the
event loop a switch interval (5 ms). A line waits for at most one turn;
whatever is pending when the process exits is written by an atexit hook.
Lines from other threads are whole `write` calls too, so none interleave.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import time
from typing import TextIO

from common.redaction import redact

_logger = logging.getLogger("access")


class AccessLog:
    def __init__(self) -> None:
        self._stream: TextIO | None = None
        self._head = ""
        self._second = -1
        self._stamp = ""
        self._pending: list[str] = []
        self._flush_scheduled = False

    def bind(self, stream: TextIO, service: str, pod_name: str) -> None:
        """Write straight to `stream` (configure_logging's handler) from now on."""
        if self._stream is None:
            atexit.register(self.flush)
        self._stream = stream
        self._head = (
            f'", "level": "info", "logger": "access", "msg": "request", '
            f'"service": {json.dumps(service, ensure_ascii=False)}, '
            f'"pod": {json.dumps(pod_name, ensure_ascii=False)}, "request_id": "'
        )

    @property
    def enabled(self) -> bool:
        return _logger.isEnabledFor(logging.INFO)

    def write(
        self,
        request_id: str,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        client: str | None,
        trace_id: str | None = None,
    ) -> None:
        if self._stream is None:
            # Not configured for direct writes (an app built in-process, as
            # in tests): the same fields through the logging module.
            _logger.info(
                "request",
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                    "client": client,
                    **({"trace_id": trace_id} if trace_id else {}),
                },
            )
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        # The request and trace ids are safe by construction
        # (incoming_request_id, 32 hex digits), so they need no escaping;
        # method, path and client come from the wire.
        trace = f', "trace_id": "{trace_id}"' if trace_id else ""
        self._pending.append(
            f'{{"ts": "{self._stamp}.{int((now - second) * 1000):03d}Z{self._head}'
            f'{request_id}"{trace}, "method": {json.dumps(method)}, '
            f'"path": {json.dumps(redact(path), ensure_ascii=False)}, "status": {status}, '
            f'"duration_ms": {duration_ms}, "client": {json.dumps(client)}}}\n'
        )
        if self._flush_scheduled:
            return
        try:
            asyncio.get_running_loop().call_soon(self.flush)
            self._flush_scheduled = True
        except RuntimeError:  # no event loop in this thread: write now
            self.flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending or self._stream is None:
            return
        lines, self._pending = self._pending, []
        self._stream.write("".join(lines))


# One per process, bound by configure_logging.
access_log = AccessLog()
