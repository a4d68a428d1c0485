"""get, list, create, update, patch, delete and the scale subresource, on the store."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from lab.api import admission, garbage, graceful, patch
from lab.api.errors import ApiError
from lab.api.printers import label_selector
from lab.api.resources import Resource, lookup
from lab.api.routes import Target
from lab.api.selectors import field_matcher, label_matcher
from lab.api.storage import Obj, Store

# What each verb answers: (status code, body, warnings).
Answer = tuple[int, Obj, list[str]]


def decode(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}") from None


def predicate(target: Target, params: dict[str, str]) -> Callable[[Obj], bool]:
    labels = label_matcher(params.get("labelSelector"))
    fields = field_matcher(params.get("fieldSelector"), target.resource.kind)
    return lambda obj: labels(obj) and fields(obj)


def list_objects(store: Store, target: Target, params: dict[str, str]) -> tuple[list[Obj], int]:
    return store.list(target.resource, target.namespace, predicate(target, params))


def as_list(resource: Resource, items: list[Obj], revision: int) -> Obj:
    return {
        "kind": f"{resource.kind}List",
        "apiVersion": resource.api_version,
        "metadata": {"resourceVersion": str(revision)},
        "items": items,
    }


def _check_body(target: Target, obj: Any) -> Obj:
    if not isinstance(obj, dict):
        raise ApiError(400, "the request body is not a Kubernetes object")
    resource = target.resource
    kind, api_version = obj.get("kind", resource.kind), obj.get("apiVersion", resource.api_version)
    if target.subresource != "scale" and (kind, api_version) != (
        resource.kind,
        resource.api_version,
    ):
        raise ApiError(
            400,
            f"the body is a {api_version} {kind}, "
            f"the path names {resource.api_version} {resource.kind}",
        )
    meta = obj.setdefault("metadata", {})
    if resource.namespaced:
        if meta.get("namespace") and meta["namespace"] != target.namespace:
            raise ApiError(
                400,
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        meta["namespace"] = target.namespace
    if target.name and meta.get("name") and meta["name"] != target.name:
        raise ApiError(400, "the name of the object does not match the name on the URL")
    if target.name:
        meta.setdefault("name", target.name)
    return obj


def _admit(
    store: Store, target: Target, obj: Obj, params: dict[str, str], old: Obj | None
) -> tuple[Obj, list[str]]:
    resource = target.resource
    admission.refuse_unsupported(resource, obj["metadata"].get("name", ""))
    obj, warnings = admission.check_fields(resource, obj, params.get("fieldValidation", "Warn"))
    return admission.default(store, resource, obj, old), warnings


def _namespace_exists(store: Store, target: Target) -> None:
    if target.resource.namespaced and target.namespace:
        namespaces = lookup("", "v1", "namespaces")
        assert namespaces is not None
        current = store.find(namespaces, "", target.namespace)
        if current is None:
            raise ApiError(
                404,
                f'namespaces "{target.namespace}" not found',
                details={"name": target.namespace, "kind": "namespaces"},
            )
        if current["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f"unable to create new content in namespace {target.namespace} because it "
                "is being terminated",
                "Forbidden",
            )


def create(store: Store, target: Target, body: bytes, params: dict[str, str]) -> Answer:
    if target.resource.namespaced and target.namespace is None:
        raise ApiError(
            405, f"create a {target.resource.kind} in a namespace: POST to its namespace's path"
        )
    obj = _check_body(target, decode(body))
    _namespace_exists(store, target)
    obj, warnings = _admit(store, target, obj, params, None)
    if params.get("dryRun") == "All":
        return 201, obj, warnings
    return 201, store.create(target.resource, obj), warnings


def update(store: Store, target: Target, body: bytes, params: dict[str, str]) -> Answer:
    if target.subresource == "scale":
        return _write_scale(store, target, decode(body), params)
    obj = _check_body(target, decode(body))
    old = store.get(target.resource, target.namespace or "", target.name)
    obj, warnings = _admit(store, target, obj, params, old)
    return 200, _write(store, target, obj, params), warnings


def apply_patch(
    store: Store, target: Target, body: bytes, content_type: str, params: dict[str, str]
) -> Answer:
    old = store.get(target.resource, target.namespace or "", target.name)
    if target.subresource == "scale":
        scale = patch.apply(content_type, scale_of(target.resource, old), decode(body))
        return _write_scale(store, target, scale, params)
    patched = patch.apply(content_type, old, decode(body))
    if not isinstance(patched, dict):
        raise ApiError(422, "the patch left no object")
    patched = _check_body(target, patched)
    # The patched object carries the stored resourceVersion unless the patch names
    # another: a stale one is then a 409, as on a cluster.
    obj, warnings = _admit(store, target, patched, params, old)
    return 200, _write(store, target, obj, params), warnings


def _write(store: Store, target: Target, obj: Obj, params: dict[str, str]) -> Obj:
    """Store an update, or with dryRun=All (`--dry-run=server`, `kubectl diff`) only
    answer what would be stored."""
    if params.get("dryRun") == "All":
        return obj
    return store.update(target.resource, obj, target.subresource)


def delete(store: Store, target: Target, body: bytes, params: dict[str, str]) -> Answer:
    options = decode(body) if body else {}
    options = options if isinstance(options, dict) else {}
    policy = params.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
    if params.get("dryRun") == "All" or options.get("dryRun") == ["All"]:
        return 200, store.get(target.resource, target.namespace or "", target.name), []
    grace = graceful.grace_of(options, params)
    deleted = garbage.delete(
        store, target.resource, target.namespace or "", target.name, policy, grace
    )
    return 200, deleted, []


def delete_collection(store: Store, target: Target, params: dict[str, str]) -> Answer:
    items, _ = list_objects(store, target, params)
    policy = params.get("propagationPolicy") or "Background"
    gone = []
    for obj in items:
        meta = obj["metadata"]
        if store.find(target.resource, meta.get("namespace", ""), meta["name"]) is not None:
            gone.append(
                garbage.delete(
                    store, target.resource, meta.get("namespace", ""), meta["name"], policy
                )
            )
    return 200, as_list(target.resource, gone, store.revision), []


# -- scale ----------------------------------------------------------------------------------
def scale_of(resource: Resource, obj: Obj) -> Obj:
    selector = label_selector((obj.get("spec") or {}).get("selector"))
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": "" if selector == "<none>" else selector,
        },
    }


def _write_scale(store: Store, target: Target, scale: Any, params: dict[str, str]) -> Answer:
    if not isinstance(scale, dict) or not isinstance(
        (scale.get("spec") or {}).get("replicas"), int
    ):
        raise ApiError(422, f'Scale "{target.name}" is invalid: spec.replicas: Required value')
    replicas = scale["spec"]["replicas"]
    if replicas < 0:
        raise ApiError(
            422,
            f'Scale "{target.name}" is invalid: spec.replicas: Invalid value: {replicas}: '
            "must be greater than or equal to 0",
        )
    obj = copy.deepcopy(store.get(target.resource, target.namespace or "", target.name))
    wanted = (scale.get("metadata") or {}).get("resourceVersion")
    if wanted:
        obj["metadata"]["resourceVersion"] = wanted
    obj["spec"]["replicas"] = replicas
    updated = _write(store, Target(target.resource, target.namespace, target.name), obj, params)
    return 200, scale_of(target.resource, updated), admission.warnings_for(target.resource)
