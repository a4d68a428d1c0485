"""common/app_error.py: both tiers raise the one class, and answer its status,
code, message, headers and extra fields in the same JSON shape."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from backend.api_errors import ApiError
from backend.config import BackendSettings
from backend.main import create_app as backend_app
from common.app_error import AppError
from frontend.errors import FrontendError


def test_the_tiers_share_one_class() -> None:
    assert ApiError is AppError and FrontendError is AppError


def test_an_app_error_keeps_what_the_answer_needs() -> None:
    error = AppError(429, "rate_limited", "slow down", headers={"Retry-After": "3"}, left=0)
    assert (error.status, error.code, error.message, str(error)) == (
        429,
        "rate_limited",
        "slow down",
        "slow down",
    )
    assert error.headers == {"Retry-After": "3"} and error.extra == {"left": 0}


def test_the_backend_answers_it_as_json(tmp_path: Path) -> None:
    app = backend_app(BackendSettings(database_url=f"sqlite:///{tmp_path / 'g.db'}"))

    @app.get("/boom")
    async def boom() -> None:
        raise AppError(418, "teapot", "short and stout", headers={"X-Why": "tea"}, size="s")

    with TestClient(app) as client:
        answer = client.get("/boom")
    assert answer.status_code == 418 and answer.headers["x-why"] == "tea"
    assert answer.json() == {"error": "teapot", "message": "short and stout", "size": "s"}
