"""Probes: liveness, readiness (backend reachability reported, never decisive) and metrics."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from common.metrics import metrics_endpoint
from frontend.backend_client import BackendUnavailable
from frontend.services import Services, get_services

router = APIRouter(tags=["probes"])

# Well inside the kubelet's 2 s probe timeout.
_CHECK_TIMEOUT = httpx.Timeout(1.0)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _backend_state(services: Services) -> dict[str, Any]:
    state: dict[str, Any] = {"url": services.settings.backend_url}
    try:
        reply = await services.backend.request(
            "GET", "/readyz", timeouts=_CHECK_TIMEOUT, retry=False
        )
    except BackendUnavailable as exc:
        return state | {"reachable": False, "failed_hop": exc.hop, "error": exc.message}
    try:
        body = reply.json()
    except BackendUnavailable:
        body = None
    return state | {
        "reachable": True,
        "status": body.get("status") if isinstance(body, dict) else f"answered {reply.status}",
        "pod": reply.served_by,
        "ms": round(reply.trace.total_ms, 2),
    }


@router.get("/readyz", summary="Readiness: this pod can take traffic")
async def readyz(services: Annotated[Services, Depends(get_services)]) -> JSONResponse:
    # Only this pod's own state decides. A backend outage must not make the
    # frontends unready too: the Service would drop them all, and with them
    # the page that explains the outage.
    status = "draining" if services.lifecycle.draining else "ready"
    body = {"status": status, "backend": await _backend_state(services)}
    return JSONResponse(body, status_code=200 if status == "ready" else 503)


router.add_api_route(
    "/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False, summary="Prometheus"
)
