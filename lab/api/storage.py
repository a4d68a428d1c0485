"""Objects as Kubernetes JSON, one resourceVersion counter, and watches from a resourceVersion.

Everything runs on one asyncio loop: a change is made and announced to the watches in
the same synchronous step, so a watcher never misses an event between list and watch.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.api.errors import ApiError, already_exists, conflict, gone, not_found
from lab.api.resources import Resource

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]
Key = tuple[str, str, str]  # qualified resource, namespace ("" for cluster-scoped), name

# Events kept for watches that start from an older resourceVersion; older ones get 410.
HISTORY = 2000


def now(later: int = 0) -> str:
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=later)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WatchEvent:
    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    qualified: str
    namespace: str
    object: Obj
    previous: Obj | None = None  # a MODIFIED event's object before the change


@dataclass(eq=False)  # each watch is itself: kept in a set by identity
class Watch:
    qualified: str
    namespace: str | None
    predicate: Predicate
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)

    def translate(self, event: WatchEvent) -> WatchEvent | None:
        """The event as this watch sees it: a change that moves an object into or out
        of the selection is ADDED or DELETED, as kube-apiserver's watch cache says."""
        if event.qualified != self.qualified:
            return None
        if self.namespace is not None and event.namespace != self.namespace:
            return None
        matches = self.predicate(event.object)
        if event.type == "MODIFIED" and event.previous is not None:
            matched = self.predicate(event.previous)
            if matches and not matched:
                return dataclasses.replace(event, type="ADDED")
            if matched and not matches:
                return dataclasses.replace(event, type="DELETED")
        return event if matches else None


def _always(_obj: Obj) -> bool:
    return True


