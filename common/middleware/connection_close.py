"""`Connection: close` on a connection past its max age, or while the pod
drains (common/connection_age.py decides), so the client reconnects and
kube-proxy chooses a pod afresh."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from common.connection_age import ConnectionAges
from common.middleware.headers import with_connection_close


class ConnectionCloseMiddleware:
    """`Connection: close` once the connection is past its age, or the pod drains."""

    def __init__(self, app: ASGIApp, connection_ages: ConnectionAges) -> None:
        self.app = app
        self._ages = connection_ages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._ages.should_close(scope):
            await self.app(scope, receive, send)
            return

        await self.app(scope, receive, with_connection_close(send))
