"""A backend call cancelled mid-flight (the browser went away) still ends its span."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common.identity import PodIdentity
from common.metrics import HttpMetrics
from frontend.backend_client import BackendClient
from frontend.config import FrontendSettings
from frontend.metrics import FrontendMetrics


async def _cancelled_call() -> list:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # never answers: the call hangs until cancelled
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = FrontendSettings(backend_url=f"http://127.0.0.1:{port}")
    identity = PodIdentity.from_settings("frontend", "test", settings)
    client = BackendClient(settings, FrontendMetrics(HttpMetrics(identity)))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client._tracer = provider.get_tracer("test")  # tracing on for this client only
    try:
        call = asyncio.create_task(client.send_once(client.pooled, "GET", "/api/messages"))
        await asyncio.wait_for(accepted.wait(), 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):  # the cancellation still propagates
            await call
        return list(exporter.get_finished_spans())
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


def test_a_cancelled_call_ends_its_span_with_the_cancellation() -> None:
    spans = asyncio.run(_cancelled_call())
    assert len(spans) == 1, "the cancelled attempt's span was never ended"
    (span,) = spans
    assert span.attributes is not None
    assert span.attributes["error.type"] == "CancelledError"
    assert span.status.is_ok is False
