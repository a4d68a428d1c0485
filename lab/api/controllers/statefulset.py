"""Pods <name>-0 … <name>-(n-1) for each StatefulSet, with the labels its controller sets.

Scaling up adds the next ordinal and scaling down removes the highest, as
podManagementPolicy OrderedReady does, except that without a kubelet no pod ever
becomes ready, so the lab does not wait for one before the next.
"""

from __future__ import annotations

import copy

from lab.api import graceful
from lab.api.admission import default
from lab.api.controllers import events
from lab.api.controllers.owners import controlled_by, controller_ref
from lab.api.resources import lookup
from lab.api.storage import Obj, Store

STATEFULSETS = lookup("apps", "v1", "statefulsets")
PODS = lookup("", "v1", "pods")
assert STATEFULSETS and PODS
WATCHED = [STATEFULSETS, PODS]


def _pod(store: Store, sts: Obj, ordinal: int) -> Obj:
    template = copy.deepcopy(sts["spec"]["template"])
    meta = template.get("metadata") or {}
    name = f"{sts['metadata']['name']}-{ordinal}"
    labels = {
        **(meta.get("labels") or {}),
        "statefulset.kubernetes.io/pod-name": name,
        "apps.kubernetes.io/pod-index": str(ordinal),
    }
    spec = template.get("spec") or {}
    # Each claim template becomes the pod's own claim, <template>-<pod>, as a volume.
    for claim in sts["spec"].get("volumeClaimTemplates") or []:
        claim_name = claim["metadata"]["name"]
        spec.setdefault("volumes", []).append(
            {"name": claim_name, "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}"}}
        )
    spec.setdefault("hostname", name)
    if sts["spec"].get("serviceName"):
        spec.setdefault("subdomain", sts["spec"]["serviceName"])
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": sts["metadata"]["namespace"],
            "labels": labels,
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [controller_ref(sts)],
        },
        "spec": spec,
    }
    return default(store, PODS, pod)  # type: ignore[arg-type]


def _ordinal(pod: Obj, sts: Obj) -> int:
    return int(pod["metadata"]["name"].removeprefix(f"{sts['metadata']['name']}-"))


def _sync_one(store: Store, sts: Obj, owned: list[Obj], terminating: set[int]) -> None:
    wanted, name = sts["spec"].get("replicas", 1), sts["metadata"]["name"]
    # A terminating pod still holds its name: its successor waits until it is gone.
    have = {_ordinal(p, sts) for p in owned} | terminating
    for ordinal in range(wanted):
        if ordinal not in have:
            pod = store.create(PODS, _pod(store, sts, ordinal))
            owned.append(pod)
            message = f"create Pod {pod['metadata']['name']} in StatefulSet {name} successful"
            events.record(store, sts, "SuccessfulCreate", message, "statefulset-controller")
    for pod in sorted(owned, key=lambda p: _ordinal(p, sts), reverse=True):
        if _ordinal(pod, sts) >= wanted:
            graceful.delete_pod(store, pod["metadata"]["namespace"], pod["metadata"]["name"])
            owned.remove(pod)
            message = f"delete Pod {pod['metadata']['name']} in StatefulSet {name} successful"
            events.record(store, sts, "SuccessfulDelete", message, "statefulset-controller")
    ready = sum(
        1
        for p in owned
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    )
    status = {
        "observedGeneration": sts["metadata"].get("generation", 1),
        "replicas": len(owned),
        "currentReplicas": len(owned),
        "updatedReplicas": len(owned),
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    status = {k: v for k, v in status.items() if v or k in ("observedGeneration", "replicas")}
    fresh = store.get(STATEFULSETS, sts["metadata"]["namespace"], sts["metadata"]["name"])
    if fresh.get("status") != status:
        fresh["status"] = status
        store.update(STATEFULSETS, fresh, "status")


def reconcile(store: Store) -> None:
    statefulsets, _ = store.list(STATEFULSETS)
    pods, _ = store.list(PODS)
    for sts in statefulsets:
        if sts["metadata"].get("deletionTimestamp"):
            continue
        mine = [p for p in pods if controlled_by(p, sts)]
        owned = [p for p in mine if not p["metadata"].get("deletionTimestamp")]
        terminating = {_ordinal(p, sts) for p in mine if p["metadata"].get("deletionTimestamp")}
        _sync_one(store, sts, owned, terminating)
