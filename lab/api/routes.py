"""Which resource, namespace, name and subresource a request path names."""

from __future__ import annotations

from dataclasses import dataclass

from lab.api.errors import ApiError
from lab.api.resources import Resource, lookup


@dataclass(frozen=True)
class Target:
    resource: Resource
    namespace: str | None  # None: across all namespaces (or cluster-scoped)
    name: str = ""
    subresource: str = ""


def parse(path: str) -> tuple[str, str, Target | None]:
    """(group, version, target) for /api/v1/… and /apis/GROUP/VERSION/…; target None: discovery."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise ApiError(404, f"the server could not find the requested resource ({path})")
    if not rest:
        return group, version, None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    resource = lookup(group, version, rest[0])
    if resource is None or len(rest) > 3:
        raise ApiError(404, f"the server could not find the requested resource ({path})")
    if resource.namespaced and namespace is None and len(rest) > 1:
        raise ApiError(404, f"the server could not find the requested resource ({path})")
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in resource.subresources:
        raise ApiError(404, f"the server could not find the requested resource ({path})")
    return group, version, Target(resource, namespace if resource.namespaced else None, name, sub)
