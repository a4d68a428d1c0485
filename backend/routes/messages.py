"""The guestbook: list (cached), read one, write one."""

from __future__ import annotations

import contextlib
import ipaddress
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams

from backend.app_state import AppState, AppStateDep
from backend.cache import CacheUnavailable
from backend.dataerrors import DatabaseUnavailable
from backend.db import CreatedMessage
from backend.errors import ApiError
from common.contract import (
    IDEMPOTENCY_KEY_MAX,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_ID,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
)
from common.error_model import error_responses
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


def _page_body(rows: list[dict[str, Any]], limit: int) -> bytes:
    next_before = rows[-1]["id"] if len(rows) == limit else None
    return json.dumps(
        {"items": rows, "next_before_id": next_before}, ensure_ascii=False, separators=(",", ":")
    ).encode()


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
    # The hottest route takes the bare request: FastAPI's per-request solve
    # of a Depends() and of two validated query parameters cost about as
    # much as the Redis round trip (py-spy and an in-process loop, issue 18).
    # The parameters are still documented (`_PAGE_PARAMETERS`) and checked
    # with pydantic's own rules, with the same 422 answers.
    limit, before_id = _page_query(request)
    app_state: AppState = request.app.state.app_state
    cache, db = app_state.cache, app_state.db
    lookup = None
    if cache.enabled:
        try:
            lookup = await cache.lookup_page(before_id, limit)
        except CacheUnavailable:
            lookup = None
        if lookup is not None:
            if lookup.body is not None:
                return _page_response(lookup.body, "hit", "up")
            # Past the newest message: the first page, under its own name.
            before_id = lookup.before_id
    try:
        rows = await db.run(db.list_page, limit, before_id, retry=True)
    except DatabaseUnavailable:
        if lookup is not None or not cache.enabled:
            raise
        # The breaker had given up on Redis (a timeout is enough on a busy
        # node), but with the database down too a page Redis may still hold
        # is the only answer left: ask it once more before answering 503.
        with contextlib.suppress(CacheUnavailable):
            last_resort = await cache.lookup_page(before_id, limit, force=True)
            if last_resort.body is not None:
                return _page_response(last_resort.body, "hit", "up")
        raise
    body = _page_body(rows, limit)
    if lookup is not None:
        newest = rows[0]["id"] if rows else 0
        with contextlib.suppress(CacheUnavailable):
            await cache.store_page(before_id, limit, body, lookup.generation, newest)
        return _page_response(body, "miss", "up")
    return _page_response(body, "off", cache.state)


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
    row = await app_state.db.run(app_state.db.get, message_id, retry=True)
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
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Retrying with the same key returns the first result",
        ),
    ] = None,
) -> JSONResponse:
    cache, db = app_state.cache, app_state.db
    client_id = client_identity(request)
    if idempotency_key is not None:
        # A replay is answered before the rate limit: the stored 201 stays
        # promised however many writes the client has spent since, and a
        # retry (the frontend's own included) spends no second token.
        replay = await db.run(
            db.replay, payload.author, payload.text, idempotency_key, client_id, retry=True
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
        db.create,
        payload.author,
        payload.text,
        app_state.identity.pod_name,
        idempotency_key,
        client_id,
        True,  # the replay was looked up above
    )
    if cache.enabled:
        # A failed invalidation is remembered by this process's cache, which
        # flushes before it trusts Redis again. Only by this process: the
        # other replicas may serve the pages it could not drop, until each
        # page's own TTL (CACHE_TTL_SECONDS) ends them. Telling them would
        # need a shared place Redis is not, i.e. the database, read on every
        # cached page: the cost the cache exists to avoid.
        with contextlib.suppress(CacheUnavailable):
            await cache.invalidate_pages()
    return _created(created)


def _created(created: CreatedMessage) -> JSONResponse:
    headers = {"Location": f"/api/messages/{created.row['id']}"}
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(created.row, status_code=201, headers=headers)
