"""Kubernetes `Status` errors: what kube-apiserver answers when a request fails."""

from __future__ import annotations

from typing import Any

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
}


class ApiError(Exception):
    """A request the server refuses: becomes a `Status` with this code, reason and message."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "InternalError")
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(qualified: str, name: str) -> ApiError:
    kind = qualified.split(".", 1)
    details = {"name": name, "kind": kind[0]}
    if len(kind) > 1:
        details["group"] = kind[1]
    return ApiError(404, f'{qualified} "{name}" not found', details=details)


def already_exists(qualified: str, name: str) -> ApiError:
    return ApiError(409, f'{qualified} "{name}" already exists', "AlreadyExists", {"name": name})


def conflict(qualified: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "Conflict",
        {"name": name},
    )


def gone(resource_version: int, oldest: int) -> ApiError:
    return ApiError(
        410,
        f"too old resource version: {resource_version} ({oldest})",
        "Expired",
    )
