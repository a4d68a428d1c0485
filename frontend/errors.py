"""Errors as a page for people and as JSON for scripts; never a traceback.

Paths under /api/ and the probes answer JSON in the backend's shape,
{"error": <code>, "message": <text>, ...}; everything else answers a page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Scope, Send

from common.app_error import AppError
from common.body_limit import too_large_message
from common.methods import with_full_allow
from frontend.templating import render

log = logging.getLogger("errors")

_JSON_PATHS = frozenset({"/healthz", "/readyz"})
_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}
MALFORMED_MESSAGE = "the request body is not valid JSON"


# The frontend's name for the shared error class (raised across its routes).
FrontendError = AppError


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path in _JSON_PATHS


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    if wants_json(request):
        return JSONResponse(
            {"error": code, "message": message, **extra}, status_code=status, headers=headers
        )
    return render(
        request.app.state.templates,
        request,
        request.app.state.identity,
        "error.html",
        {"status": status, "title": HTTPStatus(status).phrase, "message": message},
        status_code=status,
        headers=headers,
    )


def validation_summary(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]
    summary = "; ".join(
        f"{'.'.join(str(p) for p in d['loc'] if p not in ('query', 'path', 'body')) or 'input'}:"
        f" {d['msg']}"
        for d in details
    )
    return summary or "invalid request", details


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(request, 400, "malformed_json", MALFORMED_MESSAGE)
    summary, details = validation_summary(errors)
    if wants_json(request):
        return error_response(request, 422, "validation_error", summary, details=details)
    return error_response(request, 422, "validation_error", summary)


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = exc.headers
    if exc.status_code == 404:
        message = "There is no page here."
    elif exc.status_code == 400 and wants_json(request):
        # FastAPI's own 400: a JSON body that is not even UTF-8.
        code, message = "malformed_json", MALFORMED_MESSAGE
    elif exc.status_code == 405:
        headers = with_full_allow(request.scope, request.app.router.routes, headers)
    return error_response(request, exc.status_code, code, message, headers=headers)


async def _frontend_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FrontendError)
    return error_response(
        request, exc.status, exc.code, exc.message, headers=exc.headers, **exc.extra
    )


_INTERNAL_MESSAGE = "Something went wrong on our side; it has been logged."


async def _unexpected_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(request, 500, "internal_error", _INTERNAL_MESSAGE)


async def answer_internal_error(scope: Scope, send: Send) -> None:
    """The request middleware's 500 (common/server_error.py): a page, or JSON under /api/."""
    request = Request(scope)
    try:
        response = error_response(request, 500, "internal_error", _INTERNAL_MESSAGE)
    except Exception:  # the error page itself failed: plain JSON still goes out
        log.exception("the error page failed")
        response = JSONResponse(
            {"error": "internal_error", "message": _INTERNAL_MESSAGE}, status_code=500
        )
    await response(scope, _nothing_to_receive, send)


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}


async def refuse_too_large(scope: Scope, send: Send, limit: int) -> None:
    """The 413 of common.request_middleware, as a page for the form and as JSON under /api/."""
    request = Request(scope)  # scope["app"] is set before any middleware runs
    if wants_json(request):
        message = too_large_message(limit)
    else:
        message = f"What was sent is over {limit} bytes, far more than a message can hold."
    response = error_response(request, 413, "payload_too_large", message)
    await response(scope, _nothing_to_receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(FrontendError, _frontend_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
