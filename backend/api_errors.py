"""Errors the API answers with, and the handlers that turn them into JSON.

Every error body has the same shape: {"error": <code>, "message": <text>, ...},
and nothing a client sees carries a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.data_errors import DatabaseUnavailable, DataError, IdempotencyKeyReused
from common.app_error import AppError
from common.methods import with_full_allow

log = logging.getLogger("errors")


# The backend's name for the shared error class (raised across its routes).
ApiError = AppError


class DependencyUnavailable(ApiError):
    def __init__(self, dependency: str) -> None:
        super().__init__(
            503,
            "dependency_unavailable",
            f"the {dependency} is unavailable; try again shortly",
            headers={"Retry-After": "2"},
            dependency=dependency,
        )


_CODES = {
    400: "malformed_json",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
MALFORMED_MESSAGE = "the request body is not valid JSON"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


def _clean_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Echo where and why, not the raw input: it may be large or hostile.
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(error_body("malformed_json", MALFORMED_MESSAGE), status_code=400)
    details = _clean_validation_errors(errors)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in d['loc'] if p != 'body') or 'body'}: {d['msg']}"
        for d in details
    )
    return JSONResponse(
        error_body("validation_error", summary or "invalid request", details=details),
        status_code=422,
    )


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 400:
        # FastAPI's own 400: a JSON body that is not even UTF-8.
        message = MALFORMED_MESSAGE
    headers = exc.headers
    if exc.status_code == 405:
        headers = with_full_allow(request.scope, request.app.router.routes, headers)
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)


async def _api_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.code, exc.message, **exc.extra), status_code=exc.status, headers=exc.headers
    )


def api_error_for(exc: DataError) -> ApiError:
    """The HTTP answer to a data-layer error."""
    if isinstance(exc, DatabaseUnavailable):
        return DependencyUnavailable("database")
    if isinstance(exc, IdempotencyKeyReused):
        return ApiError(409, "idempotency_key_reused", str(exc))
    # A new DataError without a mapping is a bug here, not the client's fault.
    raise exc


async def _data_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DataError)
    return await _api_handler(request, api_error_for(exc))


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return JSONResponse(
        error_body("internal_error", "something went wrong; it has been logged"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(ApiError, _api_handler)
    app.add_exception_handler(DataError, _data_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
