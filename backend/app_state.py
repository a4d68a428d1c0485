"""What the lifespan creates and every request uses, and how routes get it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from backend.cache import Cache
from backend.config import BackendSettings
from backend.db import Database
from common.identity import PodIdentity
from common.lifecycle import Lifecycle


@dataclass(slots=True)
class AppState:
    settings: BackendSettings
    identity: PodIdentity
    lifecycle: Lifecycle
    db: Database
    cache: Cache

    @property
    def degraded(self) -> bool:
        return self.cache.state == "down" or self.db.state == "down"


async def get_app_state(request: Request) -> AppState:
    # async on purpose: FastAPI runs a plain `def` dependency in the thread
    # pool, a thread hop on every request for a dictionary look-up.
    app_state: AppState = request.app.state.app_state
    return app_state


# Declared once, as the FastAPI template's deps.py does: routes take `app_state: AppStateDep`.
AppStateDep = Annotated[AppState, Depends(get_app_state)]
