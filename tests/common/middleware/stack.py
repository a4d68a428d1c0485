"""A minimal app behind the whole request middleware stack, for the tests
of each middleware in common/middleware/ (seen from the client)."""

from __future__ import annotations

from fastapi import FastAPI

from common.identity import PodIdentity
from common.lifecycle import Lifecycle
from common.metrics import HttpMetrics
from common.request_middleware import install_request_middleware
from common.settings import CommonSettings


def build_app(lifecycle: Lifecycle | None = None) -> tuple[FastAPI, HttpMetrics]:
    # A small limit, below what the settings accept, so the tests' bodies can cross it.
    settings = CommonSettings(pod_name="pod-a").model_copy(update={"max_body_bytes": 100})
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
        quiet_paths=frozenset(),
    )
    return app, metrics
