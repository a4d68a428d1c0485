"""HEAD answered by the GET route, without the body, wherever GET works."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    """HEAD answered by the GET route, without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        # The routes see a GET; the server, the metrics and the log see HEAD.
        inner = {**scope, "method": "GET"}
        try:
            await self.app(inner, receive, sending)
        finally:
            # The route the router found, for the metrics' route template.
            if "route" in inner:
                scope["route"] = inner["route"]
