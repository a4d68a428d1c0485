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
WATCHED = [BUDGETS, PODS]


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


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


def _status(budget: Obj, pods: list[Obj], previous: Obj) -> Obj:
    spec = budget.get("spec") or {}
    namespace = budget["metadata"]["namespace"]
    chosen = [
        p
        for p in pods
        if p["metadata"]["namespace"] == namespace
        and not p["metadata"].get("deletionTimestamp")
        and selector_matches(spec.get("selector"), p["metadata"].get("labels") or {})
    ]
    expected, healthy = len(chosen), sum(1 for p in chosen if _ready(p))
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
        status = _status(budget, pods, budget.get("status") or {})
        if budget.get("status") != status:
            budget["status"] = status
            store.update(BUDGETS, budget, "status")
