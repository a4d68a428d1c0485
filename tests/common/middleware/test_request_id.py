"""common/middleware/request_id.py: the request id taken and sent back, with the pod and Server-
Timing."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.common.middleware.stack import build_app


def test_every_answer_names_its_request_and_pod() -> None:
    app, _ = build_app()
    with TestClient(app) as client:
        answer = client.get("/items/1", headers={"X-Request-ID": "abc-123"})
    assert answer.json() == {"id": 1}
    assert answer.headers["x-request-id"] == "abc-123"
    assert answer.headers["x-served-by"] == "pod-a"
    assert "dur=" in answer.headers["server-timing"]
