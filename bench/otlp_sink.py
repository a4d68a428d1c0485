"""A collector stand-in for `make bench`: takes OTLP/HTTP trace exports and answers 200.

It reads each body whole and throws it away: the bench prices what tracing
costs the tiers (making, queueing, encoding and sending spans), not what a
collector does with them. `GET /readyz` answers 200, for the bench's start-up wait.
`PORT=4318 python -m bench.otlp_sink`
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# An empty ExportTraceServiceResponse: no partial success to report.
_EMPTY = b""


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a collector does

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(200, _EMPTY, "application/x-protobuf")

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/readyz" else 404, b"{}", "application/json")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "4318"))), _Sink)
    server.serve_forever()


if __name__ == "__main__":
    main()
