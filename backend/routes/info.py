"""What this pod is, and what the guestbook holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from backend.cache import CacheUnavailable
from backend.schemas import Info, Stats
from backend.services import Services, get_services

router = APIRouter(prefix="/api", tags=["info"])

_UNAVAILABLE = {503: {"description": "the database is unavailable"}}


@router.get("/info", response_model=Info, summary="This pod and its dependencies")
async def info(services: Annotated[Services, Depends(get_services)]) -> Info:
    return Info(
        **services.identity.as_dict(),
        database=services.db.kind,
        cache=services.cache.state,
        status="degraded" if services.degraded else "ok",
    )


@router.get("/stats", response_model=Stats, responses=_UNAVAILABLE, summary="Counts")
async def stats(services: Annotated[Services, Depends(get_services)]) -> Stats:
    total, by_pod = await services.db.run(services.db.stats, retry=True)
    visits: int | None = None
    if services.cache.enabled:
        try:
            visits = await services.cache.visits()
        except CacheUnavailable:
            visits = None
    return Stats(messages=total, visits=visits, writes_by_pod=by_pod)
