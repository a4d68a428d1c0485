"""uvicorn's WebSocket protocol, lenient where kube-apiserver's Go library is.

kubectl's port-forward offers the subprotocol `SPDY/3.1+portforward.k8s.io`, which is
not an RFC 6455 token (`/`), and the websockets library answers such an offer with a
400. uvicorn lets the app pick the subprotocol on accept anyway, so the library's own
parse of the offer is skipped: the app sees the offered list as written.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class LenientWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.process_subprotocol = lambda headers: None  # type: ignore[method-assign]
