"""BackendClient: the retry of a read that timed out (once, on a new connection, reads only).

Against a loopback server whose first connection goes silent (a pod
partitioned after it accepted the connection) and whose later ones answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from common.identity import PodIdentity
from common.metrics import HttpMetrics
from frontend.backend_client import (
    BackendClient,
    BackendReply,
    BackendUnavailable,
    _cut,
    outcome_unknown,
)
from frontend.config import FrontendSettings
from frontend.metrics import FrontendMetrics

_METRICS: list[FrontendMetrics] = []


def _metrics(settings: FrontendSettings) -> FrontendMetrics:
    # One set per process: the Prometheus collectors register by name.
    if not _METRICS:
        identity = PodIdentity.from_settings("frontend", "test", settings)
        _METRICS.append(FrontendMetrics(HttpMetrics(identity)))
    return _METRICS[0]


@asynccontextmanager
async def _server(silent_connections: int) -> AsyncIterator[list[int]]:
    """Yields the port's connection count; the first `silent_connections` never answer."""
    seen: list[int] = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen[0] += 1
        number = seen[0]
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if number <= silent_connections:
                    await reader.read()  # holds the request, answers nothing
                    return
                body = b'{"items": []}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"x-served-by: backend-live\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    seen.append(port)
    try:
        yield seen
    finally:
        server.close()


async def _call(
    silent_connections: int, method: str, headers: dict[str, str] | None = None
) -> tuple[BackendReply | BackendUnavailable, int]:
    async with _server(silent_connections) as seen:
        settings = FrontendSettings(
            backend_url=f"http://127.0.0.1:{seen[1]}",
            backend_read_timeout_seconds=0.5,
            backend_connect_timeout_seconds=2.0,
        )
        client = BackendClient(settings, _metrics(settings))
        try:
            outcome: BackendReply | BackendUnavailable = await client.request(
                method,
                "/api/messages",
                headers=headers,
                content=b"{}" if method == "POST" else None,
            )
        except BackendUnavailable as exc:
            outcome = exc
        finally:
            await client.aclose()
        return outcome, seen[0]


def test_a_read_that_times_out_is_retried_once_on_a_new_connection() -> None:
    outcome, connections = asyncio.run(_call(1, "GET"))
    assert isinstance(outcome, BackendReply), outcome
    assert outcome.status == 200 and outcome.served_by == "backend-live"
    first, second = outcome.trace.attempts
    assert first.error is not None and "ReadTimeout" in first.error
    assert second.new_connection and second.error is None
    assert connections == 2


def test_a_write_that_times_out_is_not_sent_again() -> None:
    # Its outcome is unknown: the form says so and keeps its key (issue 26).
    outcome, connections = asyncio.run(_call(1, "POST", {"Idempotency-Key": "k" * 32}))
    assert isinstance(outcome, BackendUnavailable)
    assert outcome_unknown(outcome) and len(outcome.trace.attempts) == 1
    assert connections == 1


def test_a_read_is_retried_at_most_once() -> None:
    outcome, connections = asyncio.run(_call(5, "GET"))
    assert isinstance(outcome, BackendUnavailable) and outcome.hop == "pod"
    assert len(outcome.trace.attempts) == 2 and connections == 2
    assert all("ReadTimeout" in (a.error or "") for a in outcome.trace.attempts)


@pytest.mark.parametrize("left", [0.2, 1.0, 7.0])
def test_a_retry_gets_no_more_than_the_deadline_leaves(left: float) -> None:
    cut = _cut(httpx.Timeout(connect=2.0, read=5.0, write=5.0, pool=2.0), left)
    assert cut.connect == min(2.0, left) and cut.pool == min(2.0, left)
    assert cut.read == min(5.0, left) and cut.write == min(5.0, left)
    assert _cut(httpx.Timeout(None), left).read == left


async def _call_on_own_client() -> tuple[BackendReply, str, int]:
    async with _server(0) as seen:
        settings = FrontendSettings(backend_url=f"http://127.0.0.1:{seen[1]}")
        backend = BackendClient(settings, _metrics(settings))
        own = backend.new_client(httpx.AsyncHTTPTransport(), client_class=httpx.AsyncClient)
        try:
            async with own:
                reply = await backend.request("get", "/api/messages", retry=True, client=own)
            return reply, str(own.headers["user-agent"]), seen[0]
        finally:
            await backend.aclose()


def test_a_client_of_the_callers_own_has_every_backend_calls_settings() -> None:
    # The public factory the bench's per-request client is built with.
    reply, user_agent, connections = asyncio.run(_call_on_own_client())
    assert reply.status == 200 and reply.served_by == "backend-live"
    assert user_agent.startswith("clusterip-demo-frontend/")
    assert connections == 1
