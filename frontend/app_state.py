"""What the lifespan creates and every request uses, and how routes get it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.templating import Jinja2Templates

from common.identity import PodIdentity
from common.lifecycle import Lifecycle
from frontend.backend_client import BackendClient
from frontend.config import FrontendSettings
from frontend.listing_cache import ListingCache
from frontend.pods import PodDirectory
from frontend.spread_limits import SpreadGate


@dataclass(slots=True)
class AppState:
    settings: FrontendSettings
    identity: PodIdentity
    lifecycle: Lifecycle
    backend: BackendClient
    pods: PodDirectory
    templates: Jinja2Templates
    listings: ListingCache = field(default_factory=ListingCache)
    spread_gate: SpreadGate = field(default_factory=lambda: SpreadGate(2))


async def get_app_state(request: Request) -> AppState:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a
    # thread hop on every request for one attribute read.
    app_state: AppState = request.app.state.app_state
    return app_state


# Declared once, as the FastAPI template's deps.py does: routes take `app_state: AppStateDep`.
AppStateDep = Annotated[AppState, Depends(get_app_state)]
