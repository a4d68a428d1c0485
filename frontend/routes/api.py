"""JSON twins of the pages, for scripts: the route, the spread, the messages.

`/api/messages` is proxied: the backend's status, body and the headers a
client acts on (Location, Retry-After, Idempotent-Replayed) pass through
unchanged; a write that got no answer is a 504 (outcome unknown) or a 503
(nothing sent), both carrying the Idempotency-Key to retry with;
`X-Backend-Pod` names the backend pod, since this response's own
`X-Served-By` names the frontend pod.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from common.contract import (
    MAX_ID,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
)
from common.error_model import RETRY_AFTER, ErrorBody, error_responses
from common.idempotency_key import IdempotencyKeyHeader
from common.media_type import require_json
from common.message_models import MessageIn, MessageOut, MessagePage
from frontend.api_models import RouteView, SpreadView
from frontend.app_state import AppState, AppStateDep
from frontend.backend_client import BackendUnavailable, outcome_unknown
from frontend.config import FrontendSettings
from frontend.forwarding import forwarded_for
from frontend.guestbook import load_listing
from frontend.spread_limits import CLIENT_CLOSED, bounded_spread

router = APIRouter(prefix="/api", tags=["api"])

_PASSED_HEADERS = ("location", "retry-after", "idempotent-replayed")


@router.get(
    "/route",
    response_model=RouteView,
    responses={
        502: {"model": RouteView, "description": "the backend answered, but not with messages"},
        503: {"model": RouteView, "description": "the route broke; `failed_hop` says where"},
    },
    summary="How a page view reaches its data, hop by hop",
)
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


def spread_router(settings: FrontendSettings) -> APIRouter:
    """`/api/spread`, with the configured limits in its schema."""
    spread = APIRouter(prefix="/api", tags=["api"])
    spread_max = settings.spread_max

    @spread.get(
        "/spread",
        response_model=SpreadView,
        responses={
            **error_responses(422),
            429: {
                "model": ErrorBody,
                "description": f"`spread_busy`: this frontend pod is already running"
                f" {settings.spread_concurrency} spreads (`SPREAD_CONCURRENCY`)",
                "headers": RETRY_AFTER,
            },
            503: {"model": SpreadView, "description": "no request of either run was answered"},
        },
        summary="Which backend pods answer N requests, per connection kind",
        description=(
            f"Bounded: both runs end by {settings.spread_deadline_seconds:g} s"
            " (`SPREAD_DEADLINE_SECONDS`), the first request that times out ends the"
            " spread, and requests not sent count as `failed` with the reason in"
            f" `errors`; at most {settings.spread_concurrency} spreads run at once per"
            " frontend pod (`SPREAD_CONCURRENCY`); a client that disconnects cancels its"
            " spread and the backend calls in flight."
        ),
    )
    async def run(
        request: Request,
        app_state: AppStateDep,
        # A default rather than Annotated[]: the maximum is this function's
        # local, which a postponed annotation could not see.
        n: int | None = Query(
            None, ge=1, le=spread_max, description="requests per run; the default if left out"
        ),
    ) -> Response:
        settings = app_state.settings
        count = settings.spread_default if n is None else n
        result = await bounded_spread(request, app_state, count)
        if result is None:
            return Response(status_code=CLIENT_CLOSED)
        return JSONResponse(
            result.as_dict(settings.backend_url),
            status_code=503 if result.reached_nothing else 200,
        )

    return spread


async def _proxy(
    app_state: AppState,
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    write_key: str | None = None,
) -> Response:
    try:
        reply = await app_state.backend.request(
            method, path, params=params, content=content, headers=headers
        )
    except BackendUnavailable as exc:
        if write_key is not None:
            return _write_failed(exc, write_key)
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


def _write_failed(exc: BackendUnavailable, key: str) -> JSONResponse:
    """A write with no answer: unknown outcome (504) or surely not written (503).

    Either way the key goes back to the client: a retry with it is answered
    with the first result if the backend did commit, never with a second row.
    """
    if outcome_unknown(exc):
        return JSONResponse(
            {
                "error": "outcome_unknown",
                "message": "the backend did not answer in time, and may have written the"
                " message: send it again with the same Idempotency-Key to learn which",
                "failed_hop": exc.hop,
                "idempotency_key": key,
            },
            status_code=504,
            # No Retry-After: retrying is the client's call, with the key.
            headers={"Idempotency-Key": key},
        )
    return JSONResponse(
        {
            "error": "backend_unavailable",
            "message": f"the backend is unreachable: {exc.message}; nothing was written",
            "failed_hop": exc.hop,
            "idempotency_key": key,
        },
        status_code=503,
        headers={"Retry-After": "2", "Idempotency-Key": key},
    )


@router.get(
    "/messages",
    response_model=MessagePage,
    responses=error_responses(422, 503),
    summary="Newest messages first (proxied to the backend)",
)
async def list_messages(
    request: Request,
    app_state: AppStateDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = PAGE_LIMIT_DEFAULT,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="the next_before_id of the last page")
    ] = None,
) -> Response:
    params = {"limit": str(limit)}
    if before_id is not None:
        params["before_id"] = str(before_id)
    return await _proxy(
        app_state, "GET", "/api/messages", params=params, headers=forwarded_for(request)
    )


@router.get(
    "/messages/{message_id}",
    response_model=MessageOut,
    responses=error_responses(404, 422, 503),
    summary="One message (proxied to the backend)",
)
async def get_message(
    request: Request,
    app_state: AppStateDep,
    message_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> Response:
    return await _proxy(
        app_state, "GET", f"/api/messages/{message_id}", headers=forwarded_for(request)
    )


@router.post(
    "/messages",
    status_code=201,
    response_model=MessageOut,
    responses=error_responses(400, 409, 413, 415, 422, 429, 503, 504),
    # Another site's page can post a form as text/plain with no CORS
    # preflight; it can never send application/json that way. Insisting on
    # JSON is what keeps this endpoint safe from cross-site writes.
    dependencies=[Depends(require_json)],
    summary="Write a message (proxied to the backend)",
)
async def create_message(
    request: Request,
    app_state: AppStateDep,
    # Checked here with the backend's own model, so junk never costs a backend
    # call; the body goes on as it came.
    payload: MessageIn,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    key = idempotency_key or uuid.uuid4().hex
    headers = {
        # Fixed, not the client's: require_json has checked its media type, and
        # a parameter of its own (charset=…, non-ASCII) has no business here.
        "Content-Type": "application/json",
        # A key makes the one retry on a new connection safe; a client that
        # sent none gets one of ours, so its write is never doubled either.
        "Idempotency-Key": key,
        **forwarded_for(request),
    }
    return await _proxy(
        app_state,
        "POST",
        "/api/messages",
        content=await request.body(),
        headers=headers,
        write_key=key,
    )
