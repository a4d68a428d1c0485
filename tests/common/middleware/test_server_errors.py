"""common/middleware/server_errors.py: an uncaught error is the tier's 500, with the request id,
logged once."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from tests.common.middleware.stack import build_app


def test_an_uncaught_error_is_a_dressed_500_logged_once_with_its_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = build_app()
    with caplog.at_level(logging.ERROR, "errors"), TestClient(app) as client:
        answer = client.get("/boom", headers={"X-Request-ID": "rid-500"})
    assert answer.status_code == 500 and answer.headers["x-request-id"] == "rid-500"
    assert answer.json()["error"] == "internal_error"
    assert [r.getMessage() for r in caplog.records if r.name == "errors"] == ["unhandled error"]
