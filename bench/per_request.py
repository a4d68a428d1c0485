"""The frontend with the benchmark's foil: a new HTTP client for every backend call.

Many tutorials write `async with httpx.AsyncClient() as client:` inside the
handler, httpx's defaults and all, so each call builds a client and opens a
TCP connection. `make bench` runs this next to the real frontend to measure
what the shared pool saves. Production code has no switch for it: this
bench-only factory builds the real frontend app with a `BackendClient` whose
calls each get a throwaway client on httpx's own transport, and a transport
wrapper that tells the call's observer what httpcore saw (the real frontend's
aiohttp transport does that itself), so the route panel still shows a new
connection and its connect time.

`python -m bench.per_request` (same environment as `python -m frontend`)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from common.lifecycle import Lifecycle
from common.logging import configure_logging
from common.uvicorn_runner import serve
from frontend.backend_client import Attempt, BackendClient, BackendReply
from frontend.config import SERVICE_NAME, FrontendSettings
from frontend.main import create_app
from frontend.transport import ConnectionInfo


def _tracer(attempt: Attempt) -> Any:
    """httpcore's `trace` extension, told to the attempt as the aiohttp transport would."""

    async def trace(event: str, info: Mapping[str, Any]) -> None:
        # httpcore names events "<module>.<step>.<started|complete|failed>".
        if event == "connection.connect_tcp.started":
            attempt.connecting()
        elif event == "connection.connect_tcp.complete":
            attempt.connected()
        elif event == "connection.connect_tcp.failed":
            attempt.connect_failed()
        elif event.endswith(".send_request_headers.started"):
            attempt.stage = "send"

    return trace


class TracedTransport(httpx.AsyncHTTPTransport):
    """httpx's default transport, reporting to the frontend's per-call observer."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempt = request.extensions.get("observer")
        if isinstance(attempt, Attempt):
            request.extensions["trace"] = _tracer(attempt)
        response = await super().handle_async_request(request)
        stream = response.extensions.get("network_stream")
        if stream is not None:
            # Read while the socket is surely open; a client per call means
            # a connection per call, so it is new and this is its first request.
            response.extensions["connection"] = ConnectionInfo(
                local=stream.get_extra_info("client_addr"),
                peer=stream.get_extra_info("server_addr"),
                age_s=0.0,
                requests=1,
            )
        return response


class PerRequestBackendClient(BackendClient):
    """Every call on a client made for it alone (retries still go to `fresh`).

    Built from BackendClient's public parts only: `new_client` makes the
    throwaway client, with the frontend's base URL, timeouts and User-Agent,
    and `request(client=...)` makes the call on it, retry and all.
    """

    async def request(self, method: str, path: str, **options: Any) -> BackendReply:
        # httpx.AsyncClient, cookie jar and all, as the tutorials' code has it.
        throwaway = self.new_client(
            TracedTransport(trust_env=False), client_class=httpx.AsyncClient
        )
        async with throwaway:
            return await super().request(method, path, client=throwaway, **options)


def main() -> None:
    settings = FrontendSettings()
    configure_logging(settings.log_level, settings.pod_name, SERVICE_NAME)
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle, backend_client=PerRequestBackendClient)
    serve(app, lifecycle, settings, settings.port)


if __name__ == "__main__":
    main()
