"""common/middleware/access_logging.py: one access line per request, with the request id the outer
middleware set."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi.testclient import TestClient

from common.access_log import AccessLog
from common.middleware import access_logging
from tests.common.middleware.stack import build_app


def test_the_access_log_line_carries_the_request_id(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    log = AccessLog()
    log.bind(stream, "test", "pod-a")
    monkeypatch.setattr(access_logging, "access_log", log)
    app, _ = build_app()
    with caplog.at_level(logging.INFO, "access"), TestClient(app) as client:
        client.head("/items/2", headers={"X-Request-ID": "rid-log"})
    log.flush()
    line = json.loads(stream.getvalue())
    assert (line["request_id"], line["method"], line["path"], line["status"]) == (
        "rid-log",
        "HEAD",
        "/items/2",
        200,
    )
