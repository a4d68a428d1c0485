"""common/middleware/connection_close.py: a draining pod asks its clients to reconnect."""

from __future__ import annotations

from fastapi.testclient import TestClient

from common.lifecycle import Lifecycle
from tests.common.middleware.stack import build_app


def test_a_draining_pod_asks_the_client_to_reconnect() -> None:
    lifecycle = Lifecycle()
    app, _ = build_app(lifecycle)
    with TestClient(app) as client:
        assert "connection" not in client.get("/items/1").headers
        lifecycle.start_draining()
        assert client.get("/items/1").headers["connection"] == "close"
