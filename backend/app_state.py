"""What the lifespan creates and every request uses, and how routes get it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from backend.cache import Cache
from backend.config import BackendSettings
from backend.database import Database
from backend.idempotency import IdempotencyStore
from backend.queries import MessageQueries
from common.identity import PodIdentity
from common.lifecycle import Lifecycle


@dataclass(slots=True)
class AppState:
    settings: BackendSettings
    identity: PodIdentity
    lifecycle: Lifecycle
    db: Database
    cache: Cache
    # Built on `db`'s engine: the queries, and the writes with a key.
    messages: MessageQueries = field(init=False)
    keys: IdempotencyStore = field(init=False)

    def __post_init__(self) -> None:
        self.messages = MessageQueries(self.db)
        self.keys = IdempotencyStore(self.db, self.messages)

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
