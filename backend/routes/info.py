"""What this pod is, and what the guestbook holds."""

from __future__ import annotations

from fastapi import APIRouter

from backend.app_state import AppStateDep
from backend.cache import CacheUnavailable
from backend.schemas import Info, Stats
from common.error_model import error_responses

router = APIRouter(prefix="/api", tags=["info"])

_UNAVAILABLE = error_responses(503)


@router.get("/info", response_model=Info, summary="This pod and its dependencies")
async def info(app_state: AppStateDep) -> Info:
    return Info(
        **app_state.identity.as_dict(),
        database=app_state.db.kind,
        cache=app_state.cache.state,
        status="degraded" if app_state.degraded else "ok",
    )


@router.get("/stats", response_model=Stats, responses=_UNAVAILABLE, summary="Counts")
async def stats(app_state: AppStateDep) -> Stats:
    total, by_pod = await app_state.db.run(app_state.messages.stats, retry=True)
    visits: int | None = None
    if app_state.cache.enabled:
        try:
            visits = await app_state.cache.visits()
        except CacheUnavailable:
            visits = None
    return Stats(messages=total, visits=visits, writes_by_pod=by_pod)
