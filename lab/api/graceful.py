"""Graceful deletion of pods, as kube-apiserver does it for a pod its kubelet runs.

A DELETE of such a pod only marks it: deletionTimestamp (now + the grace period) and
deletionGracePeriodSeconds. The kubelet sees the mark, runs preStop, SIGTERM, SIGKILL
when the grace is over, and then deletes the pod with a grace of 0, which removes it.
A second DELETE may shorten the grace, never lengthen it. A pod that no kubelet runs
(not yet scheduled, or on a node with no kubelet serving: the root-free API server of
`python -m lab apiserver`) is removed at once, as there is nobody to wait for.
"""

from __future__ import annotations

from lab.api.resources import lookup
from lab.api.storage import Obj, Store

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
assert PODS and NODES
DEFAULT_GRACE = 30


def kubelet_port(node: Obj | None) -> int:
    """The port the node's kubelet registered (status.daemonEndpoints), 0 if none serves."""
    endpoints = ((node or {}).get("status") or {}).get("daemonEndpoints") or {}
    return int((endpoints.get("kubeletEndpoint") or {}).get("Port") or 0)


def has_kubelet(store: Store, pod: Obj) -> bool:
    node_name = (pod.get("spec") or {}).get("nodeName")
    return bool(node_name) and kubelet_port(store.find(NODES, "", node_name)) > 0


def delete_pod(store: Store, namespace: str, name: str, grace: int | None = None) -> Obj:
    """Mark the pod for its kubelet, or remove it when grace is 0 or no kubelet runs it."""
    pod = store.get(PODS, namespace, name)
    if grace is None:
        grace = int(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE))
    grace = max(grace, 0)
    if grace == 0 or not has_kubelet(store, pod):
        return store.delete(PODS, namespace, name)
    meta = pod["metadata"]
    current = meta.get("deletionGracePeriodSeconds")
    if meta.get("deletionTimestamp") and current is not None and current <= grace:
        return pod
    return store.mark_deleting(PODS, namespace, name, grace=grace)


def grace_of(options: dict[str, object], params: dict[str, str]) -> int | None:
    """DeleteOptions.gracePeriodSeconds, from the body or the query string."""
    value = options.get("gracePeriodSeconds", params.get("gracePeriodSeconds"))
    if value is None or value == "":
        return None
    return int(str(value))
