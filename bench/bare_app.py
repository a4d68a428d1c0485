"""The baseline: the smallest FastAPI endpoint, on the same server runner and settings."""

from __future__ import annotations

from fastapi import FastAPI

from common.lifecycle import Lifecycle
from common.settings import CommonSettings
from common.uvicorn_runner import serve


class BareSettings(CommonSettings):
    port: int = 8099


def create_app(lifecycle: Lifecycle) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "draining" if lifecycle.draining else "ready"}

    return app


if __name__ == "__main__":
    settings = BareSettings()
    lifecycle = Lifecycle()
    serve(create_app(lifecycle), lifecycle, settings, settings.port)
