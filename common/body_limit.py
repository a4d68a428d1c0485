"""The 413 answer for a request body over the size limit."""

from __future__ import annotations

import json

from starlette.types import Scope, Send


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def refuse_too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {"error": "payload_too_large", "message": f"request body is over {limit} bytes"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
