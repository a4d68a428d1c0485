"""Probes: liveness, readiness (backend reachability reported, never decisive)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from frontend.api_models import Readiness
from frontend.app_state import AppState, AppStateDep
from frontend.backend_client import BackendUnavailable

router = APIRouter(tags=["probes"])

# Well inside the kubelet's 2 s probe timeout.
_CHECK_TIMEOUT = httpx.Timeout(1.0)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _backend_state(app_state: AppState) -> dict[str, Any]:
    state: dict[str, Any] = {"url": app_state.settings.backend_url}
    try:
        reply = await app_state.backend.request(
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


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "draining"}},
    summary="Readiness: this pod can take traffic",
)
async def readyz(app_state: AppStateDep) -> JSONResponse:
    # Only this pod's own state decides. A backend outage must not make the
    # frontends unready too: the Service would drop them all, and with them
    # the page that explains the outage.
    status = "draining" if app_state.lifecycle.draining else "ready"
    body = {"status": status, "backend": await _backend_state(app_state)}
    return JSONResponse(body, status_code=200 if status == "ready" else 503)
