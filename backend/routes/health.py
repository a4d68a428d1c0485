"""Probes: liveness, readiness (with dependency states) and metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from backend.schemas import DependencyStates, Readiness
from backend.services import Services, get_services
from common.metrics import metrics_endpoint

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
async def readyz(services: Annotated[Services, Depends(get_services)]) -> JSONResponse:
    # Only this pod's own state decides: a shared dependency going down would
    # make every replica unready at once and take cached reads down with it.
    if services.lifecycle.draining:
        status = "draining"
    elif not services.db.answered_once:
        status = "starting"
    else:
        status = "ready"
    body = Readiness(
        status=status,
        degraded=services.degraded,
        dependencies=DependencyStates(database=services.db.state, cache=services.cache.state),
    )
    return JSONResponse(body.model_dump(), status_code=200 if status == "ready" else 503)


router.add_api_route(
    "/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False, summary="Prometheus"
)
