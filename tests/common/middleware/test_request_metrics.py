"""common/middleware/request_metrics.py: a request counted under its route
template, not its raw path, and no longer in flight once answered."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.common.middleware.stack import build_app


def test_requests_are_counted_by_template_and_leave_the_in_flight_gauge() -> None:
    app, metrics = build_app()
    with TestClient(app) as client:
        client.get("/items/1")
        client.get("/items/2")
        client.get("/nowhere")
    sample = metrics.registry.get_sample_value
    assert (
        sample(
            "http_requests_total", {"method": "GET", "route": "/items/{item_id}", "status": "200"}
        )
        == 2.0
    )
    assert (
        sample("http_requests_total", {"method": "GET", "route": "unmatched", "status": "404"})
        == 1.0
    )
    assert sample("http_requests_in_flight", {}) == 0.0
