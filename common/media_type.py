"""Bodies are JSON: anything else is refused with 415 before it is parsed."""

from __future__ import annotations

from fastapi import Request
from starlette.exceptions import HTTPException

UNSUPPORTED_MESSAGE = "send the message as JSON (application/json)"


def require_json(request: Request) -> None:
    """A route dependency: 415 unless the body is declared `application/json`.

    Without it a text/plain body would reach validation and come back as a
    422 about a missing object, which says nothing about the real mistake.
    In the frontend it also keeps writes safe from other sites: a page
    elsewhere can post text/plain with no CORS preflight, never JSON.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, UNSUPPORTED_MESSAGE)
