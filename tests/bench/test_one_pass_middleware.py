"""bench/one_pass_middleware.py does in one pass what the request middleware
stack (common/request_middleware.py) does one job per middleware: the same
answers, so that bench/middleware_cost.py prices the layering and nothing else."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.config import BackendSettings
from backend.main import create_app
from backend.migrate import upgrade
from bench.one_pass_middleware import RequestMiddleware, one_pass
from common.middleware.head import HeadAsGetMiddleware
from common.middleware.request_id import RequestIdMiddleware


def _app(tmp_path: Path, layered: bool) -> FastAPI:
    name = "layers" if layered else "one"
    settings = BackendSettings(database_url=f"sqlite:///{tmp_path / name / 'g.db'}")
    upgrade(settings, wait_seconds=10)
    app = create_app(settings)
    if not layered:
        one_pass(app)
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


def test_the_one_pass_replaces_the_layers(tmp_path: Path) -> None:
    layered = [m.cls for m in _app(tmp_path, layered=True).user_middleware]
    assert layered.index(RequestIdMiddleware) < layered.index(HeadAsGetMiddleware)
    one = [m.cls for m in _app(tmp_path, layered=False).user_middleware]
    assert RequestMiddleware in one and RequestIdMiddleware not in one


def test_the_same_answers_either_way(tmp_path: Path) -> None:
    one = _answers(_app(tmp_path, layered=False))
    layered = _answers(_app(tmp_path, layered=True))
    assert layered == one
    assert [status for status, _, _ in one] == [200, 200, 404, 413, 422]
    assert one[1] == (200, b"", one[0][2])
