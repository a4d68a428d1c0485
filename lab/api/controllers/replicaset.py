"""Pods for each ReplicaSet, as many as its spec asks; they stay Pending without a kubelet."""

from __future__ import annotations

import copy
import random

from lab.api import graceful
from lab.api.admission import default
from lab.api.controllers import events
from lab.api.controllers.owners import controlled_by, controller_ref
from lab.api.resources import lookup
from lab.api.storage import Obj, Store
from lab.naming import random_suffix

REPLICASETS = lookup("apps", "v1", "replicasets")
PODS = lookup("", "v1", "pods")
assert REPLICASETS and PODS
WATCHED = [REPLICASETS, PODS]
_RNG = random.Random()


def _pod(store: Store, rs: Obj) -> Obj:
    template = copy.deepcopy(rs["spec"]["template"])
    meta = template.get("metadata") or {}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{rs['metadata']['name']}-{random_suffix(_RNG)}",
            "namespace": rs["metadata"]["namespace"],
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [controller_ref(rs)],
        },
        "spec": template.get("spec") or {},
    }
    return default(store, PODS, pod)  # type: ignore[arg-type]


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def reconcile(store: Store) -> None:
    replicasets, _ = store.list(REPLICASETS)
    pods, _ = store.list(PODS)
    for rs in replicasets:
        if rs["metadata"].get("deletionTimestamp"):
            continue
        owned = [
            p for p in pods if controlled_by(p, rs) and not p["metadata"].get("deletionTimestamp")
        ]
        wanted = rs["spec"].get("replicas", 1)
        for _ in range(wanted - len(owned)):
            pod = store.create(PODS, _pod(store, rs))
            owned.append(pod)
            message = f"Created pod: {pod['metadata']['name']}"
            events.record(store, rs, "SuccessfulCreate", message, "replicaset-controller")
        # Extra pods go not-ready before ready, newest first (sorts are stable).
        newest_first = sorted(owned, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)
        extra = sorted(newest_first, key=_ready)
        for pod in extra[: max(0, len(owned) - wanted)]:
            graceful.delete_pod(store, pod["metadata"]["namespace"], pod["metadata"]["name"])
            owned.remove(pod)
            message = f"Deleted pod: {pod['metadata']['name']}"
            events.record(store, rs, "SuccessfulDelete", message, "replicaset-controller")
        ready = sum(1 for p in owned if _ready(p))
        status = {
            "replicas": len(owned),
            "fullyLabeledReplicas": len(owned),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        fresh = store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
        if fresh.get("status") != status:
            fresh["status"] = status
            store.update(REPLICASETS, fresh, "status")
