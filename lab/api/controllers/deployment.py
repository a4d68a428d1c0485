"""A ReplicaSet per Deployment revision (so `kubectl rollout history` and `undo` work).

The lab has no kubelet on this store yet, so pods never become ready and a rolling
update could never progress: the newest ReplicaSet gets all the replicas at once and
the older ones are scaled to zero (what strategy Recreate does).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from lab.api.controllers import events, rollout
from lab.api.controllers.owners import controlled_by, controller_ref
from lab.api.resources import lookup
from lab.api.storage import Obj, Store, now
from lab.naming import template_hash

REVISION = "deployment.kubernetes.io/revision"
_SKIPPED_ANNOTATIONS = {
    REVISION,
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
}
DEPLOYMENTS = lookup("apps", "v1", "deployments")
REPLICASETS = lookup("apps", "v1", "replicasets")
assert DEPLOYMENTS and REPLICASETS
WATCHED = [DEPLOYMENTS, REPLICASETS]


def canonical(value: Any) -> Any:
    """A template as Go would decode it: nulls and empty maps and lists are absent.

    `kubectl rollout undo` sends a template serialized from Go structs
    (`creationTimestamp: null`, `resources: {}`), which is the same template.
    """
    if isinstance(value, dict):
        kept = {k: canonical(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def _unhashed(template: Obj) -> Obj:
    template = canonical(copy.deepcopy(template))
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop("pod-template-hash", None)
    return canonical(template)


def _hash(template: Obj) -> str:
    return template_hash(json.dumps(_unhashed(template), sort_keys=True))


def _revision(rs: Obj) -> int:
    return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))


def _new_replicaset(deploy: Obj, pod_hash: str, revision: int) -> Obj:
    spec = deploy["spec"]
    template = copy.deepcopy(spec["template"])
    template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{deploy['metadata']['name']}-{pod_hash}",
            "namespace": deploy["metadata"]["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {REVISION: str(revision)},
            "ownerReferences": [controller_ref(deploy)],
        },
        "spec": {"replicas": 0, "selector": selector, "template": template},
    }


def _sync_one(store: Store, deploy: Obj, owned: list[Obj]) -> None:
    spec = deploy["spec"]
    pod_hash = _hash(spec["template"])
    latest_revision = max((_revision(rs) for rs in owned), default=0)
    wanted = _unhashed(spec["template"])
    current = next((rs for rs in owned if _unhashed(rs["spec"]["template"]) == wanted), None)
    if spec.get("paused"):
        # `kubectl rollout pause`: template changes wait; the newest revision keeps running.
        current = current or max(owned, key=_revision, default=None)
        if current is None:
            return
    elif current is None:
        current = store.create(REPLICASETS, _new_replicaset(deploy, pod_hash, latest_revision + 1))
        owned = [*owned, current]
    elif _revision(current) < latest_revision:  # a rollback: the old template is newest again
        current["metadata"]["annotations"][REVISION] = str(latest_revision + 1)
        current = store.update(REPLICASETS, current)
    revision = _revision(current)
    extra = {
        k: v
        for k, v in (deploy["metadata"].get("annotations") or {}).items()
        if k not in _SKIPPED_ANNOTATIONS
    }
    fresh = {
        rs["metadata"]["uid"]: store.get(
            REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"]
        )
        for rs in owned
    }
    newest = fresh[current["metadata"]["uid"]]
    olds = sorted(
        (rs for uid, rs in fresh.items() if uid != current["metadata"]["uid"]), key=_revision
    )
    wanted_new, wanted_olds = _targets(spec, newest, olds)
    newest["metadata"].setdefault("annotations", {}).update(extra)  # change-cause follows
    for rs, replicas in [(newest, wanted_new), *zip(olds, wanted_olds, strict=True)]:
        _scale(store, deploy, rs, replicas)
    _prune(store, deploy, owned, current)
    _status(store, deploy, owned, current, revision)


def _size(rs: Obj) -> rollout.Size:
    status = rs.get("status") or {}
    return rollout.Size(
        rs["spec"].get("replicas", 0), status.get("availableReplicas", 0), status.get("replicas", 0)
    )


def _targets(spec: Obj, newest: Obj, olds: list[Obj]) -> tuple[int, list[int]]:
    if spec.get("paused"):  # `kubectl rollout pause`: no rollout moves, scaling still does
        rolling = any(rs["spec"].get("replicas", 0) for rs in olds)
        keep = newest["spec"].get("replicas", 0) if rolling else spec.get("replicas", 1)
        return keep, [rs["spec"].get("replicas", 0) for rs in olds]
    return rollout.plan(spec, _size(newest), [_size(rs) for rs in olds])


def _scale(store: Store, deploy: Obj, rs: Obj, replicas: int) -> None:
    before = rs["spec"].get("replicas", 0)
    rs["spec"]["replicas"] = replicas
    store.update(REPLICASETS, rs)  # a no-op write is not a new version
    if replicas != before:
        verb = "up" if replicas > before else "down"
        message = f"Scaled {verb} replica set {rs['metadata']['name']} from {before} to {replicas}"
        events.record(store, deploy, "ScalingReplicaSet", message, "deployment-controller")


def _prune(store: Store, deploy: Obj, owned: list[Obj], current: Obj) -> None:
    """Old ReplicaSets scaled to zero beyond revisionHistoryLimit go, oldest first."""
    limit = deploy["spec"].get("revisionHistoryLimit", 10)
    fresh = [
        store.find(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"]) for rs in owned
    ]
    idle = sorted(
        (
            rs
            for rs in fresh
            if rs
            and rs["metadata"]["uid"] != current["metadata"]["uid"]
            and not rs["spec"].get("replicas")
        ),
        key=_revision,
    )
    for rs in idle[: max(0, len(idle) - limit)]:
        store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])


def _counts(store: Store, deploy: Obj, owned: list[Obj], current: Obj) -> Obj:
    """The replica counts of a Deployment's status, summed over its ReplicaSets."""
    fresh = [
        store.find(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"]) for rs in owned
    ]
    status_of = [(rs or {}).get("status") or {} for rs in fresh]
    newest = (
        store.find(REPLICASETS, current["metadata"]["namespace"], current["metadata"]["name"])
        or current
    )
    available = sum(s.get("availableReplicas", 0) for s in status_of)
    counts = {
        "observedGeneration": deploy["metadata"].get("generation", 1),
        "replicas": sum(s.get("replicas", 0) for s in status_of),
        "updatedReplicas": (newest.get("status") or {}).get("replicas", 0),
        "readyReplicas": sum(s.get("readyReplicas", 0) for s in status_of),
        "availableReplicas": available,
        "unavailableReplicas": max(0, deploy["spec"].get("replicas", 1) - available),
    }
    return {k: v for k, v in counts.items() if v or k == "observedGeneration"}


def _conditions(available: bool, current: Obj, previous: list[Obj]) -> list[Obj]:
    """Available and Progressing; a condition that did not change keeps its times."""
    conditions = [
        {
            "type": "Available",
            "status": "True" if available else "False",
            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "message": "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
        },
        {
            "type": "Progressing",
            "status": "True",
            "reason": "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
            "message": f'ReplicaSet "{current["metadata"]["name"]}" is progressing.',
        },
    ]
    old = {c["type"]: c for c in previous}
    for condition in conditions:
        before = old.get(condition["type"])
        if before and (before["status"], before["reason"]) == (
            condition["status"],
            condition["reason"],
        ):
            condition.update(
                {k: before[k] for k in ("lastUpdateTime", "lastTransitionTime") if k in before}
            )
        else:
            condition["lastUpdateTime"] = condition["lastTransitionTime"] = now()
    return conditions


def _status(store: Store, deploy: Obj, owned: list[Obj], current: Obj, revision: int) -> None:
    status = _counts(store, deploy, owned, current)
    available = status.get("availableReplicas", 0) >= deploy["spec"].get("replicas", 1)
    latest = store.get(DEPLOYMENTS, deploy["metadata"]["namespace"], deploy["metadata"]["name"])
    if (latest["metadata"].get("annotations") or {}).get(REVISION) != str(revision):
        latest["metadata"].setdefault("annotations", {})[REVISION] = str(revision)
        latest = store.update(DEPLOYMENTS, latest)
    previous = (latest.get("status") or {}).get("conditions") or []
    status["conditions"] = _conditions(available, current, previous)
    if latest.get("status") != status:
        latest["status"] = status
        store.update(DEPLOYMENTS, latest, "status")


def reconcile(store: Store) -> None:
    deployments, _ = store.list(DEPLOYMENTS)
    replicasets, _ = store.list(REPLICASETS)
    for deploy in deployments:
        if deploy["metadata"].get("deletionTimestamp"):
            continue
        owned = [rs for rs in replicasets if controlled_by(rs, deploy)]
        _sync_one(store, deploy, owned)