class Store:
    def __init__(self, history: int = HISTORY) -> None:
        self._objects: dict[Key, Obj] = {}
        self._revision = 0
        self._history: deque[WatchEvent] = deque(maxlen=history)
        self._watches: set[Watch] = set()

    @property
    def revision(self) -> int:
        return self._revision

    # -- reads ---------------------------------------------------------------------
    def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        obj = self._objects.get(self._key(resource, namespace, name))
        if obj is None:
            raise not_found(resource.qualified, name)
        return copy.deepcopy(obj)

    def find(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        obj = self._objects.get(self._key(resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        predicate: Predicate = _always,
    ) -> tuple[list[Obj], int]:
        items = [
            copy.deepcopy(obj)
            for (qualified, ns, _name), obj in sorted(self._objects.items())
            if qualified == resource.qualified
            and (namespace is None or ns == namespace)
            and predicate(obj)
        ]
        return items, self._revision

    def all_objects(self) -> list[Obj]:
        return [copy.deepcopy(obj) for obj in self._objects.values()]

    # -- writes --------------------------------------------------------------------
    def create(self, resource: Resource, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace", "") if resource.namespaced else ""
        if resource.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        if not name:
            raise ApiError(422, f"{resource.kind} is invalid: metadata.name: Required value")
        key = self._key(resource, namespace, name)
        if key in self._objects:
            raise already_exists(resource.qualified, name)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if "spec" in obj:
            meta["generation"] = 1
        for transient in ("resourceVersion", "deletionTimestamp", "selfLink"):
            meta.pop(transient, None)
        self._commit(key, obj, "ADDED")
        return copy.deepcopy(obj)

    def update(self, resource: Resource, obj: Obj, subresource: str = "") -> Obj:
        """Replace an object; a stale metadata.resourceVersion is a 409 Conflict.

        The main resource keeps the stored status, the status subresource keeps the rest,
        as kube-apiserver does for kinds with a status subresource.
        """
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "") if resource.namespaced else ""
        name = meta.get("name", "")
        key = self._key(resource, namespace, name)
        current = self._objects.get(key)
        if current is None:
            raise not_found(resource.qualified, name)
        wanted = meta.get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise conflict(resource.qualified, name)
        new = copy.deepcopy(obj)
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(current)
            if status is not None:
                new["status"] = status
            else:
                new.pop("status", None)
        elif "status" in resource.subresources:
            new.pop("status", None)
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
        self._keep_system_fields(resource, current, new)
        if new == current:
            return copy.deepcopy(current)  # a no-op write is not a new version
        if "spec" in new and new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = current["metadata"].get("generation", 0) + 1
        self._commit(key, new, "MODIFIED")
        return copy.deepcopy(new)

    def delete(self, resource: Resource, namespace: str, name: str) -> Obj:
        key = self._key(resource, namespace, name)
        current = self._objects.pop(key, None)
        if current is None:
            raise not_found(resource.qualified, name)
        self._revision += 1
        current["metadata"]["resourceVersion"] = str(self._revision)
        self._announce(WatchEvent(self._revision, "DELETED", key[0], key[1], current))
        return copy.deepcopy(current)

    def mark_deleting(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        finalizer: str | None = None,
        status: Obj | None = None,
        grace: int = 0,
    ) -> Obj:
        """Set deletionTimestamp (and a finalizer): the object stays until its dependents go,
        or, for a pod with a grace period, until its kubelet has stopped it."""
        key = self._key(resource, namespace, name)
        if key not in self._objects:
            raise not_found(resource.qualified, name)
        current = copy.deepcopy(self._objects[key])
        current["metadata"]["deletionTimestamp"] = now(grace)
        current["metadata"]["deletionGracePeriodSeconds"] = grace
        if finalizer and finalizer not in current["metadata"].setdefault("finalizers", []):
            current["metadata"]["finalizers"].append(finalizer)
        if status:
            current.setdefault("status", {}).update(status)
        self._commit(key, current, "MODIFIED")
        return copy.deepcopy(current)

    # -- watches -------------------------------------------------------------------
    def watch(
        self,
        resource: Resource,
        namespace: str | None,
        since: int,
        predicate: Predicate = _always,
    ) -> Watch:
        """Events after resourceVersion `since` (0: from now); too old a version is 410."""
        watch = Watch(resource.qualified, namespace, predicate)
        if since and since < self._revision:
            oldest = self._history[0].resource_version if self._history else self._revision + 1
            if since < oldest - 1:
                raise gone(since, oldest)
            for event in self._history:
                seen = watch.translate(event) if event.resource_version > since else None
                if seen is not None:
                    watch.queue.put_nowait(seen)
        self._watches.add(watch)
        return watch

    def stop(self, watch: Watch) -> None:
        self._watches.discard(watch)
        watch.queue.put_nowait(None)

    def stop_all(self) -> None:
        for watch in list(self._watches):
            self.stop(watch)

    # -- inside --------------------------------------------------------------------
    @staticmethod
    def _key(resource: Resource, namespace: str, name: str) -> Key:
        return (resource.qualified, namespace if resource.namespaced else "", name)

    @staticmethod
    def _keep_system_fields(resource: Resource, current: Obj, new: Obj) -> None:
        meta = new.setdefault("metadata", {})
        old = current["metadata"]
        for system in ("uid", "creationTimestamp", "generation", "name", "deletionTimestamp"):
            if system in old:
                meta[system] = old[system]
            else:
                meta.pop(system, None)
        if resource.namespaced:
            meta["namespace"] = old["namespace"]
        meta["resourceVersion"] = old["resourceVersion"]
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind

    def _commit(self, key: Key, obj: Obj, kind: str) -> None:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        previous = self._objects.get(key)  # replaced, never changed in place: safe to keep
        self._objects[key] = obj
        event = WatchEvent(self._revision, kind, key[0], key[1], copy.deepcopy(obj), previous)
        self._announce(event)

    def _announce(self, event: WatchEvent) -> None:
        self._history.append(event)
        for watch in list(self._watches):
            seen = watch.translate(event)
            if seen is not None:
                watch.queue.put_nowait(seen)
