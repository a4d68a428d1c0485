"""What the lifespan creates and every request uses, and how routes get it."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from backend.cache import Cache
from backend.config import BackendSettings
from backend.db import Database
from common.identity import PodIdentity
from common.lifecycle import Lifecycle


@dataclass(slots=True)
class Services:
    settings: BackendSettings
    identity: PodIdentity
    lifecycle: Lifecycle
    db: Database
    cache: Cache

    @property
    def degraded(self) -> bool:
        return self.cache.state == "down" or self.db.state == "down"


async def get_services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain `def` dependency in the thread
    # pool, a thread hop on every request for a dictionary look-up.
    services: Services = request.app.state.services
    return services
