"""The scheduler: binds each new pod to a Ready node, as kube-scheduler's Binding does.

The lab has one node, so there is nothing to score: a pod goes to the first Ready node
(spec.nodeName), gains the PodScheduled condition and a `Scheduled` event, and a pod
with no Ready node stays Pending with PodScheduled False, as on a cluster.
"""

from __future__ import annotations

from lab.api.controllers import events
from lab.api.resources import lookup
from lab.api.storage import Obj, Store, now

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
assert PODS and NODES
WATCHED = [PODS, NODES]
COMPONENT = "default-scheduler"


def _ready(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _condition(pod: Obj, status: str, reason: str = "", message: str = "") -> Obj:
    condition = {"type": "PodScheduled", "status": status, "lastTransitionTime": now()}
    if reason:
        condition.update(reason=reason, message=message)
    others = [c for c in pod["status"].get("conditions") or [] if c["type"] != "PodScheduled"]
    return {**pod["status"], "conditions": [*others, condition]}


def _scheduled(pod: Obj) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return str(condition.get("status"))
    return None


def reconcile(store: Store) -> None:
    nodes, _ = store.list(NODES)
    ready = sorted(n["metadata"]["name"] for n in nodes if _ready(n))
    pods, _ = store.list(PODS)
    for pod in pods:
        meta = pod["metadata"]
        if pod["spec"].get("nodeName") or meta.get("deletionTimestamp"):
            continue
        if not ready:
            if _scheduled(pod) != "False":
                message = f"0/{len(nodes)} nodes are available: no node is Ready."
                pod["status"] = _condition(pod, "False", "Unschedulable", message)
                store.update(PODS, pod, "status")
                events.record(store, pod, "FailedScheduling", message, COMPONENT)
            continue
        node = ready[0]
        pod["spec"]["nodeName"] = node
        bound = store.update(PODS, pod)
        bound["status"] = _condition(bound, "True")
        store.update(PODS, bound, "status")
        message = f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}"
        events.record(store, bound, "Scheduled", message, COMPONENT)
