"""The OpenAPI v3 documents kubectl reads before `apply`, `create` and `edit`.

kubectl asks /openapi/v3 whether a kind's PATCH takes the `fieldValidation` query
parameter; where it does, kubectl leaves validation to the server (which refuses unknown
fields under Strict, see admission) instead of downloading /openapi/v2 to validate
itself. The documents carry paths and no component schemas, so `kubectl apply` builds
its strategic merge patches from the patch metadata compiled into kubectl.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from lab.api.discovery import VERSION
from lab.api.resources import RESOURCES, Resource

_QUERY = ("fieldValidation", "fieldManager", "dryRun")
# kubectl reads /openapi/v2 (as protobuf) only to validate a kind the v3 documents do not
# name, such as a custom resource: a document with no definitions (`swagger: "2.0"`,
# protobuf field 1) lets it through to its own "ensure CRDs are installed first".
# kubectl asks for ".v2@v1.0+protobuf"; the answer says ".v2.v1.0" as kube-openapi's
# handler does, since Go's MIME parser refuses an "@" in a media type.
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
V2_EMPTY = b"\x0a\x032.0"


def _prefix(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _operation(resource: Resource, action: str) -> dict[str, Any]:
    return {
        "operationId": f"{action}{resource.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource.group,
            "version": resource.version,
            "kind": resource.kind,
        },
        "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}} for n in _QUERY],
        "responses": {"200": {"description": "OK"}},
    }


@cache
def document(group: str, version: str) -> bytes | None:
    chosen = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not chosen:
        return None
    paths: dict[str, Any] = {}
    for resource in chosen:
        base = f"/{_prefix(group, version)}"
        if resource.namespaced:
            base += "/namespaces/{namespace}"
        paths[f"{base}/{resource.plural}"] = {"post": _operation(resource, "post")}
        paths[f"{base}/{resource.plural}/{{name}}"] = {
            "put": _operation(resource, "put"),
            "patch": _operation(resource, "patch"),
        }
    body = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
    return json.dumps(body, separators=(",", ":")).encode()


@cache
def root() -> bytes:
    paths = {}
    for group, version in dict.fromkeys((r.group, r.version) for r in RESOURCES):
        doc = document(group, version)
        assert doc is not None
        digest = hashlib.sha512(doc).hexdigest()[:32].upper()
        prefix = _prefix(group, version)
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest}"}
    return json.dumps({"paths": paths}, separators=(",", ":")).encode()
