"""An exception raised before the answer started becomes the tier's 500
(common/server_error.py), never a traceback; one raised after is re-raised,
since half an answer is already out."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.server_error import Failure

log = logging.getLogger("errors")


class ServerErrorMiddleware:
    """An exception before the answer started becomes the tier's 500."""

    def __init__(self, app: ASGIApp, failure: Failure) -> None:
        self.app = app
        self._failure = failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if started:
                raise
            log.exception("unhandled error")
            await self._failure(scope, sending)
