"""The stylesheet and icon, at URLs that name their content so browsers keep them a year.

A page links `/static/style.css?v=<hash of the file>`. A request carrying the
current hash gets `Cache-Control: public, max-age=31536000, immutable`: a new
stylesheet has a new hash, so a new URL, and no cache can serve a stale one.
Any other request for the file (no `v`, an old one) must revalidate.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import parse_qs

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from frontend.templating import STATIC_DIR

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def content_versions(directory: Path = STATIC_DIR) -> dict[str, str]:
    """{file name: short hash of its bytes}, read once at start (the files ship in the image)."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in sorted(directory.iterdir())
        if path.is_file()
    }


class VersionedStaticFiles(StaticFiles):
    def __init__(self, versions: dict[str, str]) -> None:
        super().__init__(directory=STATIC_DIR)
        self._versions = versions

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [""])[0]
        current = self._versions.get(Path(full_path).name)
        response.headers["cache-control"] = (
            IMMUTABLE if current is not None and asked == current else REVALIDATE
        )
        return response
