"""Which methods a path answers to: the `Allow` list of a 405, and HEAD as GET.

Starlette answers a 405 from the first route whose path matched, so a path
served by two routes (GET and POST of /api/messages) advertised only one of
them. The full list comes from asking every route whether the path is its.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(scope: Scope, routes: list[BaseRoute]) -> list[str]:
    """Every method some route takes at this path; HEAD wherever GET is.

    Asks each route whether it would take the path under each method, through
    `BaseRoute.matches` only: FastAPI wraps included routers in routes of its
    own, whose inner layout is not an API to rely on.
    """
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Mount):
            continue  # it takes every method; the static files answer their own 405
        for method in _METHODS:
            if method in methods:
                continue
            probe = {**scope, "method": method}
            if isinstance(scope.get("fastapi"), dict):
                probe["fastapi"] = dict(scope["fastapi"])  # FastAPI keeps routing notes here
            match, _ = route.matches(probe)
            if match is Match.FULL:
                methods.add(method)
    if "GET" in methods:
        # RequestMiddleware answers HEAD with the GET route, body dropped.
        methods.add("HEAD")
    return sorted(methods)


def with_full_allow(
    scope: Scope, routes: list[BaseRoute], headers: Mapping[str, str] | None
) -> Mapping[str, str] | None:
    """A 405's headers with `Allow` naming every route's methods, not just one's."""
    allow = ", ".join(allowed_methods(scope, routes))
    if not allow:
        return headers  # no route here: keep what the raiser (StaticFiles) said
    return {**(headers or {}), "Allow": allow}
