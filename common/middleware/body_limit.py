"""A body over `max_body_bytes` refused with 413, declared or counted
(chunked), after reading what is left of it within a bound, as nginx does:
a client that writes its whole body before reading then gets the 413, not
a reset. The connection closes after a refusal."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.body_limit import BodyDrain, Refusal, declared_length, expects_continue
from common.middleware.headers import with_connection_close


class BodyLimitMiddleware:
    """413 for a body over the limit, declared or counted, after draining it."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, body_drain: BodyDrain, refusal: Refusal
    ) -> None:
        self.app = app
        self._max_body = max_body_bytes
        self._drain = body_drain
        self._refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._max_body
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            if declared <= self._drain.max_bytes and not expects_continue(scope):
                await self._drain.discard(receive)
            await self._refusal(scope, with_connection_close(send), limit)
            return
        received = 0
        refused = False
        response_started = False

        async def sending(message: Message) -> None:
            nonlocal response_started
            if refused:
                return
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        async def receiving() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not response_started and not refused:
                        if message.get("more_body", False):
                            await self._drain.discard(receive)
                        await self._refusal(scope, with_connection_close(send), limit)
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, receiving, sending)
