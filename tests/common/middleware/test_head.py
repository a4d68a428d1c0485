"""common/middleware/head.py: HEAD is the GET route without its body, counted as HEAD under the GET
route's template."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.common.middleware.stack import build_app


def test_head_is_the_get_route_without_its_body() -> None:
    app, metrics = build_app()
    with TestClient(app) as client:
        answer = client.head("/items/7")
    assert (answer.status_code, answer.content) == (200, b"")
    counted = metrics.registry.get_sample_value(
        "http_requests_total", {"method": "HEAD", "route": "/items/{item_id}", "status": "200"}
    )
    assert counted == 1.0
