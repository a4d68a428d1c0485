"""The scheduler: binds each new pod to a node, as kube-scheduler's Binding does.

Filters first (lab/api/nodefit.py: cordoned, an untolerated NoSchedule/NoExecute taint,
including the one a NotReady node implies, the nodeSelector and required node affinity;
lab/api/topologyspread.py: DoNotSchedule spread constraints), then ranks what is left:
by the ScheduleAnyway spread constraints, then by the fewest pods, then by name, so the
choice is stable. The bound pod gains spec.nodeName, the PodScheduled condition and a
`Scheduled` event; a pod no node fits stays Pending with PodScheduled False and a
FailedScheduling event counting the reasons, worded as kube-scheduler words them.
"""

from __future__ import annotations

from collections import Counter

from lab.api import nodefit, topologyspread
from lab.api.controllers import events
from lab.api.resources import lookup
from lab.api.storage import Obj, Store, now

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
assert PODS and NODES
WATCHED = [PODS, NODES]
COMPONENT = "default-scheduler"


def _condition(pod: Obj, status: str, reason: str = "", message: str = "") -> Obj:
    condition = {"type": "PodScheduled", "status": status, "lastTransitionTime": now()}
    if reason:
        condition.update(reason=reason, message=message)
    others = [c for c in pod["status"].get("conditions") or [] if c["type"] != "PodScheduled"]
    return {**pod["status"], "conditions": [*others, condition]}


def _scheduled(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return condition
    return None


def _refusal(pod: Obj, node: Obj, nodes: list[Obj], pods: list[Obj]) -> str | None:
    return nodefit.refusal(pod, node) or topologyspread.refusal(pod, node, nodes, pods)


def unschedulable_message(total: int, reasons: list[str]) -> str:
    """kube-scheduler's FitError: the reasons counted and sorted, then its preemption note."""
    if not total:
        return "no nodes available to schedule pods"
    histogram = sorted(f"{n} {reason}" for reason, n in Counter(reasons).items())
    return (
        f"0/{total} nodes are available: {', '.join(histogram)}. preemption: 0/{total} nodes "
        f"are available: {total} Preemption is not helpful for scheduling."
    )


def choose(pod: Obj, nodes: list[Obj], pods: list[Obj]) -> tuple[str | None, str]:
    """The node for the pod, or None and why no node fits."""
    fits, reasons = [], []
    for node in nodes:
        reason = _refusal(pod, node, nodes, pods)
        if reason is None:
            fits.append(node)
        else:
            reasons.append(reason)
    if not fits:
        return None, unschedulable_message(len(nodes), reasons)
    load = Counter(
        p["spec"].get("nodeName")
        for p in pods
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    )
    best = min(
        fits,
        key=lambda n: (
            topologyspread.penalty(pod, n, nodes, pods),
            load[n["metadata"]["name"]],
            n["metadata"]["name"],
        ),
    )
    return best["metadata"]["name"], ""


def _unschedulable(store: Store, pod: Obj, message: str) -> None:
    current = _scheduled(pod) or {}
    if current.get("status") == "False" and current.get("message") == message:
        return  # said already: no new event until the reason changes
    pod["status"] = _condition(pod, "False", "Unschedulable", message)
    store.update(PODS, pod, "status")
    events.record(store, pod, "FailedScheduling", message, COMPONENT, "Warning")


def _bind(store: Store, pod: Obj, node: str) -> Obj:
    pod["spec"]["nodeName"] = node
    bound = store.update(PODS, pod)
    bound["status"] = _condition(bound, "True")
    bound = store.update(PODS, bound, "status")
    meta = bound["metadata"]
    message = f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}"
    events.record(store, bound, "Scheduled", message, COMPONENT)
    return bound


def reconcile(store: Store) -> None:
    nodes, _ = store.list(NODES)
    pods, _ = store.list(PODS)
    for index, pod in enumerate(pods):
        if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            continue
        node, why = choose(pod, nodes, pods)
        if node is None:
            _unschedulable(store, pod, why)
            continue
        # The next pod of this pass counts this one where it went.
        pods[index] = _bind(store, pod, node)
