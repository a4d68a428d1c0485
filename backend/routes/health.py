"""Probes: liveness, readiness (with dependency states)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from backend.app_state import AppStateDep
from backend.schemas import DependencyStates, Readiness, ReadinessStatus

router = APIRouter(tags=["probes"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: this pod can take traffic",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "starting or draining"}},
)
async def readyz(app_state: AppStateDep) -> JSONResponse:
    # Only this pod's own state decides: a shared dependency going down would
    # make every replica unready at once and take cached reads down with it.
    status: ReadinessStatus
    if app_state.lifecycle.draining:
        status = "draining"
    elif not app_state.db.answered_once:
        status = "starting"
    else:
        status = "ready"
    body = Readiness(
        status=status,
        degraded=app_state.degraded,
        dependencies=DependencyStates(database=app_state.db.state, cache=app_state.cache.state),
    )
    return JSONResponse(body.model_dump(), status_code=200 if status == "ready" else 503)
