"""The node-lifecycle controller: a node whose kubelet goes silent is marked and emptied.

As kube-controller-manager's does: a node whose Lease (kube-node-lease/<node>) has not
been renewed within the node-monitor grace period gets Ready=Unknown ("Kubelet stopped
posting node status."), the `node.kubernetes.io/unreachable` taints (NoSchedule, and
NoExecute with its timeAdded), and its pods Ready=False, so the EndpointSlice
controller takes them out of the ready endpoints. Its taint-eviction part then deletes
each pod on a node with a NoExecute taint it does not tolerate, at once, or once its
tolerationSeconds (20 s by the lab's default, lab/api/admission.py) have passed, so its
ReplicaSet replaces it elsewhere. A renewed Lease makes the node Ready and lifts the taints.

A node with no Lease at all is left alone: the root-free API server has no kubelet to
renew one, and its nodes stay as bootstrap made them.
"""

from __future__ import annotations

import datetime

from lab.api import graceful, leases, nodefit, taints
from lab.api.controllers import events
from lab.api.resources import lookup
from lab.api.storage import Obj, Store

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
assert PODS and NODES
WATCHED = [NODES, leases.LEASES]
# kube-controller-manager's --node-monitor-grace-period is 50 s (40 s before 1.32); the lab
# waits 8 s, so a lesson sees a node fail within seconds; the lab's nodes renew every
# leases.RENEW_EVERY (2 s) to stay well inside it.
GRACE = datetime.timedelta(seconds=8)
# Time passing is what this controller acts on: look once a second.
RESYNC = 1.0
COMPONENT = "node-controller"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def _stamp(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _set_ready(node: Obj, status: str, reason: str, message: str, at: datetime.datetime) -> None:
    conditions = node.setdefault("status", {}).setdefault("conditions", [])
    others = [c for c in conditions if c.get("type") != "Ready"]
    ready = {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": _stamp(at),
        "lastTransitionTime": _stamp(at),
    }
    node["status"]["conditions"] = [ready, *others]


def _unreachable_taints(at: datetime.datetime) -> list[Obj]:
    return [
        {"key": taints.UNREACHABLE, "effect": "NoSchedule"},
        {"key": taints.UNREACHABLE, "effect": "NoExecute", "timeAdded": _stamp(at)},
    ]


def _with_taints(store: Store, node: Obj, wanted: list[Obj]) -> Obj:
    spec = node.setdefault("spec", {})
    kept = [t for t in spec.get("taints") or [] if t.get("key") != taints.UNREACHABLE]
    if kept + wanted == (spec.get("taints") or []):
        return node
    if kept or wanted:
        spec["taints"] = kept + wanted
    else:
        spec.pop("taints", None)
    return store.update(NODES, node)


def _mark_unknown(store: Store, node: Obj, at: datetime.datetime) -> None:
    if nodefit.ready_status(node) != "Unknown":
        _set_ready(node, "Unknown", "NodeStatusUnknown", UNKNOWN_MESSAGE, at)
        node = store.update(NODES, node, "status")
        name = node["metadata"]["name"]
        events.record(
            store, node, "NodeNotReady", f"Node {name} status is now: NodeNotReady", COMPONENT
        )
    if not any(t.get("key") == taints.UNREACHABLE for t in node["spec"].get("taints") or []):
        _with_taints(store, node, _unreachable_taints(at))
    _mark_pods_not_ready(store, node["metadata"]["name"], at)


def _mark_ready(store: Store, node: Obj, at: datetime.datetime) -> None:
    if nodefit.ready_status(node) == "Unknown":
        _set_ready(node, "True", "KubeletReady", "kubelet is posting ready status", at)
        node = store.update(NODES, node, "status")
        name = node["metadata"]["name"]
        events.record(store, node, "NodeReady", f"Node {name} status is now: NodeReady", COMPONENT)
    _with_taints(store, node, [])


def _mark_pods_not_ready(store: Store, node: str, at: datetime.datetime) -> None:
    """As MarkPodsNotReady: each pod's Ready condition False (its kubelet cannot say)."""
    for pod in store.list(PODS, None, lambda p: p["spec"].get("nodeName") == node)[0]:
        conditions = (pod.get("status") or {}).get("conditions") or []
        ready = [c for c in conditions if c.get("type") == "Ready"]
        if not ready or ready[0].get("status") == "False":
            continue  # as kube's: only a Ready condition the kubelet wrote is turned
        others = [c for c in conditions if c.get("type") != "Ready"]
        marked = {"type": "Ready", "status": "False", "lastTransitionTime": _stamp(at)}
        pod.setdefault("status", {})["conditions"] = [*others, marked]
        store.update(PODS, pod, "status")


def _evict_after(pod: Obj, taint: Obj) -> float | None:
    """Seconds after the taint's timeAdded the pod goes; None if it tolerates it forever."""
    tolerations = [t for t in pod["spec"].get("tolerations") or [] if taints.tolerates(t, taint)]
    if not tolerations:
        return 0.0
    if any(t.get("tolerationSeconds") is None for t in tolerations):
        return None
    return max(0.0, float(min(t["tolerationSeconds"] for t in tolerations)))


def _due(pod: Obj, node: Obj, at: datetime.datetime) -> bool:
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") != "NoExecute":
            continue
        after = _evict_after(pod, taint)
        if after is None:
            continue
        added = leases.parse_time(taint["timeAdded"]) if taint.get("timeAdded") else at
        if at >= added + datetime.timedelta(seconds=after):
            return True
    return False


def _evict(store: Store, pod: Obj) -> None:
    meta = pod["metadata"]
    target = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
    }
    others = [c for c in pod["status"].get("conditions") or [] if c["type"] != "DisruptionTarget"]
    pod["status"]["conditions"] = [*others, target]
    pod = store.update(PODS, pod, "status")
    message = f"Marking for deletion Pod {meta['namespace']}/{meta['name']}"
    events.record(store, pod, "TaintManagerEviction", message, "taint-eviction-controller")
    graceful.delete_pod(store, meta["namespace"], meta["name"])


def _evict_untolerating(store: Store, at: datetime.datetime) -> None:
    """The taint-eviction controller: pods on NoExecute-tainted nodes whose time is up."""
    nodes = store.list(NODES)[0]
    tainted = {
        n["metadata"]["name"]: n
        for n in nodes
        if any(t.get("effect") == "NoExecute" for t in (n.get("spec") or {}).get("taints") or [])
    }
    if not tainted:
        return
    for pod in store.list(PODS, None, lambda p: p["spec"].get("nodeName") in tainted)[0]:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        if _due(pod, tainted[pod["spec"]["nodeName"]], at):
            _evict(store, pod)


def check(store: Store, at: datetime.datetime) -> None:
    """One pass at time `at` (the tests pass their own clock)."""
    renewed = {
        lease["metadata"]["name"]: leases.renewed_at(lease)
        for lease in store.list(leases.LEASES, leases.NAMESPACE)[0]
    }
    for node in store.list(NODES)[0]:
        name = node["metadata"]["name"]
        if name not in renewed:
            continue
        last = renewed[name]
        if last is None or at - last > GRACE:
            _mark_unknown(store, node, at)
        else:
            _mark_ready(store, node, at)
    _evict_untolerating(store, at)


def reconcile(store: Store) -> None:
    check(store, datetime.datetime.now(datetime.UTC))
