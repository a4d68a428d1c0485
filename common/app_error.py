"""The error a route raises to answer with a status and a JSON error body.

Both tiers raise it (the backend as ApiError, the frontend as FrontendError)
and answer it in the one shape of common/error_model.py:
{"error": <code>, "message": <text>, ...extra}; each tier's handler decides
only how it is sent (the frontend also renders it as a page).
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra
