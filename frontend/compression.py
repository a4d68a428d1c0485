"""gzip for the pages and their stylesheet, not for the JSON twins or the probes.

A page is some 7 KB of repetitive HTML that gzip makes about a fifth of that;
the JSON endpoints are small, read by scripts on a cluster network, and the
probes come every few seconds: compressing them would spend CPU to save
nothing, so they skip the gzip layer altogether.
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

_UNCOMPRESSED_PREFIXES = ("/api/", "/healthz", "/readyz")
# Below this a response goes as it is: gzip's header and the work outweigh the gain.
MINIMUM_SIZE = 1024
# zlib's default: nearly level 9's ratio on HTML at a fraction of the time.
COMPRESS_LEVEL = 6


class CompressPages:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._gzip = GZipMiddleware(app, minimum_size=MINIMUM_SIZE, compresslevel=COMPRESS_LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(_UNCOMPRESSED_PREFIXES):
            await self._gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
