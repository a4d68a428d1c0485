"""common/request_middleware.py: each job of the stack on a minimal app,
seen from the client, with the jobs' order where it matters (the request id
on a 413 and a 500, the metrics under the route template, HEAD logged as HEAD)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from common.access_log import AccessLog
from common.identity import PodIdentity
from common.lifecycle import Lifecycle
from common.metrics import HttpMetrics
from common.middleware import access_logging
from common.request_middleware import install_request_middleware
from common.settings import CommonSettings


def _app(lifecycle: Lifecycle | None = None) -> tuple[FastAPI, HttpMetrics]:
    settings = CommonSettings(pod_name="pod-a")
    metrics = HttpMetrics(PodIdentity.from_settings("test", "0", settings))
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/items")
    async def create(payload: dict[str, str]) -> dict[str, str]:
        return payload

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    install_request_middleware(
        app,
        settings=settings,
        lifecycle=lifecycle or Lifecycle(),
        metrics=metrics,
        max_body_bytes=100,
        quiet_paths=frozenset(),
    )
    return app, metrics


def test_every_answer_names_its_request_and_pod() -> None:
    app, _ = _app()
    with TestClient(app) as client:
        answer = client.get("/items/1", headers={"X-Request-ID": "abc-123"})
    assert answer.json() == {"id": 1}
    assert answer.headers["x-request-id"] == "abc-123"
    assert answer.headers["x-served-by"] == "pod-a"
    assert "dur=" in answer.headers["server-timing"]


def test_head_is_the_get_route_without_its_body() -> None:
    app, metrics = _app()
    with TestClient(app) as client:
        answer = client.head("/items/7")
    assert (answer.status_code, answer.content) == (200, b"")
    counted = metrics.registry.get_sample_value(
        "http_requests_total", {"method": "HEAD", "route": "/items/{item_id}", "status": "200"}
    )
    assert counted == 1.0


def test_a_body_over_the_limit_is_refused_and_the_connection_closed() -> None:
    app, metrics = _app()
    with TestClient(app) as client:
        answer = client.post("/items", content=b'{"a": "' + b"x" * 200 + b'"}')
    assert answer.status_code == 413
    assert answer.headers["connection"] == "close" and "x-request-id" in answer.headers
    counted = metrics.registry.get_sample_value(
        "http_requests_total", {"method": "POST", "route": "unmatched", "status": "413"}
    )
    assert counted == 1.0


def test_an_uncaught_error_is_a_dressed_500_logged_once_with_its_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = _app()
    with caplog.at_level(logging.ERROR, "errors"), TestClient(app) as client:
        answer = client.get("/boom", headers={"X-Request-ID": "rid-500"})
    assert answer.status_code == 500 and answer.headers["x-request-id"] == "rid-500"
    assert answer.json()["error"] == "internal_error"
    assert [r.getMessage() for r in caplog.records if r.name == "errors"] == ["unhandled error"]


def test_a_draining_pod_asks_the_client_to_reconnect() -> None:
    lifecycle = Lifecycle()
    app, _ = _app(lifecycle)
    with TestClient(app) as client:
        assert "connection" not in client.get("/items/1").headers
        lifecycle.start_draining()
        assert client.get("/items/1").headers["connection"] == "close"


def test_the_access_log_line_carries_the_request_id(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    log = AccessLog()
    log.bind(stream, "test", "pod-a")
    monkeypatch.setattr(access_logging, "access_log", log)
    app, _ = _app()
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
