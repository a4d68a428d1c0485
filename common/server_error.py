"""The 500 of the request middleware: an error no handler caught, answered inside it.

Starlette answers an uncaught exception in its outermost layer, outside the
request middleware, so that 500 would lack the X-Request-ID and the headers
the middleware adds to every response (the frontend's security headers), and
the traceback would be logged twice (by Starlette, then by the server). The
request middleware catches it first, logs it once with the request id, and
answers through its own `send`, so a 500 is dressed like any answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Scope, Send

from common.asgi_json import send_json

# Answers a 500 for `scope` through `send`; the tiers pass their own shape.
Failure = Callable[[Scope, Send], Awaitable[None]]

INTERNAL_MESSAGE = "something went wrong; it has been logged"


async def answer_internal_error(scope: Scope, send: Send) -> None:
    await send_json(send, 500, {"error": "internal_error", "message": INTERNAL_MESSAGE})
