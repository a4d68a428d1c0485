"""The 413 answer for a request body over the size limit, and the reading before it.

A server that answers 413 and closes while the client is still sending makes
the kernel reset the connection, and a client that writes its whole body
before reading (Python's urllib, most scripts) sees `Connection reset`
instead of the 413. nginx reads and throws away the rest of the body first;
so does `BodyDrain`, within a bound in bytes and in time so that a huge or
trickling upload cannot hold the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from common.asgi_json import send_json

# Answers a refused body: (scope, send, limit). The default is JSON; the
# frontend renders its pages' answer as a page.
Refusal = Callable[[Scope, Send, int], Awaitable[None]]


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers", ())
    )


@dataclass(frozen=True)
class BodyDrain:
    """Reads and discards a request body, up to `max_bytes` and `timeout` seconds."""

    max_bytes: int
    timeout: float

    async def discard(self, receive: Receive) -> bool:
        """True if the body was read to its end within the bounds."""
        read = 0
        try:
            async with asyncio.timeout(self.timeout):
                while read <= self.max_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return False  # the client went away
                    read += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return True
        except TimeoutError:
            pass
        return False


def too_large_message(limit: int) -> str:
    return f"request body is over {limit} bytes"


async def refuse_too_large(scope: Scope, send: Send, limit: int) -> None:
    await send_json(send, 413, {"error": "payload_too_large", "message": too_large_message(limit)})
