"""The Prometheus scrape port: /metrics on a listener of its own, apart from the app's.

The app's port is the one users reach (the frontend's Service, a Gateway, a
port-forward); metrics are for the scraper only, so they get their own port,
which the Services name `metrics` and only the scrape NetworkPolicy admits.
The listener is a small threaded WSGI server (the standard library's, as
prometheus_client's own exporter uses) on a daemon thread: a scrape never
waits behind the app's event loop, and it keeps answering while the app
drains after SIGTERM.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger("metrics")

METRICS_PATH = "/metrics"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes come every few seconds: no line per scrape."""


def metrics_only(registry: CollectorRegistry) -> WsgiApp:
    """/metrics answers the registry's text; any other path is 404."""
    # prometheus_client leaves make_wsgi_app's return untyped.
    exposition: WsgiApp = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: metrics are at /metrics\n"]
        return exposition(environ, start_response)

    return app


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """Listen now (a taken port fails the start, as the app's would), serve in the background."""
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    server = make_server(
        host, port, metrics_only(registry), server_class=server_class, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics listening", extra={"host": host, "port": port, "path": METRICS_PATH})
    return server
