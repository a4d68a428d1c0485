"""The guestbook: list (cached), read one, write one."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams

from backend.api_errors import ApiError
from backend.app_state import AppState, AppStateDep
from backend.cache import CacheUnavailable
from backend.cache_aside import after_write, read_page
from backend.idempotency import CreatedMessage
from common.contract import (
    MAX_ID,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
)
from common.error_model import error_responses
from common.idempotency_key import IdempotencyKeyHeader
from common.media_type import require_json
from common.message_models import MessageIn, MessageOut, MessagePage

router = APIRouter(prefix="/api/messages", tags=["messages"])


_DEFAULT_LIMIT = PAGE_LIMIT_DEFAULT
_MAX_LIMIT = PAGE_LIMIT_MAX
_PAGE_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": _MAX_LIMIT,
            "default": _DEFAULT_LIMIT,
            "title": "Limit",
        },
    },
    {
        "name": "before_id",
        "in": "query",
        "required": False,
        "schema": {
            "anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_ID}, {"type": "null"}],
            "title": "Before Id",
        },
    },
]
_INT = TypeAdapter(int)


def _invalid(name: str, error: dict[str, Any]) -> RequestValidationError:
    return RequestValidationError([{**error, "loc": ("query", name)}])


def _query_int(params: QueryParams, name: str, default: int | None, high: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit():
        value = int(raw)
    else:
        # Anything but plain digits goes to pydantic, so " 20", "+5" or
        # "1_0" are taken or refused exactly as a declared Query(int) would.
        try:
            value = _INT.validate_python(raw)
        except ValidationError as exc:
            raise _invalid(name, dict(exc.errors()[0])) from None
    if value < 1:
        raise _invalid(
            name,
            {"type": "greater_than_equal", "msg": "Input should be greater than or equal to 1"},
        )
    if value > high:
        raise _invalid(
            name,
            {"type": "less_than_equal", "msg": f"Input should be less than or equal to {high}"},
        )
    return value


def _page_query(request: Request) -> tuple[int, int | None]:
    if not request.scope.get("query_string"):
        return _DEFAULT_LIMIT, None
    params = request.query_params
    limit = _query_int(params, "limit", _DEFAULT_LIMIT, _MAX_LIMIT)
    assert limit is not None
    return limit, _query_int(params, "before_id", None, MAX_ID)


def _page_response(body: bytes, cache: str, cache_state: str) -> Response:
    # The cached bytes are sent as they are, with the cache fields spliced in
    # front: no decode and re-encode on the hot path.
    head = f'{{"cache":"{cache}","cache_state":"{cache_state}",'.encode()
    return Response(head + body[1:], media_type="application/json")


@router.get(
    "",
    response_model=MessagePage,
    responses=error_responses(422, 503),
    summary="Newest messages first, keyset-paginated",
    openapi_extra={"parameters": _PAGE_PARAMETERS},
)
async def list_messages(request: Request) -> Response:
    # The hottest route takes the bare request: on a cache hit, FastAPI's
    # per-request solve of a Depends() and of two validated query parameters
    # would be most of the route's own work besides the Redis round trip
    # (issue 18's profile; `make bench` keeps the route's cost in view).
    # The parameters are still documented (`_PAGE_PARAMETERS`) and checked
    # with pydantic's own rules, with the same 422 answers.
    limit, before_id = _page_query(request)
    app_state: AppState = request.app.state.app_state
    # Redis or the database, and what a miss stores: backend/cache_aside.py.
    page = await read_page(app_state.cache, app_state.db, app_state.messages, limit, before_id)
    return _page_response(page.body, page.cache, page.cache_state)


@router.get(
    "/{message_id}",
    response_model=MessageOut,
    responses=error_responses(404, 422, 503),
    summary="One message",
)
async def get_message(
    app_state: AppStateDep,
    message_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> JSONResponse:
    row = await app_state.db.run(app_state.messages.get, message_id, retry=True)
    if row is None:
        raise ApiError(404, "not_found", f"no message with id {message_id}")
    return JSONResponse(row)


def client_identity(request: Request) -> str:
    """Who is writing, for the rate limit and the scope of its idempotency keys.

    Only the frontend may reach the backend (NetworkPolicy), and it appends
    the address it saw to X-Forwarded-For, so the last entry is the one a
    trusted hop wrote; earlier entries could be forged by the browser.
    """
    forwarded = request.headers.get("x-forwarded-for", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    if last:
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return request.client.host if request.client else "unknown"


@router.post(
    "",
    status_code=201,
    response_model=MessageOut,
    responses=error_responses(400, 409, 413, 415, 422, 429, 503),
    dependencies=[Depends(require_json)],
    summary="Write a message",
)
async def create_message(
    payload: MessageIn,
    request: Request,
    app_state: AppStateDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    cache, db, keys = app_state.cache, app_state.db, app_state.keys
    client_id = client_identity(request)
    if idempotency_key is not None:
        # A replay is answered before the rate limit: the stored 201 stays
        # promised however many writes the client has spent since, and a
        # retry (the frontend's own included) spends no second token.
        replay = await db.run(
            keys.replay, payload.author, payload.text, idempotency_key, client_id, retry=True
        )
        if replay is not None:
            return _created(replay)
    if cache.enabled:
        try:
            decision = await cache.take_write_token(client_id)
        except CacheUnavailable:
            # Without Redis there is no shared count: let writes through
            # rather than refuse every visitor.
            decision = None
        if decision is not None and not decision.allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"too many writes; try again in {decision.retry_after} s",
                headers={"Retry-After": str(decision.retry_after)},
            )
    created = await db.run(
        keys.create,
        payload.author,
        payload.text,
        app_state.identity.pod_name,
        idempotency_key,
        client_id,
        True,  # the replay was looked up above
    )
    await after_write(cache)
    return _created(created)


def _created(created: CreatedMessage) -> JSONResponse:
    headers = {"Location": f"/api/messages/{created.row['id']}"}
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(created.row, status_code=201, headers=headers)
