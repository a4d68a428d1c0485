"""PodDisruptionBudget status, as the disruption controller computes it: how many of the
selected pods are healthy, how many must stay, and so how many may be evicted now."""

from __future__ import annotations

import math

from lab.api.resources import lookup
from lab.api.selectors import selector_matches
from lab.api.storage import Obj, Store, now

BUDGETS = lookup("policy", "v1", "poddisruptionbudgets")
PODS = lookup("", "v1", "pods")
assert BUDGETS and PODS
REPLICASETS = lookup("apps", "v1", "replicasets")
STATEFULSETS = lookup("apps", "v1", "statefulsets")
assert REPLICASETS and STATEFULSETS
_CONTROLLERS = {"ReplicaSet": REPLICASETS, "StatefulSet": STATEFULSETS}
WATCHED = [BUDGETS, PODS, REPLICASETS, STATEFULSETS]


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _scale(store: Store, pods: list[Obj]) -> int:
    """How many pods there should be: the replicas of the pods' controllers, as kube's
    disruption controller counts for maxUnavailable and percentages (a pod being
    replaced still counts), and 1 for a pod no controller owns."""
    total, seen = 0, set()
    for pod in pods:
        ref = next(
            (r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), None
        )
        if ref is None:
            total += 1
            continue
        if ref["uid"] in seen:
            continue
        seen.add(ref["uid"])
        resource = _CONTROLLERS.get(ref.get("kind", ""))
        owner = (
            store.find(resource, pod["metadata"]["namespace"], ref["name"]) if resource else None
        )
        total += (owner or {}).get("spec", {}).get("replicas", 1) if owner else 1
    return total


def _count(value: int | str, total: int, round_up: bool) -> int:
    """An int, or a percentage of `total` (rounded up, as kube rounds minAvailable)."""
    if isinstance(value, int):
        return value
    share = int(value.rstrip("%")) * total / 100
    return math.ceil(share) if round_up else math.floor(share)


def desired_healthy(spec: Obj, expected: int) -> int:
    if "minAvailable" in spec:
        return _count(spec["minAvailable"], expected, round_up=True)
    if "maxUnavailable" in spec:
        return max(0, expected - _count(spec["maxUnavailable"], expected, round_up=True))
    return expected


def _status(store: Store, budget: Obj, pods: list[Obj], previous: Obj) -> Obj:
    spec = budget.get("spec") or {}
    namespace = budget["metadata"]["namespace"]
    chosen = [
        p
        for p in pods
        if p["metadata"]["namespace"] == namespace
        and not p["metadata"].get("deletionTimestamp")
        and selector_matches(spec.get("selector"), p["metadata"].get("labels") or {})
    ]
    healthy = sum(1 for p in chosen if _ready(p))
    expected = len(chosen) if isinstance(spec.get("minAvailable"), int) else _scale(store, chosen)
    desired = desired_healthy(spec, expected)
    allowed = max(0, healthy - desired)
    old = {c["type"]: c for c in previous.get("conditions") or []}.get("DisruptionAllowed")
    state = "True" if allowed > 0 else "False"
    reason = "SufficientPods" if allowed > 0 else "InsufficientPods"
    changed = old is None or old.get("status") != state
    condition = {
        "type": "DisruptionAllowed",
        "status": state,
        "reason": reason,
        "message": "",
        "observedGeneration": budget["metadata"].get("generation", 1),
        "lastTransitionTime": now() if changed else old["lastTransitionTime"],
    }
    return {
        "observedGeneration": budget["metadata"].get("generation", 1),
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [condition],
    }


def reconcile(store: Store) -> None:
    budgets, _ = store.list(BUDGETS)
    pods, _ = store.list(PODS)
    for budget in budgets:
        status = _status(store, budget, pods, budget.get("status") or {})
        if budget.get("status") != status:
            budget["status"] = status
            store.update(BUDGETS, budget, "status")
