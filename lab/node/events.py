"""The kubelet's events as Event objects on the API server, with a kubelet's reasons.

The pod worker (lab/kubelet.py) tells what happens to a pod in the lab's own words (its
log and `lab up`'s output keep them); those a kubelet also records are posted, so
`kubectl describe pod` and `kubectl get events` show Pulled, Created, Started, Killing,
Unhealthy, BackOff and Failed, with the type a kubelet gives each.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from lab.naming import NODE_NAME

Obj = dict[str, Any]

# The lab's reason → (the kubelet's reason, the event's type). Others stay in the lab's log.
# Pulled and Created come before every Started: posted, not printed (lab/cluster.py).
QUIET = frozenset({"Pulled", "Created"})
KUBELET_REASONS = {
    "Pulled": ("Pulled", "Normal"),
    "Created": ("Created", "Normal"),
    "Started": ("Started", "Normal"),
    "Killing": ("Killing", "Normal"),
    "Unhealthy": ("Unhealthy", "Warning"),
    "Unready": ("Unhealthy", "Warning"),  # a readiness probe failed
    "BackOff": ("BackOff", "Warning"),
    "Failed": ("Failed", "Warning"),
}


def kubelet_event(
    namespace: str, pod: str, uid: str, reason: str, message: str, node: str = NODE_NAME
) -> Obj | None:
    """The Event a kubelet would record for the pod, or None for a lab-only reason."""
    if reason not in KUBELET_REASONS:
        return None
    kube_reason, kind = KUBELET_REASONS[reason]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1",
        "kind": "Event",
        # As the kubelet's recorder names them: the object's name and a unique suffix.
        "metadata": {"name": f"{pod}.{secrets.token_hex(8)}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod,
            "namespace": namespace,
            "uid": uid,
        },
        "reason": kube_reason,
        "message": message,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": kind,
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    }
