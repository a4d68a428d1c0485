"""The scrape listener: /metrics and nothing else, on a port that is never the app's."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from backend.config import BackendSettings
from common.metrics_server import serve_metrics
from frontend.config import FrontendSettings
from tests.support.ports import free_port


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("PORT", "METRICS_PORT", "HOST"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_the_app_port_plus_1000(clean_env: pytest.MonkeyPatch) -> None:
    backend, frontend = BackendSettings(), FrontendSettings()
    assert (backend.port, backend.metrics_port) == (8000, 9000)
    assert (frontend.port, frontend.metrics_port) == (8080, 9080)


@pytest.mark.parametrize("settings", [BackendSettings, FrontendSettings])
def test_the_metrics_port_may_not_be_the_app_port(
    clean_env: pytest.MonkeyPatch, settings: type[BackendSettings | FrontendSettings]
) -> None:
    clean_env.setenv("PORT", "9100")
    clean_env.setenv("METRICS_PORT", "9100")
    with pytest.raises(ValidationError, match="METRICS_PORT must differ from PORT"):
        settings()


def test_the_listener_serves_metrics_only_on_its_path() -> None:
    registry = CollectorRegistry()
    Counter("probe_total", "A counter for this test.", registry=registry).inc()
    port = free_port()
    server = serve_metrics(registry, "127.0.0.1", port)
    try:
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert scrape.status_code == 200
        assert "probe_total 1.0" in scrape.text
        for path in ("/", "/healthz", "/metrics/x"):
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 404
        # A taken port fails at once, as the app's own port would.
        with pytest.raises(OSError):
            serve_metrics(registry, "127.0.0.1", port)
    finally:
        server.shutdown()
        server.server_close()
