"""A JSON answer sent straight through ASGI's `send`, for middleware that answers itself.

The 413 of the body limit and the 500 of the error middleware are written below
FastAPI's response classes, where only `send` is at hand.
"""

from __future__ import annotations

import json

from starlette.types import Send


async def send_json(send: Send, status: int, payload: dict[str, str]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
