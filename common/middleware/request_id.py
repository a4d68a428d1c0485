"""X-Request-ID taken (or made) and set for every log line; the answer
carries it, with X-Served-By (the pod) and Server-Timing (where the time went)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.logging import request_id_var
from common.middleware.headers import HeaderHook, HeaderList
from common.request_context import Timings, incoming_request_id, timings_var


class RequestIdMiddleware:
    """X-Request-ID in, in every log line, and out with X-Served-By and Server-Timing."""

    def __init__(self, app: ASGIApp, pod_name: str, response_headers: HeaderHook | None) -> None:
        self.app = app
        self._served_by = pod_name.encode()
        self._extra_headers = response_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self.request_id(scope)
        timings = Timings()
        rid_token = request_id_var.set(request_id)
        t_token = timings_var.set(timings)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: HeaderList = list(message.get("headers", ()))
                self.identify(headers, request_id, timings, started)
                if self._extra_headers is not None:
                    self._extra_headers(headers)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            request_id_var.reset(rid_token)
            timings_var.reset(t_token)

    def request_id(self, scope: Scope) -> str:
        return incoming_request_id(scope)

    def identify(
        self, headers: HeaderList, request_id: str, timings: Timings, started: float
    ) -> None:
        """Which request this was, which pod answered it, and where its time went."""
        headers.append((b"x-request-id", request_id.encode()))
        headers.append((b"x-served-by", self._served_by))
        headers.append((b"server-timing", timings.header(time.perf_counter() - started)))
