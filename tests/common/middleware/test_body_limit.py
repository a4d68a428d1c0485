"""common/middleware/body_limit.py: a body over the limit is a 413 that closes the connection,
still carrying the request id."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.common.middleware.stack import build_app


def test_a_body_over_the_limit_is_refused_and_the_connection_closed() -> None:
    app, metrics = build_app()
    with TestClient(app) as client:
        answer = client.post("/items", content=b'{"a": "' + b"x" * 200 + b'"}')
    assert answer.status_code == 413
    assert answer.headers["connection"] == "close" and "x-request-id" in answer.headers
    counted = metrics.registry.get_sample_value(
        "http_requests_total", {"method": "POST", "route": "unmatched", "status": "413"}
    )
    assert counted == 1.0
