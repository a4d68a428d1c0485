"""bench/split_middleware.py does what RequestMiddleware does, one job per
layer: the same answers, so that bench/middleware_cost.py prices the layering
and nothing else."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.config import BackendSettings
from backend.main import create_app
from backend.migrate import upgrade
from bench.split_middleware import HeadLayer, MetricsLayer, split
from common.request_middleware import RequestMiddleware


def _app(tmp_path: Path, layered: bool) -> FastAPI:
    name = "split" if layered else "one"
    settings = BackendSettings(database_url=f"sqlite:///{tmp_path / name / 'g.db'}")
    upgrade(settings, wait_seconds=10)
    app = create_app(settings)
    if layered:
        split(app)
    return app


def _answers(app: FastAPI) -> list[tuple[int, bytes, list[str]]]:
    seen = []
    with TestClient(app) as client:
        for method, path, body in [
            ("GET", "/api/messages", None),
            ("HEAD", "/api/messages", None),
            ("GET", "/nowhere", None),
            ("POST", "/api/messages", b"{" + b" " * 20_000 + b"}"),
            ("GET", "/api/messages?limit=0", None),
        ]:
            answer = client.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
            mine = {"x-request-id", "x-served-by", "server-timing", "connection"}
            seen.append(
                (
                    answer.status_code,
                    answer.content if method == "HEAD" else b"",
                    sorted(k for k in answer.headers if k in mine),
                )
            )
    return seen


def test_the_layers_replace_the_one_middleware(tmp_path: Path) -> None:
    app = _app(tmp_path, layered=True)
    classes = [m.cls for m in app.user_middleware]
    assert RequestMiddleware not in classes
    assert classes.index(MetricsLayer) < classes.index(HeadLayer)


def test_the_same_answers_either_way(tmp_path: Path) -> None:
    one = _answers(_app(tmp_path, layered=False))
    layered = _answers(_app(tmp_path, layered=True))
    assert layered == one
    assert [status for status, _, _ in one] == [200, 200, 404, 413, 422]
    assert one[1] == (200, b"", one[0][2])
