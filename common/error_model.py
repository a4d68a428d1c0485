"""The error body both tiers answer with, and its OpenAPI responses, declared once.

Every 4xx and 5xx is `{"error": <code>, "message": <text>, ...}` (backend/api_errors.py,
frontend/errors.py). Routes list their statuses with `error_responses(...)`, so the
schema shows this shape, not FastAPI's default 422 `HTTPValidationError`, and a
generated client knows every status the server really sends.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ValidationDetail(BaseModel):
    loc: list[str | int] = Field(description="where: body, query or path, then the field")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. string_too_long")


class ErrorBody(BaseModel):
    # Extra keys are allowed: an error may name what it is about (`dependency`,
    # `failed_hop`) and new ones must not break an old client.
    model_config = ConfigDict(extra="allow")

    error: str = Field(description="a stable code to act on", examples=["validation_error"])
    message: str = Field(description="what went wrong, in words for people")
    details: list[ValidationDetail] | None = Field(
        default=None, description="validation_error only: one entry per refused field"
    )


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}

# status → what it means here; the codes are the `error` values it carries.
_MEANINGS: dict[int, dict[str, Any]] = {
    400: {"description": "`malformed_json`: the body is not valid JSON"},
    404: {"description": "`not_found`: no such message"},
    409: {"description": "`idempotency_key_reused`: the key came with a different message"},
    413: {"description": "`payload_too_large`: the body is over the size limit"},
    415: {"description": "`unsupported_media_type`: the body is not sent as application/json"},
    422: {"description": "`validation_error`: a field or parameter is refused; see `details`"},
    429: {
        "description": "`rate_limited`: this client wrote too often",
        "headers": RETRY_AFTER,
    },
    503: {
        "description": "a dependency the request needs is unavailable"
        " (`dependency_unavailable`, `backend_unavailable`)",
        "headers": RETRY_AFTER,
    },
    504: {
        "description": "`outcome_unknown`: the backend did not answer a write in time and may"
        " have stored it; send it again with this answer's Idempotency-Key (the one sent,"
        " or the one the frontend chose), which returns the first result, never a second"
        " message. No Retry-After: when to retry is the client's call.",
        "headers": {
            "Idempotency-Key": {
                "description": "the key to send the write again with",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error statuses."""
    return {status: {"model": ErrorBody, **_MEANINGS[status]} for status in statuses}
