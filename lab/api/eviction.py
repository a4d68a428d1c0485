"""The pods/eviction subresource: delete a pod unless that breaks its disruption budget.

As kube-apiserver decides it: a pod that is Pending, finished or already terminating
goes regardless; otherwise the one PodDisruptionBudget selecting it must allow a
disruption (or, for a pod that is not ready, its unhealthyPodEvictionPolicy must let it
go), and the budget's disruptionsAllowed is spent before the pod is deleted.
"""

from __future__ import annotations

from typing import Any

from lab.api import garbage
from lab.api.controllers.disruption import BUDGETS, PODS
from lab.api.errors import ApiError
from lab.api.selectors import selector_matches
from lab.api.storage import Obj, Store, now


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _ignores_budgets(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase", "Pending")
    return phase in ("Pending", "Succeeded", "Failed") or bool(
        pod["metadata"].get("deletionTimestamp")
    )


def _budget_for(store: Store, pod: Obj) -> Obj | None:
    namespace = pod["metadata"]["namespace"]
    budgets, _ = store.list(BUDGETS, namespace)
    labels = pod["metadata"].get("labels") or {}
    chosen = [b for b in budgets if selector_matches((b.get("spec") or {}).get("selector"), labels)]
    if len(chosen) > 1:
        raise ApiError(
            500,
            "This pod has more than one PodDisruptionBudget, which the eviction subresource "
            "does not support.",
            "InternalError",
        )
    return chosen[0] if chosen else None


def _refuse(budget: Obj) -> ApiError:
    status = budget.get("status") or {}
    name = budget["metadata"]["name"]
    cause = (
        f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} healthy pods "
        f"and has {status.get('currentHealthy', 0)} currently"
    )
    return ApiError(
        429,
        "Cannot evict pod as it would violate the pod's disruption budget.",
        "TooManyRequests",
        {"causes": [{"reason": "DisruptionBudget", "message": cause}]},
    )


def _spend(store: Store, budget: Obj, pod: Obj) -> None:
    status = budget.get("status") or {}
    if status.get("disruptionsAllowed", 0) <= 0:
        raise _refuse(budget)
    status["disruptionsAllowed"] -= 1
    status.setdefault("disruptedPods", {})[pod["metadata"]["name"]] = now()
    budget["status"] = status
    store.update(BUDGETS, budget, "status")  # a stale budget is a 409: the client retries


def _unhealthy_may_go(budget: Obj) -> bool:
    policy = (budget.get("spec") or {}).get("unhealthyPodEvictionPolicy", "IfHealthyBudget")
    status = budget.get("status") or {}
    return policy == "AlwaysAllow" or status.get("currentHealthy", 0) >= status.get(
        "desiredHealthy", 0
    )


def evict(store: Store, namespace: str, name: str, body: Any) -> Obj:
    if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction":
        raise ApiError(400, "an eviction is a policy/v1 Eviction")
    pod = store.get(PODS, namespace, name)
    if not _ignores_budgets(pod):
        budget = _budget_for(store, pod)
        if budget is not None:
            if _ready(pod):
                _spend(store, budget, pod)
            elif not _unhealthy_may_go(budget):
                raise _refuse(budget)
    garbage.delete(store, PODS, namespace, name, "Background")
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
