"""Cascading deletion by ownerReferences, as kube's garbage collector does it.

Background: the owner goes now, its dependents right after. Foreground: the owner is
marked (deletionTimestamp, the foregroundDeletion finalizer), its dependents go first,
then it. Orphan: the dependents lose their ownerReference and stay.
"""

from __future__ import annotations

from typing import Any

from lab.api import graceful
from lab.api.resources import RESOURCES, Resource
from lab.api.storage import Store

Obj = dict[str, Any]


def dependents(store: Store, owner_uid: str) -> list[tuple[Resource, Obj]]:
    found = []
    for resource in RESOURCES:
        items, _ = store.list(resource)
        for obj in items:
            refs = obj["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in refs):
                found.append((resource, obj))
    return found


def delete(
    store: Store,
    resource: Resource,
    namespace: str,
    name: str,
    policy: str,
    grace: int | None = None,
) -> Obj:
    """Delete one object and deal with its dependents by `policy`; returns the owner as deleted.

    A pod is deleted gracefully (lab/api/graceful.py); it has no dependents."""
    if resource.kind == "Pod" and not resource.group:
        return graceful.delete_pod(store, namespace, name, grace)
    owner = store.get(resource, namespace, name)
    uid = owner["metadata"]["uid"]
    if resource.kind == "Namespace":
        # Terminating now; the namespace controller empties and removes it shortly.
        return store.mark_deleting(resource, "", name, "kubernetes", {"phase": "Terminating"})
    if policy == "Orphan":
        for dep_resource, dep in dependents(store, uid):
            dep["metadata"]["ownerReferences"] = [
                r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid
            ]
            store.update(dep_resource, dep)
        return store.delete(resource, namespace, name)
    if policy == "Foreground":
        store.mark_deleting(resource, namespace, name, "foregroundDeletion")
        for dep_resource, dep in dependents(store, uid):
            delete(
                store,
                dep_resource,
                dep["metadata"].get("namespace", ""),
                dep["metadata"]["name"],
                "Foreground",
            )
        return store.delete(resource, namespace, name)
    deleted = store.delete(resource, namespace, name)
    for dep_resource, dep in dependents(store, uid):
        delete(
            store,
            dep_resource,
            dep["metadata"].get("namespace", ""),
            dep["metadata"]["name"],
            "Background",
        )
    return deleted


def empty_namespace(store: Store, namespace: str) -> None:
    """Delete everything in a namespace (its dependents with it)."""
    for resource in RESOURCES:
        if not resource.namespaced:
            continue
        items, _ = store.list(resource, namespace)
        for obj in items:
            if store.find(resource, namespace, obj["metadata"]["name"]) is not None:
                delete(store, resource, namespace, obj["metadata"]["name"], "Background")
