"""JSON twins of the pages, for scripts: the route, the spread, the messages.

`/api/messages` is proxied: the backend's status, body and the headers a
client acts on (Location, Retry-After, Idempotent-Replayed) pass through
unchanged; `X-Backend-Pod` names the backend pod, since this response's own
`X-Served-By` names the frontend pod.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from common.contract import MAX_ID
from frontend.app_state import AppState, AppStateDep
from frontend.backend_client import BackendUnavailable
from frontend.errors import FrontendError
from frontend.forwarding import forwarded_for
from frontend.guestbook import load_listing
from frontend.spread import SpreadInputError, parse_n, run_spread

router = APIRouter(prefix="/api", tags=["api"])

_PASSED_HEADERS = ("location", "retry-after", "idempotent-replayed")


@router.get("/route", summary="How a page view reaches its data, hop by hop")
async def route(request: Request, app_state: AppStateDep) -> JSONResponse:
    listing = await load_listing(app_state, None, forwarded_for(request))
    body: dict[str, Any] = {
        "backend_url": app_state.settings.backend_url,
        "frontend": app_state.identity.as_dict(),
        **listing.route.as_dict(),
    }
    if listing.problem:
        body["problem"] = listing.problem
    return JSONResponse(body, status_code=listing.status)


@router.get("/spread", summary="Which backend pods answer N requests, per connection kind")
async def spread(app_state: AppStateDep, n: str | None = None) -> JSONResponse:
    settings = app_state.settings
    try:
        count = parse_n(n, settings.spread_default, settings.spread_max)
    except SpreadInputError as exc:
        raise FrontendError(422, "validation_error", str(exc)) from None
    result = await run_spread(app_state.backend, app_state.pods, count)
    return JSONResponse(
        result.as_dict(settings.backend_url), status_code=503 if result.reached_nothing else 200
    )


async def _proxy(
    app_state: AppState,
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    try:
        reply = await app_state.backend.request(
            method, path, params=params, content=content, headers=headers
        )
    except BackendUnavailable as exc:
        return JSONResponse(
            {
                "error": "backend_unavailable",
                "message": f"the backend is unreachable: {exc.message}",
                "failed_hop": exc.hop,
            },
            status_code=503,
            headers={"Retry-After": "2"},
        )
    passed = {name: reply.headers[name] for name in _PASSED_HEADERS if name in reply.headers}
    if reply.served_by:
        passed["X-Backend-Pod"] = reply.served_by
    return Response(
        reply.body,
        status_code=reply.status,
        media_type=reply.headers.get("content-type", "application/json"),
        headers=passed,
    )


@router.get("/messages", summary="Newest messages first (proxied to the backend)")
async def list_messages(
    request: Request,
    app_state: AppStateDep,
    limit: str | None = None,
    before_id: str | None = None,
) -> Response:
    # Passed as given: the backend validates them and its 422 comes back.
    params = {k: v for k, v in (("limit", limit), ("before_id", before_id)) if v is not None}
    return await _proxy(
        app_state, "GET", "/api/messages", params=params, headers=forwarded_for(request)
    )


@router.get("/messages/{message_id}", summary="One message (proxied to the backend)")
async def get_message(
    request: Request,
    app_state: AppStateDep,
    message_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> Response:
    return await _proxy(
        app_state, "GET", f"/api/messages/{message_id}", headers=forwarded_for(request)
    )


@router.post("/messages", status_code=201, summary="Write a message (proxied to the backend)")
async def create_message(request: Request, app_state: AppStateDep) -> Response:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        # Another site's page can post a form as text/plain with no CORS
        # preflight; it can never send application/json that way. Insisting
        # on JSON is what keeps this endpoint safe from cross-site writes.
        raise FrontendError(
            415, "unsupported_media_type", "send the message as JSON (application/json)"
        )
    headers = {
        "Content-Type": content_type,
        # A key makes the one retry on a new connection safe; a client that
        # sent none gets one of ours, so its write is never doubled either.
        "Idempotency-Key": request.headers.get("idempotency-key") or uuid.uuid4().hex,
        **forwarded_for(request),
    }
    return await _proxy(
        app_state, "POST", "/api/messages", content=await request.body(), headers=headers
    )
